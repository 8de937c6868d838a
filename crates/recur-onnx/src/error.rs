//! The error type of recur-onnx: every way an ONNX file can fail to read or a model to be written, naming what
//! was expected and what was found.

use crate::attributes::NodeLabel;

/// Result alias used throughout recur-onnx.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when reading an ONNX model or tensor, or writing a model as ONNX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid protobuf encoding of the expected message.
    #[error("not a valid {message}: {source}")]
    Decode {
        /// The protobuf message that was expected (`ModelProto`, `TensorProto`).
        message: &'static str,
        /// What the protobuf decoder found wrong.
        source: prost::DecodeError,
    },
    /// A tensor's dimension is negative.
    #[error("tensor `{tensor}`: dimension {index} is {found}; expected a size of 0 or more")]
    NegativeDimension {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
        /// Which dimension, outermost first.
        index: usize,
        /// The dimension found.
        found: i64,
    },
    /// A tensor's dimensions multiply (with its element size) to more bytes than memory can address.
    #[error(
        "tensor `{tensor}`: dimensions {dims:?} of {element_bytes}-byte elements exceed the address space; \
         expected a size that fits in memory"
    )]
    DimensionsOverflow {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
        /// The dimensions found.
        dims: Vec<i64>,
        /// The size of one element in bytes.
        element_bytes: usize,
    },
    /// A tensor holds a different amount of data than its dimensions declare.
    #[error("tensor `{tensor}` of shape {shape:?}: expected {expected} {unit} in `{field}`, found {found}")]
    DataLength {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The field holding the data (`raw_data`, `float_data`, …).
        field: &'static str,
        /// What is counted: `bytes` for `raw_data`, `values` for the typed fields.
        unit: &'static str,
        /// The amount the shape requires.
        expected: usize,
        /// The amount present.
        found: usize,
    },
    /// A tensor's element type is not one this conversion reads.
    #[error("tensor `{tensor}` has data type {found}; expected {expected}")]
    DataType {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
        /// The data types the conversion accepts, in words.
        expected: &'static str,
        /// The data type found: ONNX's name for it, or its number when it has none.
        found: String,
    },
    /// A tensor keeps its data in a file beside the model, and the model was given as bytes (read it with
    /// [`import_model_file`](crate::import_model_file), which reads such files).
    #[error(
        "tensor `{tensor}` keeps its data in an external file; expected the data inside the model (import the model \
         from its path to read the file beside it)"
    )]
    ExternalData {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
    },
    /// A tensor's external data cannot be read.
    #[error("tensor `{tensor}`: external data: {reason}")]
    ExternalFile {
        /// The tensor's name.
        tensor: String,
        /// What is wrong: the entry, the path, the range.
        reason: String,
    },
    /// A tensor has data both in `raw_data` and in a typed field, so which one holds it is ambiguous.
    #[error("tensor `{tensor}` has data in both `raw_data` and `{field}`; expected one of them")]
    ConflictingData {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
        /// The typed field that also holds data.
        field: &'static str,
    },
    /// A tensor is one segment of a larger tensor, which is not read.
    #[error("tensor `{tensor}` is a segment of a larger tensor; expected a whole tensor")]
    Segmented {
        /// The tensor's name (empty when the file gives none).
        tensor: String,
    },
    /// A node's attribute is of the wrong type or out of the range recur supports.
    #[error("node {node}: attribute `{attribute}`: expected {expected}, found {found}")]
    Attribute {
        /// The node.
        node: Box<NodeLabel>,
        /// The attribute's name.
        attribute: String,
        /// What the operator allows.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A node's input has another shape than the operator requires.
    #[error("node {node}: input `{input}`: expected shape {expected}, found {found:?}")]
    InputShape {
        /// The node.
        node: Box<NodeLabel>,
        /// The input's role (`W`, `sequence_lens`, …) and name.
        input: String,
        /// The shape required, in words (`[1, 4·hidden_size, input_size]`).
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A node needs an input whose value is not known: it is neither an initializer, a constant nor a value
    /// given by the caller.
    #[error("node {node}: input `{input}` has no value; expected {expected}")]
    MissingInput {
        /// The node.
        node: Box<NodeLabel>,
        /// The input's role and name.
        input: String,
        /// Where its value should come from.
        expected: String,
    },
    /// A node or a graph recur cannot import, and why.
    #[error("node {node}: {reason}")]
    Unsupported {
        /// The node.
        node: Box<NodeLabel>,
        /// What recur does not support, and what it does.
        reason: String,
    },
    /// A model or an option recur cannot write as ONNX, and why.
    #[error("cannot export to ONNX: {reason}")]
    ExportUnsupported {
        /// What ONNX's operators cannot express, or the option out of range, and what is supported.
        reason: String,
    },
    /// recur refused the converted tensor.
    #[error(transparent)]
    Recur(#[from] recur::Error),
}
