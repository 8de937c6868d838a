//! ONNX graphs into recur models: the recurrent nodes of a graph, with the ops exporters put around them, become
//! one [`Recurrent`] stack, or a [`SequenceModel`] when an embedding or a linear head surrounds it.
//!
//! The importer walks the nodes in order and follows what each does to the model's data (see `walk`):
//!
//! | around the layers | ops |
//! |---|---|
//! | a batch-first input and output | `Transpose(perm [1, 0, 2])` |
//! | a layer's `Y (T, D, B, H)` into the next layer's `X (T, B, D·H)` | `Transpose(perm [0, 2, 1, 3])` + `Reshape`, or `Squeeze(axes [1])` when `D = 1` |
//! | zero initial states | an all-zero initializer or `Constant`, `ConstantOfShape` or `Expand` of zeros, sliced |
//! | given initial states `(L·D, B, H)` | `Slice` per layer along axis 0 |
//! | the final states `h_n`, `c_n` | `Concat` of the layers' `Y_h`, `Y_c` along axis 0 |
//! | shapes | `Shape`, `Gather`, `Slice`, `Unsqueeze`, `Concat`, `Cast` and arithmetic on shapes |
//! | an embedding | `Gather` of a constant table by the token ids |
//! | a linear head on every step | `MatMul` by a constant then `Add` of a constant |
//! | a linear head on the last step / the mean | `Gather(−1)` or `Slice` + `Squeeze`, or `ReduceMean`, then `Gemm` or `MatMul` + `Add` |
//! | anything | `Identity`, `Dropout` (inference) |
//!
//! Anything else is an [`Error::Unsupported`] naming the node and its operator.

mod assemble;
mod run;
mod value;
mod walk;

use recur::{Recurrent, SequenceModel};

use crate::decode::read_model;
use crate::error::{Error, Result};

pub use run::InputValue;

/// The recur model a graph became.
#[derive(Clone, Debug)]
pub enum ImportedModel {
    /// A recurrent stack alone.
    Layer(Recurrent),
    /// An embedding or features, a recurrent stack and a linear head.
    Sequence(Box<SequenceModel>),
}

/// What a graph output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRole {
    /// The last layer's outputs, as PyTorch lays them out: `(T, B, D·H)` or `(B, T, D·H)`.
    Output,
    /// The last layer's `Y` as ONNX lays it out, `(T, D, B, H)`.
    OnnxY,
    /// The final hidden states, `(L·D, B, H)`.
    FinalH,
    /// The final cell states (LSTM), `(L·D, B, H)`.
    FinalC,
    /// The head's predictions: `(T, B, O)` or `(B, T, O)` on every step, `(B, O)` for the last or mean step.
    Predictions,
    /// The head's predictions as rows, `(rows, O)`, as [`SequenceModel::forward`] returns them (what
    /// `recur export` writes).
    PredictionRows,
}

/// The graph's inputs and outputs as the model reads and writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The sequence input (features, or token ids when the model has an embedding).
    pub input: String,
    /// The `sequence_lens` input, when the graph has one.
    pub sequence_lens: Option<String>,
    /// The initial hidden states input, `(L·D, B, H)`, when the graph has one.
    pub initial_h: Option<String>,
    /// The initial cell states input (LSTM), when the graph has one.
    pub initial_c: Option<String>,
    /// Every graph output, in order, with what it holds.
    pub outputs: Vec<(String, OutputRole)>,
}

/// An imported graph: the model and how the graph's names map onto it.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The model.
    pub model: ImportedModel,
    /// The graph's inputs and outputs.
    pub signature: Signature,
}

impl Imported {
    /// The recurrent stack.
    pub fn recurrent(&self) -> &Recurrent {
        match &self.model {
            ImportedModel::Layer(layer) => layer,
            ImportedModel::Sequence(model) => model.recurrent(),
        }
    }

    /// Saves the model as a recur model file (safetensors with its configuration).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        match &self.model {
            ImportedModel::Layer(layer) => layer.save(path)?,
            ImportedModel::Sequence(model) => model.save(path)?,
        }
        Ok(())
    }
}

/// Imports an ONNX model from the bytes of a `.onnx` file (see the [module documentation](self)). A model whose
/// weights are kept in files beside it is an [`Error::ExternalData`]: use [`import_model_file`].
pub fn import_model(bytes: &[u8]) -> Result<Imported> {
    import_decoded(read_model(bytes)?)
}

/// Imports the ONNX model at `path`, with the weights it keeps in files beside it (`torch.onnx.export` writes
/// them so by default; see [`load_external_data`](crate::external::load_external_data)).
pub fn import_model_file(path: impl AsRef<std::path::Path>) -> Result<Imported> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::ExternalFile {
        tensor: String::new(),
        reason: format!("cannot read the model {}: {e}", path.display()),
    })?;
    let mut model = read_model(&bytes)?;
    let folder = path.parent().unwrap_or(std::path::Path::new("."));
    crate::external::load_external_data(&mut model, folder)?;
    import_decoded(model)
}

fn import_decoded(model: crate::proto::ModelProto) -> Result<Imported> {
    let graph = model.graph.as_ref().ok_or_else(|| graph_error("the model has no graph"))?;
    if let Some(opset) = model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx"))
        && opset.version() < 7
    {
        return Err(graph_error(format!("opset {}; recur reads opset 7 and later", opset.version())));
    }
    let walk = walk::walk(graph)?;
    assemble::assemble(graph, walk)
}

/// An [`Error::Unsupported`] about the model as a whole rather than one node.
fn graph_error(reason: impl Into<String>) -> Error {
    Error::Unsupported {
        node: Box::new(crate::attributes::NodeLabel { name: "(graph)".into(), op: "ModelProto".into() }),
        reason: reason.into(),
    }
}
