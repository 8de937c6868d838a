//! ONNX files for recur: recurrent models in and out.
//!
//! - [`import`]: an ONNX graph (LSTM, GRU or RNN nodes with the ops exporters put around them: reshapes, state
//!   slices, an embedding, a linear head) becomes a recur [`Recurrent`](recur::Recurrent) or
//!   [`SequenceModel`](recur::SequenceModel), run on the graph's own input and output names
//!   ([`import_model_file`], which also reads weights kept beside the model, or [`import_model`] from bytes).
//! - [`export`]: recur's layers and sequence models as ONNX graphs that ONNX Runtime serves, with dynamic batch and
//!   time axes ([`export_recurrent`], [`export_sequence_model`]).
//! - [`RecurrentOp`]: one LSTM, GRU or RNN node run alone with ONNX's shapes, any `direction` and `layout` (what
//!   ONNX's node tests check).
//!
//! ONNX's options beyond PyTorch's (activations, `clip`, peepholes, `input_forget`, `linear_before_reset`) are
//! options of recur's own cells, so an imported model trains and streams like any other. The protobuf types are in
//! [`proto`], generated once from ONNX's `onnx.proto` and committed.
//!
//! ```no_run
//! let imported = recur_onnx::import_model_file("lstm.onnx")?;   // from torch.onnx.export
//! imported.save("lstm.safetensors")?;                           // a recur model file
//! let graph = recur_onnx::export_recurrent(imported.recurrent(), &Default::default())?;
//! std::fs::write("lstm-recur.onnx", recur_onnx::model_bytes(&graph)).unwrap();
//! # Ok::<(), recur_onnx::Error>(())
//! ```
//!
//! Everything read from a file is checked before it is trusted: a malformed file is an [`Error`] naming what was
//! expected and what was found, never a panic, and a tensor's declared dimensions are checked against the bytes
//! actually present before anything of the declared size is allocated.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod attributes;
pub mod decode;
pub mod error;
pub mod export;
pub mod external;
pub mod import;
pub mod op;
pub mod proto;
pub mod recurrent;
pub mod tensor;

pub use decode::{read_model, read_tensor};
pub use error::{Error, Result};
pub use export::{ExportOptions, export_recurrent, export_sequence_model, model_bytes};
pub use import::{Imported, ImportedModel, InputValue, OutputRole, Signature, import_model, import_model_file};
pub use op::{OpInputs, OpOutputs, RecurrentOp};
pub use recurrent::{Direction, RecurrentNode};
pub use tensor::{IntegerTensor, to_f32_tensor, to_integer_tensor};
