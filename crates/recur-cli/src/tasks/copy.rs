//! `--task copy`: remember 10 symbols across a gap of `T = --seq-len` steps and reproduce them.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{COPY_VOCAB, CopyBatch, copy_baseline, copy_task};

use super::{Baseline, Batch, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec, tokens};
use crate::model_kind::ModelKind;

/// A GRU learns the copy task at T = 50 within a few thousand steps of Adam 3e-3 (README).
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Gru,
    hidden: 128,
    layers: 1,
    seq_len: 50,
    batch: 64,
    steps: 3000,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 200,
    embed: 16,
};

/// The copy task with a fixed evaluation set of 500 sequences.
pub struct Copy {
    gap: usize,
    eval: CopyBatch,
}

impl Copy {
    /// The task with a gap of `spec.seq_len`.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let eval = copy_task(500, spec.seq_len, &mut ChaCha8Rng::seed_from_u64(spec.eval_seed))
            .map_err(|e| format!("--seq-len: {e}"))?;
        Ok(Copy { gap: spec.seq_len, eval })
    }
}

impl Task for Copy {
    fn describe(&self) -> String {
        format!("copy task, gap T = {}", self.gap)
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            input: InputKind::Tokens(COPY_VOCAB),
            readout: ReadoutName::EveryStep,
            outputs: COPY_VOCAB,
            batch_first: true,
        }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let b = copy_task(batch, self.gap, rng)?;
        Ok(Batch { input: tokens(b.ids, b.steps, b.batch), targets: BatchTargets::Classes(b.targets), lengths: None })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let e = &self.eval;
        let logits = super::predict(model, &tokens(e.ids.clone(), e.steps, e.batch))?;
        Ok(vec![
            ("eval_loss".into(), super::cross_entropy(&logits, COPY_VOCAB, &e.targets)?),
            ("eval_accuracy".into(), e.accuracy(&logits, COPY_VOCAB)?),
        ])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_loss", value: copy_baseline(self.gap), label: "memoryless" })
    }
}
