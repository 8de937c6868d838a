//! ONNX files for recur.
//!
//! This crate reads ONNX models (`.onnx`, a serialized `ModelProto`) and tensors (`.pb`, a serialized
//! `TensorProto`, as in ONNX's node tests) and turns tensors into [`recur::Tensor`]s; it also writes recur's
//! layers and sequence models as ONNX graphs that onnxruntime runs ([`export`]). The protobuf types are in
//! [`proto`]; they are generated once from ONNX's `onnx.proto` and committed.
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
