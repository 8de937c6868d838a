//! `--task reber`: predict the next symbol of embedded Reber strings; a string counts as correct when every
//! prediction along it is a legal next symbol.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{REBER_VOCAB, ReberBatch, reber_batch, reber_fraction_correct};

use super::{Baseline, Batch, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec, tokens};
use crate::model_kind::ModelKind;

/// A small LSTM learns the grammar (the embedded version needs memory across the whole string).
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Lstm,
    hidden: 32,
    layers: 1,
    seq_len: 1, // not used: each string has its own length
    batch: 32,
    steps: 2000,
    lr: 1e-2,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 200,
    embed: 8,
};

/// The Reber task with 1000 fixed evaluation strings.
pub struct Reber {
    eval: ReberBatch,
}

impl Reber {
    /// The task (strings have their own lengths: `--seq-len` is not used).
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let eval = reber_batch(1000, &mut ChaCha8Rng::seed_from_u64(spec.eval_seed)).map_err(|e| e.to_string())?;
        Ok(Reber { eval })
    }
}

impl Task for Reber {
    fn describe(&self) -> String {
        "embedded Reber grammar".into()
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            input: InputKind::Tokens(REBER_VOCAB),
            readout: ReadoutName::EveryStep,
            outputs: REBER_VOCAB,
            batch_first: true,
        }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let b = reber_batch(batch, rng)?;
        Ok(Batch {
            input: tokens(b.ids, b.steps, b.batch),
            targets: BatchTargets::Classes(b.targets),
            lengths: Some(b.lengths),
        })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let e = &self.eval;
        let input = tokens(e.ids.clone(), e.steps, e.batch);
        let logits = super::predict_padded(model, &input, Some(&e.lengths))?;
        Ok(vec![
            ("eval_strings_correct".into(), reber_fraction_correct(e, &logits, REBER_VOCAB)?),
            ("eval_loss".into(), super::cross_entropy(&logits, REBER_VOCAB, &e.targets)?),
        ])
    }

    fn baseline(&self) -> Option<Baseline> {
        None
    }
}
