//! The options shared by the training commands, and the settings they resolve to once the task's defaults fill
//! what the user left out. The resolved settings are stored with a run, so that `--resume` continues it exactly.

use clap::{Args, ValueEnum};
use recur::attention::Score;
use recur::seq2seq::Seq2SeqConfig;
use recur::train::{OptimizerKind, ScheduleKind, TrainerConfig};
use recur::{RecurrentConfig, SequenceModelConfig};
use serde::{Deserialize, Serialize};

use crate::model_kind::ModelKind;
use crate::tasks::{Defaults, InputKind, ModelShape, TaskName, TaskSpec};

/// The `--optimizer` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerArg {
    /// SGD with momentum 0.9.
    Sgd,
    /// Adam.
    Adam,
    /// AdamW (weight decay 0.01).
    Adamw,
}

/// The `--attention` values: how the decoder of a sequence-to-sequence model scores the encoder's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionArg {
    /// No attention: the encoder's final state is the decoder's only view of the source.
    None,
    /// Bahdanau's additive score.
    Additive,
    /// Luong's dot score.
    Dot,
    /// Luong's general (bilinear) score.
    General,
    /// The scaled dot product.
    ScaledDot,
}

impl AttentionArg {
    /// The library's score, `None` for no attention.
    pub fn score(self) -> Option<Score> {
        match self {
            AttentionArg::None => None,
            AttentionArg::Additive => Some(Score::Additive),
            AttentionArg::Dot => Some(Score::Dot),
            AttentionArg::General => Some(Score::General),
            AttentionArg::ScaledDot => Some(Score::ScaledDot),
        }
    }

    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        self.score().map_or("none", Score::name)
    }
}

/// The task options of `train` and `eval`.
#[derive(Args, Clone, Debug, Default)]
pub struct TaskArgs {
    /// The task (defaults for everything else depend on it).
    #[arg(long, value_enum)]
    pub task: Option<TaskName>,
    /// Sequence length (the adding problem's T; the copy task's gap; the window of a stream).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Data file for `charlm`, `forecast` and `classify`.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    /// The CSV column to forecast (`forecast`).
    #[arg(long)]
    pub column: Option<String>,
    /// Input window of the forecasting tasks (the same as --seq-len).
    #[arg(long, conflicts_with = "seq_len")]
    pub window: Option<usize>,
    /// Values to forecast at once (`forecast`, `mackey-glass`; default 1).
    #[arg(long)]
    pub horizon: Option<usize>,
}

/// Model and training options of `recur train`; each falls back to the task's default.
#[derive(Args, Clone, Debug, Default)]
pub struct TrainOptions {
    /// Recurrent cell.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Hidden size.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Stacked recurrent layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Run every layer in both directions.
    #[arg(long)]
    pub bidirectional: bool,
    /// LSTM projection size (0: none).
    #[arg(long)]
    pub proj_size: Option<usize>,
    /// Dropout between stacked layers, in training.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Sequences per batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Training steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimizer.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long)]
    pub clip: Option<f32>,
    /// Truncated BPTT: train in windows of K steps, the state carried (detached) from one window to the next.
    #[arg(long, value_name = "K")]
    pub tbptt: Option<usize>,
    /// Seed of the initial weights, the training batches and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between evaluations (and checkpoints).
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Steps between lines of metrics.jsonl.
    #[arg(long)]
    pub log_every: Option<u64>,
    /// LSTM: initial value of the forget gate's bias (0 keeps PyTorch's uniform init).
    #[arg(long)]
    pub forget_bias: Option<f32>,
    /// LSTM: peephole connections from the cell state to the gates (ONNX's `P`).
    #[arg(long)]
    pub peepholes: bool,
    /// GRU: the reset gate multiplies `h` before the recurrent product (the original GRU, ONNX's
    /// `linear_before_reset = 0`, Keras's `reset_after=False`) rather than after it (PyTorch's).
    #[arg(long)]
    pub reset_before: bool,
    /// The decoder's attention over the encoder's outputs (sequence-to-sequence tasks only; default additive).
    #[arg(long, value_enum)]
    pub attention: Option<AttentionArg>,
}

/// A run's complete settings, after defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The task and its data.
    pub task: TaskSpec,
    /// The cell.
    pub model: ModelKind,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Bidirectional layers.
    pub bidirectional: bool,
    /// LSTM projection.
    pub proj_size: usize,
    /// Dropout between layers.
    pub dropout: f32,
    /// Embedding size (token tasks).
    pub embed: usize,
    /// Batch size.
    pub batch: usize,
    /// Total steps.
    pub steps: u64,
    /// Learning rate.
    pub lr: f64,
    /// Optimizer.
    pub optimizer: OptimizerArg,
    /// Gradient-norm clip (0: none).
    pub clip: f32,
    /// Truncated BPTT window.
    pub tbptt: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Steps between evaluations.
    pub eval_every: u64,
    /// Steps between logged lines.
    pub log_every: u64,
    /// LSTM forget-gate bias at initialisation (0: PyTorch's init).
    pub forget_bias: f32,
    /// LSTM peepholes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peepholes: bool,
    /// GRU with the reset gate before the recurrent product.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_before: bool,
    /// The decoder's attention, for a sequence-to-sequence task (`None` for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionArg>,
}

impl Settings {
    /// The user's options over the task's defaults, checked.
    pub fn resolve(task: &TaskArgs, o: &TrainOptions) -> Result<Settings, String> {
        let name = task.task.ok_or("--task is required (or --resume DIR to continue a run)")?;
        let d: Defaults = crate::tasks::defaults(name);
        let model = o.model.unwrap_or(d.model);
        let seed = o.seed.unwrap_or(0);
        let settings = Settings {
            task: TaskSpec {
                name,
                seq_len: task.seq_len.or(task.window).unwrap_or(d.seq_len),
                data: task.data.clone(),
                eval_seed: seed.wrapping_add(1_000_003),
                column: task.column.clone(),
                horizon: task.horizon.unwrap_or(1),
            },
            model,
            hidden: o.hidden.unwrap_or(d.hidden),
            layers: o.layers.unwrap_or(d.layers),
            bidirectional: o.bidirectional,
            proj_size: o.proj_size.unwrap_or(0),
            dropout: o.dropout.unwrap_or(0.0),
            embed: d.embed,
            batch: o.batch.unwrap_or(d.batch),
            steps: o.steps.unwrap_or(d.steps),
            lr: o.lr.unwrap_or(d.lr),
            optimizer: o.optimizer.unwrap_or(OptimizerArg::Adam),
            clip: o.clip.unwrap_or(d.clip),
            tbptt: o.tbptt,
            seed,
            eval_every: o.eval_every.unwrap_or(d.eval_every),
            log_every: o.log_every.unwrap_or(10),
            forget_bias: o.forget_bias.unwrap_or(if model == ModelKind::Lstm { d.forget_bias } else { 0.0 }),
            peepholes: o.peepholes,
            reset_before: o.reset_before,
            attention: match o.attention {
                _ if !name.is_seq2seq() => None,
                Some(a) => Some(a),
                None => Some(AttentionArg::Additive),
            },
        };
        if let (Some(a), false) = (o.attention, name.is_seq2seq()) {
            return Err(format!(
                "--attention {} applies to the sequence-to-sequence tasks (reverse, sort, add, dates), not --task {}",
                a.as_str(),
                name.as_str()
            ));
        }
        settings.check()?;
        Ok(settings)
    }

    /// Rejects values no run can use, naming the option.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("--hidden", self.hidden as u64),
            ("--layers", self.layers as u64),
            ("--batch", self.batch as u64),
            ("--seq-len", self.task.seq_len as u64),
            ("--eval-every", self.eval_every),
            ("--log-every", self.log_every),
            ("--horizon", self.task.horizon as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1, found 0"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be a positive number, found {}", self.lr));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return Err(format!("--clip must be 0 (none) or a positive number, found {}", self.clip));
        }
        if self.tbptt == Some(0) {
            return Err("--tbptt must be at least 1, found 0".into());
        }
        if self.forget_bias != 0.0 && self.model != ModelKind::Lstm {
            return Err(format!("--forget-bias is an LSTM option, found --model {}", self.model.as_str()));
        }
        if self.peepholes && self.model != ModelKind::Lstm {
            return Err(format!("--peepholes is an LSTM option, found --model {}", self.model.as_str()));
        }
        if self.reset_before && self.model != ModelKind::Gru {
            return Err(format!("--reset-before is a GRU option, found --model {}", self.model.as_str()));
        }
        if self.task.name.is_seq2seq() {
            let task = self.task.name.as_str();
            let unsupported = [
                ("--tbptt", self.tbptt.is_some()),
                ("--proj-size", self.proj_size != 0),
                ("--dropout", self.dropout != 0.0),
                ("--forget-bias", self.forget_bias != 0.0),
                ("--peepholes", self.peepholes),
                ("--reset-before", self.reset_before),
            ];
            if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(format!("{name} is not available for the sequence-to-sequence task {task}"));
            }
        }
        Ok(())
    }

    /// The model configuration for a task of this shape.
    pub fn model_config(&self, shape: &ModelShape) -> SequenceModelConfig {
        let (vocab, input_size) = match shape.input {
            InputKind::Features(n) => (None, n),
            InputKind::Tokens(v) => (Some(v), self.embed.max(1)),
        };
        let mut recurrent = RecurrentConfig::new(self.model.mode(), input_size, self.hidden)
            .num_layers(self.layers)
            .bidirectional(self.bidirectional)
            .dropout(self.dropout)
            .proj_size(self.proj_size)
            .peepholes(self.peepholes)
            .linear_before_reset(!self.reset_before)
            .batch_first(shape.batch_first);
        if self.forget_bias != 0.0 {
            recurrent = recurrent.forget_bias(self.forget_bias);
        }
        SequenceModelConfig { vocab, recurrent, readout: shape.readout, outputs: shape.outputs }
    }

    /// The encoder-decoder of a sequence-to-sequence task with these vocabulary sizes.
    pub fn seq2seq_config(&self, source_vocab: usize, target_vocab: usize) -> Seq2SeqConfig {
        Seq2SeqConfig {
            mode: self.model.mode(),
            source_vocab,
            target_vocab,
            embedding_dim: self.embed.max(1),
            hidden_size: self.hidden,
            num_layers: self.layers,
            bidirectional: self.bidirectional,
            attention: self.attention.and_then(AttentionArg::score),
        }
    }

    /// The trainer configuration.
    pub fn trainer_config(&self) -> TrainerConfig {
        let (optimizer, momentum, weight_decay) = match self.optimizer {
            OptimizerArg::Sgd => (OptimizerKind::Sgd, 0.9, 0.0),
            OptimizerArg::Adam => (OptimizerKind::Adam, 0.0, 0.0),
            OptimizerArg::Adamw => (OptimizerKind::AdamW, 0.0, 0.01),
        };
        TrainerConfig {
            optimizer,
            lr: self.lr,
            momentum,
            weight_decay,
            clip_norm: (self.clip > 0.0).then_some(self.clip),
            schedule: ScheduleKind::Constant,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adding() -> TaskArgs {
        TaskArgs { task: Some(TaskName::Adding), ..TaskArgs::default() }
    }

    #[test]
    fn task_defaults_fill_what_the_user_left_out() {
        let s = Settings::resolve(&adding(), &TrainOptions { hidden: Some(7), ..TrainOptions::default() }).unwrap();
        assert_eq!((s.hidden, s.model, s.task.seq_len), (7, ModelKind::Lstm, 100));
        assert_eq!(s.forget_bias, 1.0);
        let gru = Settings::resolve(&adding(), &TrainOptions { model: Some(ModelKind::Gru), ..Default::default() });
        assert_eq!(gru.unwrap().forget_bias, 0.0, "the forget bias default is the LSTM's only");
    }

    #[test]
    fn unusable_values_name_their_option() {
        let cases = [
            (TrainOptions { hidden: Some(0), ..Default::default() }, "--hidden"),
            (TrainOptions { lr: Some(-1.0), ..Default::default() }, "--lr"),
            (TrainOptions { tbptt: Some(0), ..Default::default() }, "--tbptt"),
            (
                TrainOptions { model: Some(ModelKind::Gru), forget_bias: Some(1.0), ..Default::default() },
                "--forget-bias",
            ),
        ];
        for (options, needle) in cases {
            let err = Settings::resolve(&adding(), &options).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert!(Settings::resolve(&TaskArgs::default(), &TrainOptions::default()).unwrap_err().contains("--task"));
    }

    #[test]
    fn attention_is_for_sequence_to_sequence_tasks_only() {
        let reverse = TaskArgs { task: Some(TaskName::Reverse), ..TaskArgs::default() };
        let s = Settings::resolve(&reverse, &TrainOptions::default()).unwrap();
        assert_eq!(s.attention, Some(AttentionArg::Additive));
        let none = TrainOptions { attention: Some(AttentionArg::None), ..Default::default() };
        assert_eq!(Settings::resolve(&reverse, &none).unwrap().seq2seq_config(13, 13).attention, None);
        let err = Settings::resolve(&adding(), &none).unwrap_err();
        assert!(err.contains("--attention") && err.contains("adding"), "{err}");
        assert_eq!(Settings::resolve(&adding(), &TrainOptions::default()).unwrap().attention, None);
        let tbptt = TrainOptions { tbptt: Some(4), ..Default::default() };
        assert!(Settings::resolve(&reverse, &tbptt).unwrap_err().contains("--tbptt"));
    }
}
