//! The recurrent layer kinds the command line names (`--model`), below both the options and the task registry
//! that pick one.

use clap::ValueEnum;
use recur::Mode;
use serde::{Deserialize, Serialize};

/// The `--model` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Vanilla RNN with tanh.
    Rnn,
    /// Vanilla RNN with ReLU.
    RnnRelu,
    /// LSTM.
    Lstm,
    /// GRU.
    Gru,
}

impl ModelKind {
    /// The layer's mode.
    pub fn mode(self) -> Mode {
        match self {
            ModelKind::Rnn => Mode::RnnTanh,
            ModelKind::RnnRelu => Mode::RnnRelu,
            ModelKind::Lstm => Mode::Lstm,
            ModelKind::Gru => Mode::Gru,
        }
    }

    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Rnn => "rnn",
            ModelKind::RnnRelu => "rnn-relu",
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
        }
    }
}

/// `LSTM, 2 layers, bidirectional, batch-first`.
pub fn describe(config: &recur::RecurrentConfig) -> String {
    let mut out = format!("{}, {} → {}", config.mode, config.input_size, config.hidden_size);
    if config.num_layers > 1 {
        out.push_str(&format!(", {} layers", config.num_layers));
    }
    if config.bidirectional {
        out.push_str(", bidirectional");
    }
    if config.batch_first {
        out.push_str(", batch-first");
    }
    out
}
