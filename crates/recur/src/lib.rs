//! # recur
//!
//! Recurrent neural networks (vanilla RNN, LSTM, GRU) for Rust, with exactly PyTorch's semantics, parameter
//! names, shapes and default initialisation: a model saved from PyTorch as safetensors loads here and gives the
//! same numbers, and the other way round.
//!
//! recur is not a general tensor or autograd library. Every layer has an explicit forward and backward
//! (backpropagation through time, checked against PyTorch and against finite differences) written for speed: one
//! large product for the input projection of all time steps, one product with the recurrent weights and one fused
//! pass over the gates per step, no allocation inside the time loop.
//!
//! ```
//! use recur::{Recurrent, RecurrentConfig, Tensor};
//!
//! // nn.GRU(input_size=4, hidden_size=6, num_layers=2, bidirectional=True, batch_first=True)
//! let config = RecurrentConfig::gru(4, 6).num_layers(2).bidirectional(true).batch_first(true);
//! let gru = Recurrent::with_seed(config, 42)?;
//! let x = Tensor::zeros([3, 10, 4]); // (B, T, I)
//! let out = gru.forward(&x, None, None)?;
//! assert_eq!(out.output.shape(), &[3, 10, 12]); // (B, T, D·H)
//! assert_eq!(out.h_n.shape(), &[4, 3, 6]); // (L·D, B, H)
//! # Ok::<(), recur::Error>(())
//! ```
//!
//! ## What is where
//!
//! | need | use |
//! |---|---|
//! | `nn.RNN`, `nn.LSTM`, `nn.GRU` over whole (padded) sequences, forward and backward | [`Recurrent`] ([`layer`]) |
//! | `nn.RNNCell`, `nn.LSTMCell`, `nn.GRUCell` | [`RnnCell`], [`LstmCell`], [`GruCell`] ([`cells`]) |
//! | one step at a time over live streams, state kept and saved as bytes | [`StreamState`] ([`stream`]) |
//! | weights from and to PyTorch (safetensors, `state_dict` names) | [`model_file`], [`LoadOptions`] |
//! | embedding → recurrent layer → head, as one model | [`SequenceModel`] ([`model`]) |
//! | heads, losses, optimizers | [`nn`], [`loss`], [`optim`] |
//! | `nn.MultiheadAttention`; Bahdanau's and Luong's attention of a decoder over an encoder | [`attention`] |
//! | an attentional encoder–decoder: teacher-forced training, greedy and beam-search decoding | [`seq2seq::Seq2Seq`] |
//! | a training loop with truncated BPTT and exact checkpoints | [`train::Trainer`] |
//! | weights in bf16, f16 or int8 for inference, computed from as stored | [`Recurrent::quantize`], [`SequenceModel::quantize`], [`Scheme`] |
//!
//! Every failure caused by input (a shape, a file, a configuration) is an [`Error`] naming what was expected and
//! what was found; recur does not panic on user input. Work runs on the calling thread, except where a call's
//! docs say it uses Rayon's pool (whole-sequence passes over large batches, the two directions of a bidirectional
//! layer). Built-in tasks and data loaders live in the `recur-tasks` crate, the command line in `recur-cli`.

#![warn(missing_docs)]

mod driver;
mod gradcheck;
mod kernels;
mod scratch;

pub mod attention;
pub mod cells;
pub mod error;
pub mod layer;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod nn;
pub mod optim;
pub mod params;
pub mod seq2seq;
pub mod stream;
pub mod tensor;
pub mod train;

pub use cells::{GruCell, GruCellConfig, LstmCell, LstmCellConfig, Nonlinearity, RnnCell, RnnCellConfig};
pub use error::{Error, Result};
pub use kernels::Real;
pub use kernels::quant::{Int8Scale, Scheme, StoredMatrix, StoredValues};
pub use layer::{
    CellCache, CellGrads, Mode, Recurrent, RecurrentCache, RecurrentConfig, RecurrentGrads, RecurrentOutput,
};
pub use loss::{BceWithLogitsLoss, CrossEntropyLoss, MseLoss};
pub use model::{ReadoutName, SequenceInput, SequenceModel, SequenceModelCache, SequenceModelConfig};
pub use model_file::LoadOptions;
pub use nn::{
    Dropout, Embedding, Head, LayerNorm, LayerNormCache, Layout, Linear, PositionalEncoding, Readout, SequenceShape,
};
pub use optim::{Adam, AdamConfig, AdamW, Optimizer, Schedule, Scheduler, Sgd, SgdConfig};
pub use params::{Module, Param, Trainable};
pub use stream::{StepWorker, StreamState};
pub use tensor::Tensor;

/// Internals that recur's own benches and tests reach: no stability promise, not part of the API.
#[doc(hidden)]
pub mod internals {
    pub use crate::driver::{Cell, InitialStates, ParallelRuns, Sequences, Stack, StackTrace, parallel_runs};
    pub use crate::scratch::release as release_scratch;

    /// Finite-difference gradient checks in `f64`.
    pub mod gradcheck {
        pub use crate::gradcheck::*;
    }

    /// The products recur's layers run, for the step-product bench.
    pub mod kernels {
        pub use crate::kernels::{gemm, packed, quant, rowvec};
    }
}

/// The README's Rust examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The Rust examples of the training notes, run as doc tests like the README's.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/training.md")]
struct TrainingDocDoctests;
