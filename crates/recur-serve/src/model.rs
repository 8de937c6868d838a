//! The model a server serves, a step of a batch of streams at a time: a recurrent layer alone (its output is the
//! last layer's `h_t`), or a sequence model whose head reads every step (an embedding of token ids or features
//! in, the head's outputs out).

use std::path::Path;

use recur::model_file::{LoadOptions, TensorFile};
use recur::{Error, ReadoutName, Recurrent, Result, SequenceModel, StreamState};

/// What a stream's step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepInput {
    /// `I` features (the protocol's `FP32`).
    Features(usize),
    /// One token id below the vocabulary's size (the protocol's `INT64` or `INT32`).
    Tokens(usize),
}

/// A model served a step at a time.
#[derive(Debug)]
pub struct ServedModel {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Layer(Recurrent),
    Sequence(Box<SequenceModel>),
}

/// One step's inputs for a batch of streams, a row per stream.
#[derive(Clone, Copy, Debug)]
pub enum StepRows<'a> {
    /// `B × I` features.
    Features(&'a [f32]),
    /// `B` token ids, each checked below the vocabulary's size.
    Tokens(&'a [usize]),
}

impl ServedModel {
    /// Reads a model file: a sequence model as `recur train` writes it (its configuration in the `model`
    /// metadata), else a recurrent layer (as `Recurrent::save` or PyTorch's `state_dict` writes it). Fails when
    /// the model cannot be stepped (see [`ServedModel::from_sequence_model`]).
    pub fn load(path: impl AsRef<Path>, name: impl Into<String>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        if file.metadata.contains_key("model") {
            Self::from_sequence_model(name, SequenceModel::from_tensor_file(&file)?)
        } else {
            Self::from_layer(name, Recurrent::from_tensor_file(&file, &LoadOptions::default())?)
        }
    }

    /// Serves a recurrent layer alone: a step's output is its last layer's `h_t`. Fails for a bidirectional
    /// layer, whose reverse direction needs the end of a stream.
    pub fn from_layer(name: impl Into<String>, layer: Recurrent) -> Result<Self> {
        StreamState::new(&layer, 0)?;
        Ok(ServedModel { name: name.into(), kind: Kind::Layer(layer) })
    }

    /// Serves a sequence model whose head reads every step (`every_step`, or `last`, which is the head of the
    /// latest step): a step's output is the head's. Fails for a `mean` or `attention` readout, which read a whole
    /// sequence, and for a bidirectional layer.
    pub fn from_sequence_model(name: impl Into<String>, model: SequenceModel) -> Result<Self> {
        let readout = model.config().readout;
        if !matches!(readout, ReadoutName::EveryStep | ReadoutName::Last) {
            return Err(Error::config(format!(
                "a served model's head must read every step (`every_step` or `last` readout), found {readout:?}, \
                 which reads the whole sequence"
            )));
        }
        StreamState::new(model.recurrent(), 0)?;
        Ok(ServedModel { name: name.into(), kind: Kind::Sequence(Box::new(model)) })
    }

    /// The name clients address it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The recurrent layer that carries each stream's state.
    pub fn recurrent(&self) -> &Recurrent {
        match &self.kind {
            Kind::Layer(layer) => layer,
            Kind::Sequence(model) => model.recurrent(),
        }
    }

    /// What one step of a stream takes.
    pub fn input(&self) -> StepInput {
        match &self.kind {
            Kind::Sequence(model) if model.embedding().is_some() => {
                StepInput::Tokens(model.embedding().map_or(0, |e| e.num_embeddings()))
            }
            _ => StepInput::Features(self.recurrent().config().input_size),
        }
    }

    /// Values one step of a stream gives.
    pub fn output_size(&self) -> usize {
        match &self.kind {
            Kind::Layer(layer) => layer.config().output_size(),
            Kind::Sequence(model) => model.head().linear().out_features(),
        }
    }

    /// A state for a batch of these streams, empty.
    pub fn new_state(&self) -> Result<StreamState> {
        StreamState::new(self.recurrent(), 0)
    }

    /// Advances every stream of `state` by one step from `rows` (one per stream) and writes each stream's output
    /// row into `out` (`B ×` [`ServedModel::output_size`]). `features` is a work buffer for embedded tokens.
    pub fn step(
        &self,
        state: &mut StreamState,
        rows: StepRows<'_>,
        features: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<()> {
        let batch = state.batch();
        let x: &[f32] = match (rows, &self.kind) {
            (StepRows::Features(x), _) => x,
            (StepRows::Tokens(ids), Kind::Sequence(model)) => {
                let embedding =
                    model.embedding().ok_or_else(|| Error::config("token ids for a model without an embedding"))?;
                features.resize(ids.len() * embedding.embedding_dim(), 0.0);
                embedding.forward_into(ids, features)?;
                features
            }
            (StepRows::Tokens(_), Kind::Layer(_)) => {
                return Err(Error::config("token ids for a layer without an embedding"));
            }
        };
        let h = state.step(self.recurrent(), x)?;
        match &self.kind {
            Kind::Layer(_) => out.copy_from_slice(h),
            Kind::Sequence(model) => model.head().linear().forward_into(h, batch, out)?,
        }
        Ok(())
    }
}
