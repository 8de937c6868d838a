//! # recur
//!
//! Recurrent neural networks (vanilla RNN, LSTM, GRU) for Rust, with exactly PyTorch's semantics, parameter
//! names, shapes and default initialisation: a model saved from PyTorch as safetensors loads here and gives the
//! same numbers, and the other way round.
//!
//! recur is not a general tensor or autograd library. Every layer has an explicit forward (and, later, backward)
//! written for speed: one large product for the input projection of all time steps, one product with the
//! recurrent weights and one fused pass over the gates per step, no allocation inside the time loop.
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
//! Layout: [`cells`] hold the gate math of one step, [`driver`] runs any cell over time, layers and directions,
//! [`kernels`] are the only code that speaks in raw slices, [`model_file`] reads and writes safetensors, [`stream`]
//! runs a layer a step at a time with its state kept between calls.

#![warn(missing_docs)]

pub mod cells;
pub mod driver;
pub mod error;
pub mod gradcheck;
pub mod kernels;
pub mod layer;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod nn;
pub mod optim;
pub mod params;
pub mod real;
pub mod stream;
pub mod tensor;
pub mod train;

pub use cells::{GruCell, GruCellConfig, LstmCell, LstmCellConfig, Nonlinearity, RnnCell, RnnCellConfig};
pub use driver::scratch::release as release_scratch;
pub use error::{Error, Result};
pub use layer::{Mode, Recurrent, RecurrentCache, RecurrentConfig, RecurrentGrads, RecurrentOutput};
pub use loss::{BceWithLogitsLoss, CrossEntropyLoss, MseLoss};
pub use model::{ReadoutName, SequenceInput, SequenceModel, SequenceModelCache, SequenceModelConfig};
pub use model_file::LoadOptions;
pub use nn::{Dropout, Embedding, Head, Layout, Linear, Readout, SequenceShape};
pub use optim::{Adam, AdamConfig, AdamW, Optimizer, Schedule, Scheduler, Sgd, SgdConfig};
pub use params::{Module, Param, Trainable};
pub use stream::StreamState;
pub use tensor::Tensor;

/// The README's Rust examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
