//! `--task adding`: the sum of the two marked values of a sequence of `T = --seq-len` steps.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::{MseLoss, ReadoutName, SequenceModel};
use recur_tasks::{AddingBatch, adding_problem};

use super::{Baseline, Batch, BatchInput, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec};
use crate::model_kind::ModelKind;

/// Measured to work at T = 100 (README): an LSTM needs the forget-gate bias of 1 and a learning rate of 3e-3
/// to leave the 0.167 plateau within a few thousand steps; the GRU learns with either.
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Lstm,
    hidden: 128,
    layers: 1,
    seq_len: 100,
    batch: 64,
    steps: 2000,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 100,
    embed: 0,
};

/// Sequences in the evaluation set.
const EVAL_SEQUENCES: usize = 1000;

/// The adding problem with its fixed evaluation set.
pub struct Adding {
    steps: usize,
    eval: AddingBatch,
}

impl Adding {
    /// The task at `spec.seq_len` steps, its evaluation set drawn from `spec.eval_seed`.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        if spec.seq_len < 2 {
            return Err(format!("--seq-len must be at least 2 for the adding problem, found {}", spec.seq_len));
        }
        let eval = adding_problem(EVAL_SEQUENCES, spec.seq_len, &mut ChaCha8Rng::seed_from_u64(spec.eval_seed));
        Ok(Adding { steps: spec.seq_len, eval })
    }
}

impl Task for Adding {
    fn describe(&self) -> String {
        format!("adding problem, T = {}", self.steps)
    }

    fn shape(&self) -> ModelShape {
        ModelShape { input: InputKind::Features(2), readout: ReadoutName::Last, outputs: 1, batch_first: true }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let b = adding_problem(batch, self.steps, rng);
        Ok(Batch {
            input: BatchInput::Features(b.input),
            targets: BatchTargets::Values(b.target.into_data()),
            lengths: None,
        })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let predictions = super::predict(model, &BatchInput::Features(self.eval.input.clone()))?;
        let (mse, _) = MseLoss.forward(&predictions, self.eval.target.data(), None)?;
        Ok(vec![("eval_mse".into(), mse as f64)])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_mse", value: 1.0 / 6.0, label: "predict 1 (0.167)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskName;

    #[test]
    fn evaluation_set_is_fixed_by_its_seed_and_too_short_sequences_are_refused() {
        let spec = TaskSpec::new(TaskName::Adding, 10, 5);
        let (a, b) = (Adding::new(&spec).unwrap(), Adding::new(&spec).unwrap());
        assert_eq!(a.eval.input, b.eval.input);
        assert_eq!(a.eval.input.shape(), &[EVAL_SEQUENCES, 10, 2]);
        let err = Adding::new(&TaskSpec { seq_len: 1, ..spec }).err().unwrap();
        assert!(err.contains("at least 2"), "{err}");
    }
}
