//! The one error type of recur: every failure caused by user input (a shape, a file, a configuration) is one of
//! these, with a message that names what was expected and what was found.

use std::path::PathBuf;

/// Result alias used throughout recur.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when building, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor handed to a model has the wrong shape.
    #[error("{what}: expected shape {expected}, found {found:?}")]
    Shape {
        /// Which tensor (for example `input` or `h_0`).
        what: String,
        /// The expected shape, in words or as a list (`[T, B, 8]`).
        expected: String,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A tensor was built from data whose length does not match its shape.
    #[error("tensor of shape {shape:?} needs {expected} values, found {found}")]
    DataLength {
        /// The requested shape.
        shape: Vec<usize>,
        /// The product of the shape.
        expected: usize,
        /// The number of values given.
        found: usize,
    },
    /// A model file lacks a tensor the configuration requires.
    #[error("missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// PyTorch `state_dict` name of the tensor.
        name: String,
        /// Its expected shape.
        expected: Vec<usize>,
    },
    /// A model file holds a tensor the configuration has no place for.
    #[error("unexpected tensor `{name}` with shape {shape:?} (the configuration has no such parameter)")]
    UnexpectedTensor {
        /// Name of the extra tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A parameter tensor has the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    TensorShape {
        /// PyTorch `state_dict` name of the tensor.
        name: String,
        /// The shape the configuration requires.
        expected: Vec<usize>,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type cannot be converted to `f32`.
    #[error("tensor `{name}` has dtype {dtype}; expected F32, F64, F16 or BF16")]
    Dtype {
        /// Name of the tensor.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// An index (an embedding index, a class target) is outside its valid range.
    #[error("{what} {index} is out of range (valid: {valid})")]
    Index {
        /// What the index is, e.g. `embedding index`.
        what: String,
        /// The index as given.
        index: String,
        /// The valid range, in words.
        valid: String,
    },
    /// Training produced a non-finite loss or gradient; training stops rather than continue on garbage.
    #[error("training step {step}: the {what} is not finite ({value})")]
    NonFinite {
        /// `loss` or `gradient norm`.
        what: String,
        /// The step (counted from 0) at which it happened.
        step: u64,
        /// The value found (NaN or ±inf).
        value: f32,
    },
    /// A model file's configuration declares a size (a count of layers, a hidden size, a vocabulary) that its
    /// tensors do not have. Files are checked for this before anything of the declared sizes is allocated, so
    /// that a file cannot make a loader allocate more than it holds.
    #[error("the configuration's `{field}` = {declared} does not match the tensors: {found}")]
    DeclaredSize {
        /// The configuration field, e.g. `hidden_size` (`recurrent.hidden_size` in a sequence model's).
        field: String,
        /// The value the configuration declares.
        declared: String,
        /// What the tensors hold instead: the tensor, the shape the declared value needs and the shape found.
        found: String,
    },
    /// A configuration is invalid or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file is not a valid safetensors file (or its metadata is malformed).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Saved bytes (a parked stream state) are corrupt, of an unknown version, or belong to another model.
    #[error("{what}: {reason}")]
    Decode {
        /// What was being restored, e.g. `stream state`.
        what: String,
        /// What is wrong with the bytes, naming what was expected and what was found.
        reason: String,
    },
    /// A data file (a CSV table, a text corpus) cannot be used: missing or empty, not UTF-8, a missing column, a
    /// non-numeric cell, a series too short for the window. Names the file, the 1-based line when the problem
    /// sits on one, and the problem.
    #[error("{}{}: {problem}", .file.display(), .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Data {
        /// The file (or a name such as `built-in text` for data that came from memory).
        file: PathBuf,
        /// The 1-based line of the problem, when it has one (a whole-file problem such as emptiness has none).
        line: Option<usize>,
        /// What is wrong, naming what was expected and what was found.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Shape`]: `what` should have had the shape `expected` (in words or as a list) but has `found`.
    pub fn shape(what: impl Into<String>, expected: impl Into<String>, found: &[usize]) -> Self {
        Error::Shape { what: what.into(), expected: expected.into(), found: found.to_vec() }
    }

    /// An [`Error::Data`] about `file` (at the 1-based `line` when the problem sits on one), for loaders of a
    /// user's data.
    pub fn data(file: impl Into<PathBuf>, line: Option<usize>, problem: impl Into<String>) -> Self {
        Error::Data { file: file.into(), line, problem: problem.into() }
    }

    /// An [`Error::Config`] saying what is invalid about a configuration.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }
}
