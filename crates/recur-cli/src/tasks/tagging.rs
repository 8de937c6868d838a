//! `--task tagging`: every step's tag combines the token `k` steps back and the one `k` steps ahead, so a
//! unidirectional model cannot exceed [`tagging_ceiling`] and a bidirectional one can reach 1.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{TaggingBatch, TaggingConfig, tagging_ceiling, tagging_task};

use super::{Baseline, Batch, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec, tokens};
use crate::model_kind::ModelKind;

/// Defaults for both directions: run once with and once without `--bidirectional` to compare.
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Gru,
    hidden: 64,
    layers: 1,
    seq_len: 20,
    batch: 32,
    steps: 1500,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 100,
    embed: 8,
};

/// The tagging task with 500 fixed evaluation sequences.
pub struct Tagging {
    config: TaggingConfig,
    eval: TaggingBatch,
}

impl Tagging {
    /// The task with sequences of `spec.seq_len` steps.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let config = TaggingConfig { steps: spec.seq_len, ..TaggingConfig::default() };
        let eval = tagging_task(&config, 500, &mut ChaCha8Rng::seed_from_u64(spec.eval_seed))
            .map_err(|e| format!("--seq-len: {e}"))?;
        Ok(Tagging { config, eval })
    }
}

impl Task for Tagging {
    fn describe(&self) -> String {
        format!("tagging, T = {}, reach {}", self.config.steps, self.config.reach)
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            input: InputKind::Tokens(self.config.vocab),
            readout: ReadoutName::EveryStep,
            outputs: self.config.classes(),
            batch_first: true,
        }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let b = tagging_task(&self.config, batch, rng)?;
        Ok(Batch { input: tokens(b.ids, b.steps, b.batch), targets: BatchTargets::Classes(b.targets), lengths: None })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let e = &self.eval;
        let classes = self.config.classes();
        let logits = super::predict(model, &tokens(e.ids.clone(), e.steps, e.batch))?;
        Ok(vec![
            ("eval_accuracy".into(), e.accuracy(&logits, classes)?),
            ("eval_loss".into(), super::cross_entropy(&logits, classes, &e.targets)?),
        ])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline {
            metric: "eval_accuracy",
            value: tagging_ceiling(&self.config),
            label: "unidirectional ceiling",
        })
    }
}
