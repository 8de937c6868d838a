//! The task registry: for each `--task`, the shape of model it needs, its training batches, its evaluation
//! metrics, its baseline and the defaults that are known to work on it.
//!
//! The data themselves come from the `recur-tasks` crate; this module only adapts them to the training loop.

mod adding;
mod charlm;
mod classify;
mod copy;
mod forecast;
mod reber;
mod tagging;
pub mod translate;

use std::path::PathBuf;

use clap::ValueEnum;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceInput, SequenceModel, Tensor};
use serde::{Deserialize, Serialize};

use crate::model_kind::ModelKind;

/// The `--task` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskName {
    /// The adding problem: the sum of two marked values in a long sequence (MSE; predicting 1 scores 0.167).
    Adding,
    /// The copy task: reproduce 10 symbols after a gap of --seq-len steps.
    Copy,
    /// Next symbol of the embedded Reber grammar (strings all of whose predictions are legal).
    Reber,
    /// Tags that depend on past and future tokens (bidirectional beats unidirectional).
    Tagging,
    /// One-step (or --horizon) forecasts of the chaotic Mackey-Glass series.
    MackeyGlass,
    /// Character language model on --data FILE (UTF-8 text; without it, 1 MB of built-in generated stories),
    /// scored in bits per character over the whole held-out last 10%, read with the state carried.
    Charlm,
    /// Forecast column --column of --data FILE.csv from windows of --seq-len values.
    Forecast,
    /// Classify the sequences of --data FILE.csv (columns id, label and features).
    Classify,
    /// Sequence to sequence: letters a-j of up to --seq-len, reversed (encoder-decoder with --attention).
    Reverse,
    /// Sequence to sequence: digits of up to --seq-len, sorted.
    Sort,
    /// Sequence to sequence: `a+b` (up to --seq-len characters) to the sum.
    Add,
    /// Sequence to sequence: a date in one of 12 formats to ISO YYYY-MM-DD.
    Dates,
}

impl TaskName {
    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::Adding => "adding",
            TaskName::Copy => "copy",
            TaskName::Reber => "reber",
            TaskName::Tagging => "tagging",
            TaskName::MackeyGlass => "mackey-glass",
            TaskName::Charlm => "charlm",
            TaskName::Forecast => "forecast",
            TaskName::Classify => "classify",
            TaskName::Reverse => "reverse",
            TaskName::Sort => "sort",
            TaskName::Add => "add",
            TaskName::Dates => "dates",
        }
    }

    /// Whether this is a sequence-to-sequence task (an encoder-decoder model, trained and scored apart from the
    /// others).
    pub fn is_seq2seq(self) -> bool {
        translate::translate_task(self).is_some()
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
    /// The CSV column to forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Values predicted at once by the forecasting tasks.
    #[serde(default = "one")]
    pub horizon: usize,
}

fn one() -> usize {
    1
}

impl TaskSpec {
    /// A spec with no data file, column or horizon.
    pub fn new(name: TaskName, seq_len: usize, eval_seed: u64) -> Self {
        TaskSpec { name, seq_len, data: None, eval_seed, column: None, horizon: 1 }
    }
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
    /// For a padded batch, each sequence's length.
    pub lengths: Option<Vec<usize>>,
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
    /// Metadata the model file needs besides the configuration (a character model's vocabulary).
    fn metadata(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// For a task trained on `batch` contiguous streams (a character model over its text), the window of `steps`
    /// steps of every stream that training step `step` reads, and whether it starts the streams over (so that
    /// the state carried from the previous window must be dropped). `None`: the task draws independent batches
    /// with [`Task::train_batch`].
    fn stream_window(&self, _batch: usize, _steps: usize, _step: u64) -> Option<recur::Result<(Batch, bool)>> {
        None
    }
}

/// The defaults of a task, before the user's options (needed before the task's data exist, to know `seq_len`).
pub fn defaults(name: TaskName) -> Defaults {
    match name {
        TaskName::Adding => adding::DEFAULTS,
        TaskName::Copy => copy::DEFAULTS,
        TaskName::Reber => reber::DEFAULTS,
        TaskName::Tagging => tagging::DEFAULTS,
        TaskName::MackeyGlass | TaskName::Forecast => forecast::DEFAULTS,
        TaskName::Charlm => charlm::DEFAULTS,
        TaskName::Classify => classify::DEFAULTS,
        TaskName::Reverse | TaskName::Sort | TaskName::Add | TaskName::Dates => {
            translate::defaults(translate::translate_task(name).expect("a sequence-to-sequence task"))
        }
    }
}

/// Builds the task a spec describes (reading its data file, if any).
pub fn build(spec: &TaskSpec) -> Result<Box<dyn Task>, Box<dyn std::error::Error>> {
    Ok(match spec.name {
        TaskName::Adding => Box::new(adding::Adding::new(spec)?),
        TaskName::Copy => Box::new(copy::Copy::new(spec)?),
        TaskName::Reber => Box::new(reber::Reber::new(spec)?),
        TaskName::Tagging => Box::new(tagging::Tagging::new(spec)?),
        TaskName::MackeyGlass | TaskName::Forecast => Box::new(forecast::Forecast::new(spec)?),
        TaskName::Charlm => Box::new(charlm::CharLm::new(spec)?),
        TaskName::Classify => Box::new(classify::Classify::new(spec)?),
        TaskName::Reverse | TaskName::Sort | TaskName::Add | TaskName::Dates => {
            return Err(format!(
                "--task {} is a sequence-to-sequence task: it trains an encoder-decoder, not a sequence model",
                spec.name.as_str()
            )
            .into());
        }
    })
}

/// Predictions of `model` on `input` in inference mode (no dropout), from zero states.
pub fn predict(model: &SequenceModel, input: &BatchInput) -> recur::Result<Vec<f32>> {
    predict_padded(model, input, None)
}

/// [`predict`] for a padded batch with per-sequence lengths.
pub fn predict_padded(model: &SequenceModel, input: &BatchInput, lengths: Option<&[usize]>) -> recur::Result<Vec<f32>> {
    Ok(model.forward(input.view(), lengths, &recur::train::CarriedState::new())?.0)
}

/// The mean cross-entropy of `logits` (`rows × classes`) against `targets` (`-100` ignored), in nats.
pub fn cross_entropy(logits: &[f32], classes: usize, targets: &[i64]) -> recur::Result<f64> {
    Ok(recur::CrossEntropyLoss::new().forward(logits, classes, targets, None)?.0 as f64)
}

/// Token ids of a batch-first `batch × steps` token batch as the model's input.
pub fn tokens(ids: Vec<usize>, steps: usize, batch: usize) -> BatchInput {
    BatchInput::Tokens { ids, steps, batch }
}
