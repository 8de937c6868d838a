//! `--task classify`: one label per variable-length sequence, from a CSV file with columns `id`, `label` and
//! numeric features (one row per step). 20% of the sequences (a seeded random choice) are held out; features
//! are normalised with the training sequences' statistics.

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{ClassifyColumns, PaddedBatch, SequenceSet, accuracy};

use super::{Baseline, Batch, BatchInput, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec};
use crate::model_kind::ModelKind;

/// A GRU reading each sequence to its end.
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Gru,
    hidden: 64,
    layers: 1,
    seq_len: 1, // not used: each sequence has its own length
    batch: 32,
    steps: 1000,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 100,
    embed: 0,
};

/// A labelled set of sequences split into training and held-out parts.
pub struct Classify {
    set: SequenceSet,
    train: Vec<usize>,
    valid: PaddedBatch,
    majority: f64,
}

impl Classify {
    /// Loads `spec.data`.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let data = spec.data.as_ref().ok_or("--task classify needs --data FILE.csv")?;
        let mut set = SequenceSet::load_csv(data, &ClassifyColumns::default()).map_err(|e| e.to_string())?;
        if set.sequences.len() < 2 {
            return Err(format!("{}: at least 2 sequences are needed (one to train, one to test)", data.display()));
        }
        let (train, valid) = set.split(0.2, &mut ChaCha8Rng::seed_from_u64(spec.eval_seed));
        let normalizers = set.normalizers(&train);
        set.normalize(&normalizers).map_err(|e| e.to_string())?;
        let valid = set.batch(&valid).map_err(|e| e.to_string())?;
        let mut counts = vec![0usize; set.classes()];
        valid.labels.iter().for_each(|&l| counts[l as usize] += 1);
        let majority = *counts.iter().max().unwrap_or(&0) as f64 / valid.labels.len().max(1) as f64;
        Ok(Classify { set, train, valid, majority })
    }
}

impl Task for Classify {
    fn describe(&self) -> String {
        format!(
            "classifying {} ({} sequences, {} features, {} classes)",
            self.set.source.display(),
            self.set.sequences.len(),
            self.set.features(),
            self.set.classes()
        )
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            input: InputKind::Features(self.set.features()),
            readout: ReadoutName::Last,
            outputs: self.set.classes(),
            batch_first: true,
        }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let indices: Vec<usize> = (0..batch).map(|_| *self.train.choose(rng).expect("at least one")).collect();
        let b = self.set.batch(&indices)?;
        Ok(Batch {
            input: BatchInput::Features(b.input),
            targets: BatchTargets::Classes(b.labels),
            lengths: Some(b.lengths),
        })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let v = &self.valid;
        let input = BatchInput::Features(v.input.clone());
        let logits = super::predict_padded(model, &input, Some(&v.lengths))?;
        let classes = self.set.classes();
        Ok(vec![
            ("eval_accuracy".into(), accuracy(&logits, classes, &v.labels)?),
            ("eval_loss".into(), super::cross_entropy(&logits, classes, &v.labels)?),
        ])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_accuracy", value: self.majority, label: "majority class" })
    }
}
