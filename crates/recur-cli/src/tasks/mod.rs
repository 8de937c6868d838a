//! The task registry: for each `--task`, the shape of model it needs, its training batches, its evaluation
//! metrics, its baseline and the defaults that are known to work on it.
//!
//! The data themselves come from the library (`recur::tasks`); this module only adapts them to the training loop.

mod adding;

use std::path::PathBuf;

use clap::ValueEnum;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceInput, SequenceModel, Tensor};
use serde::{Deserialize, Serialize};

use crate::options::ModelKind;

/// The `--task` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskName {
    /// The adding problem: the sum of two marked values in a long sequence (MSE; predicting 1 scores 0.167).
    Adding,
}

impl TaskName {
    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::Adding => "adding",
        }
    }
}

/// Everything that defines a task's data: stored with a run (to resume it) and in the model file (to evaluate it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Which task.
    pub name: TaskName,
    /// Sequence length (the task's own meaning: the adding problem's `T`, the copy task's gap, a window).
    pub seq_len: usize,
    /// A data file, for the tasks that read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// Seed of the evaluation data (fixed for a run, so every evaluation scores the same sequences).
    pub eval_seed: u64,
}

/// The input side of a task's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Real features per step.
    Features(usize),
    /// Token ids from a vocabulary of this size.
    Tokens(usize),
}

/// What a task asks of the model: its input, how the head reads the sequence and how many values it predicts.
#[derive(Clone, Copy, Debug)]
pub struct ModelShape {
    /// Features or tokens.
    pub input: InputKind,
    /// Many-to-one or every step.
    pub readout: ReadoutName,
    /// Values (or classes) predicted per row.
    pub outputs: usize,
    /// Whether batches are `(B, T, ·)`.
    pub batch_first: bool,
}

/// Settings that work on a task, used for every option the user does not give.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    /// The recurrent cell.
    pub model: ModelKind,
    /// Hidden size.
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
    /// The task's sequence length.
    pub seq_len: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Training steps.
    pub steps: u64,
    /// Adam's learning rate.
    pub lr: f64,
    /// Gradient-norm clipping.
    pub clip: f32,
    /// The LSTM's initial forget-gate bias.
    pub forget_bias: f32,
    /// Steps between evaluations.
    pub eval_every: u64,
    /// Embedding size for token input.
    pub embed: usize,
}

/// A training batch, owned.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The input.
    pub input: BatchInput,
    /// What the model should predict.
    pub targets: BatchTargets,
}

/// A batch's input.
#[derive(Clone, Debug)]
pub enum BatchInput {
    /// Features, laid out as the task's [`ModelShape::batch_first`] says.
    Features(Tensor),
    /// Token ids, likewise laid out.
    Tokens {
        /// The ids.
        ids: Vec<usize>,
        /// Time steps.
        steps: usize,
        /// Sequences.
        batch: usize,
    },
}

impl BatchInput {
    /// The library's view of the input.
    pub fn view(&self) -> SequenceInput<'_> {
        match self {
            BatchInput::Features(x) => SequenceInput::Features(x),
            BatchInput::Tokens { ids, steps, batch } => SequenceInput::Tokens { ids, steps: *steps, batch: *batch },
        }
    }
}

/// A batch's targets.
#[derive(Clone, Debug)]
pub enum BatchTargets {
    /// Regression targets (MSE).
    Values(Vec<f32>),
    /// Class indices (cross-entropy).
    Classes(Vec<i64>),
}

impl BatchTargets {
    /// The library's view of the targets.
    pub fn view(&self) -> recur::train::Targets<'_> {
        match self {
            BatchTargets::Values(v) => recur::train::Targets::Values(v),
            BatchTargets::Classes(c) => recur::train::Targets::Classes(c),
        }
    }
}

/// Named evaluation results, the headline first (`eval_mse`, `eval_accuracy`, …).
pub type Metrics = Vec<(String, f64)>;

/// A reference score: what a model without memory (or the trivial predictor) reaches.
#[derive(Clone, Debug)]
pub struct Baseline {
    /// Which metric it is a value of.
    pub metric: &'static str,
    /// Its value.
    pub value: f64,
    /// What it is, for legends and tables.
    pub label: &'static str,
}

/// One task: data, metrics, baseline, defaults.
pub trait Task: Send + Sync {
    /// One line saying what is being learnt.
    fn describe(&self) -> String;
    /// The model this task needs.
    fn shape(&self) -> ModelShape;
    /// A fresh training batch of `batch` sequences, drawn from `rng` (the trainer's, so a resumed run draws the
    /// same batches).
    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch>;
    /// The model's scores on the task's fixed evaluation data, headline first.
    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics>;
    /// The reference score, if the task has one.
    fn baseline(&self) -> Option<Baseline>;
}

/// The defaults of a task, before the user's options (needed before the task's data exist, to know `seq_len`).
pub fn defaults(name: TaskName) -> Defaults {
    match name {
        TaskName::Adding => adding::DEFAULTS,
    }
}

/// Builds the task a spec describes (reading its data file, if any).
pub fn build(spec: &TaskSpec) -> Result<Box<dyn Task>, Box<dyn std::error::Error>> {
    Ok(match spec.name {
        TaskName::Adding => Box::new(adding::Adding::new(spec)?),
    })
}

/// Predictions of `model` on `input` in inference mode (no dropout), from zero states.
pub fn predict(model: &SequenceModel, input: &BatchInput) -> recur::Result<Vec<f32>> {
    Ok(model.forward(input.view(), None, &recur::train::CarriedState::new())?.0)
}
