//! A complete sequence model, the shape most tasks need: an optional embedding (for tokens), a recurrent layer,
//! and a head. Parameters are named as a PyTorch module with attributes `embedding`, `rnn` and `head` would name
//! them (`embedding.weight`, `rnn.weight_ih_l0`, `head.weight`), so a model file moves between the two.

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::attention::{AttentionPooling, PoolingCache};
use crate::error::{Error, Result};
use crate::kernels::quant::{Scheme, StoredMatrix};
use crate::layer::{Recurrent, RecurrentCache, RecurrentConfig, RecurrentOutput};
use crate::model_file::{self, TensorFile, TensorShapes};
use crate::nn::{Embedding, Head, HeadCache, Layout, Readout, SequenceShape};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable, prefixed};
use crate::tensor::Tensor;

/// The configuration of a [`SequenceModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceModelConfig {
    /// Vocabulary size for token input (an embedding of `recurrent.input_size` values per token), or `None` for
    /// feature input.
    pub vocab: Option<usize>,
    /// The recurrent layer.
    pub recurrent: RecurrentConfig,
    /// How the head reads the recurrent output.
    pub readout: ReadoutName,
    /// Values predicted per row (classes, or regression targets).
    pub outputs: usize,
}

/// [`Readout`] as it is written in a model file's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadoutName {
    /// [`Readout::Last`].
    Last,
    /// [`Readout::Mean`].
    Mean,
    /// [`Readout::EveryStep`].
    EveryStep,
    /// Many-to-one: the steps weighed by [`AttentionPooling`] (parameters under `pool.`), then the head.
    Attention,
}

impl From<ReadoutName> for Readout {
    fn from(r: ReadoutName) -> Readout {
        match r {
            // The head reads the pooled vector as a sequence of one step.
            ReadoutName::Last | ReadoutName::Attention => Readout::Last,
            ReadoutName::Mean => Readout::Mean,
            ReadoutName::EveryStep => Readout::EveryStep,
        }
    }
}

/// The input of a [`SequenceModel`].
#[derive(Clone, Copy, Debug)]
pub enum SequenceInput<'a> {
    /// Features, `(B, T, I)` when the recurrent layer is batch-first, else `(T, B, I)`.
    Features(&'a Tensor),
    /// Token ids laid out like the features would be (batch-first or time-major), `steps × batch` of them.
    Tokens {
        /// The ids.
        ids: &'a [usize],
        /// Time steps `T`.
        steps: usize,
        /// Batch size `B`.
        batch: usize,
    },
}

/// An embedding (optional), a recurrent layer and a head.
///
/// Its passes may use Rayon's pool as [`Recurrent`]'s do (see its **Threads**), with the same bits as one thread.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceModel {
    config: SequenceModelConfig,
    embedding: Option<Embedding>,
    rnn: Recurrent,
    pool: Option<AttentionPooling>,
    head: Head,
}

/// What [`SequenceModel::forward_train`] keeps for [`SequenceModel::backward`].
#[derive(Clone, Debug)]
pub struct SequenceModelCache {
    tokens: Option<Vec<usize>>,
    rnn: RecurrentCache,
    pool: Option<PoolingCache>,
    head: HeadCache<f32>,
    shape: SequenceShape,
}

impl SequenceModel {
    /// A model with PyTorch's default initialisation, drawn from `rng`.
    pub fn new(config: SequenceModelConfig, rng: &mut impl Rng) -> Result<Self> {
        config.recurrent.validate()?;
        let embedding = match config.vocab {
            Some(vocab) => Some(Embedding::new(vocab, config.recurrent.input_size, None, rng)?),
            None => None,
        };
        let rnn = Recurrent::new(config.recurrent.clone(), rng)?;
        let features = config.recurrent.directions() * config.recurrent.output_size();
        let pool = match config.readout {
            ReadoutName::Attention => Some(AttentionPooling::new(features, features, rng)?),
            _ => None,
        };
        let head = Head::new(config.readout.into(), features, config.outputs, rng)?;
        Ok(SequenceModel { config, embedding, rnn, pool, head })
    }

    /// The configuration.
    pub fn config(&self) -> &SequenceModelConfig {
        &self.config
    }

    /// The embedding, for a model of tokens.
    pub fn embedding(&self) -> Option<&Embedding> {
        self.embedding.as_ref()
    }

    /// The head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The recurrent layer.
    pub fn recurrent(&self) -> &Recurrent {
        &self.rnn
    }

    /// Rows of predictions for a batch: `B` (many-to-one) or `T·B` (many-to-many, in the input's order).
    pub fn rows(&self, steps: usize, batch: usize) -> usize {
        self.head.rows(&self.shape(steps, batch))
    }

    fn shape(&self, steps: usize, batch: usize) -> SequenceShape {
        let r = &self.config.recurrent;
        let layout = if r.batch_first { Layout::BatchFirst } else { Layout::TimeMajor };
        SequenceShape { steps, batch, features: r.directions() * r.output_size(), layout }
    }

    /// The recurrent layer's input as features, and its steps and batch.
    fn features(&self, input: SequenceInput<'_>) -> Result<(Tensor, usize, usize)> {
        let batch_first = self.config.recurrent.batch_first;
        match (input, &self.embedding) {
            (SequenceInput::Features(x), None) => {
                let (steps, batch) = match *x.shape() {
                    [a, b, _] if batch_first => (b, a),
                    [a, b, _] => (a, b),
                    _ => return Err(Error::shape("input", "[B, T, I] or [T, B, I]", x.shape())),
                };
                Ok((x.clone(), steps, batch))
            }
            (SequenceInput::Tokens { ids, steps, batch }, Some(embedding)) => {
                if ids.len() != steps * batch {
                    return Err(Error::shape(
                        "tokens",
                        format!("{} ids ({steps} steps × {batch})", steps * batch),
                        &[ids.len()],
                    ));
                }
                let x = embedding.forward(ids)?;
                let dim = self.config.recurrent.input_size;
                let shape = if batch_first { [batch, steps, dim] } else { [steps, batch, dim] };
                Ok((Tensor::new(shape, x)?, steps, batch))
            }
            (SequenceInput::Features(_), Some(_)) => Err(Error::config("this model reads tokens, not features")),
            (SequenceInput::Tokens { .. }, None) => Err(Error::config("this model reads features, not tokens")),
        }
    }

    /// Predictions, `rows × outputs`, in inference mode (no dropout), from the initial state in `state` (zeros
    /// when empty). With `lengths` (one per sequence, in `1..=T`), the batch is padded and each sequence runs for
    /// its own length: see [`Recurrent::forward_with_lengths`]; a many-to-one head reads each sequence's own last
    /// valid step.
    pub fn forward(
        &self,
        input: SequenceInput<'_>,
        lengths: Option<&[usize]>,
        state: &CarriedState,
    ) -> Result<(Vec<f32>, RecurrentOutput)> {
        let (x, steps, batch) = self.features(input)?;
        let out = match lengths {
            None => self.rnn.forward(&x, state.h0(), state.c0())?,
            Some(lengths) => self.rnn.forward_with_lengths(&x, lengths, state.h0(), state.c0())?,
        };
        let (y, _, _) = self.read(out.output.data(), self.shape(steps, batch), lengths)?;
        Ok((y, out))
    }

    /// [`SequenceModel::forward`] in training mode (dropout between recurrent layers, drawn from `rng`), keeping
    /// what [`SequenceModel::backward`] needs.
    pub fn forward_train(
        &self,
        input: SequenceInput<'_>,
        lengths: Option<&[usize]>,
        state: &CarriedState,
        rng: &mut impl Rng,
    ) -> Result<(Vec<f32>, RecurrentOutput, SequenceModelCache)> {
        let (x, steps, batch) = self.features(input)?;
        let (out, rnn) = match lengths {
            None => self.rnn.forward_train(&x, state.h0(), state.c0(), rng)?,
            Some(lengths) => self.rnn.forward_train_with_lengths(&x, lengths, state.h0(), state.c0(), rng)?,
        };
        let shape = self.shape(steps, batch);
        let (y, pool, head) = self.read(out.output.data(), shape, lengths)?;
        let tokens = match input {
            SequenceInput::Tokens { ids, .. } => Some(ids.to_vec()),
            SequenceInput::Features(_) => None,
        };
        Ok((y, out, SequenceModelCache { tokens, rnn, pool, head, shape }))
    }

    /// The head's predictions from the recurrent output, through the attention pooling when there is one.
    fn read(
        &self,
        output: &[f32],
        shape: SequenceShape,
        lengths: Option<&[usize]>,
    ) -> Result<(Vec<f32>, Option<PoolingCache>, HeadCache<f32>)> {
        match &self.pool {
            Some(pool) => {
                let (pooled, cache) = pool.forward_train(output, shape, lengths)?;
                let one_step = SequenceShape { steps: 1, layout: Layout::BatchFirst, ..shape };
                let (y, head) = self.head.forward(&pooled, one_step, None)?;
                Ok((y, Some(cache), head))
            }
            None => {
                let (y, head) = self.head.forward(output, shape, lengths)?;
                Ok((y, None, head))
            }
        }
    }

    /// For an every-step head over a padded batch: which prediction rows are real steps (`true`) rather than
    /// padding, in the order of the predictions. `None` for a many-to-one head or without lengths.
    pub fn valid_rows(&self, steps: usize, lengths: Option<&[usize]>) -> Option<Vec<bool>> {
        let lengths = lengths?;
        if Readout::from(self.config.readout) != Readout::EveryStep {
            return None;
        }
        let batch = lengths.len();
        Some(if self.config.recurrent.batch_first {
            (0..batch).flat_map(|b| (0..steps).map(move |t| t < lengths[b])).collect()
        } else {
            (0..steps).flat_map(|t| lengths.iter().map(move |&n| t < n)).collect()
        })
    }

    /// Backpropagation from `∂L/∂predictions` through the head, the recurrent layer (through time) and the
    /// embedding, accumulating every parameter's gradient.
    pub fn backward(&mut self, cache: &SequenceModelCache, d_predictions: &[f32]) -> Result<()> {
        let mut d_output = self.head.backward(&cache.head, d_predictions)?;
        if let (Some(pool), Some(pool_cache)) = (&mut self.pool, &cache.pool) {
            d_output = pool.backward(pool_cache, &d_output)?;
        }
        let s = cache.shape;
        let output_shape = match s.layout {
            Layout::BatchFirst => [s.batch, s.steps, s.features],
            Layout::TimeMajor => [s.steps, s.batch, s.features],
        };
        let d_output = Tensor::new(output_shape, d_output)?;
        match (&mut self.embedding, &cache.tokens) {
            (Some(embedding), Some(tokens)) => {
                let grads = self.rnn.backward(&cache.rnn, &d_output, None, None)?;
                embedding.backward(tokens, grads.input.data())?;
            }
            // Raw features need no gradient.
            _ => {
                self.rnn.backward_without_input_grad(&cache.rnn, &d_output, None, None)?;
            }
        }
        Ok(())
    }

    /// Saves the parameters (PyTorch names) with the configuration as JSON in the `config` metadata; the weight
    /// matrices of a quantized model as they are stored (see [`model_file`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::to_string(&self.config).expect("a configuration always serialises");
        let metadata = HashMap::from([("model".to_string(), json)]);
        TensorFile::write_with_stored(path, &self.state_dict(), &self.stored_weights(), &metadata)
    }

    /// How the weight matrices are stored: `None` for `f32`.
    pub fn scheme(&self) -> Option<Scheme> {
        self.rnn.scheme().or(self.head.linear().scheme())
    }

    /// The same model with its weight matrices stored in `scheme`: the embedding (int8: a scale per token), every
    /// `weight_ih` and `weight_hh`, and the head's weight; biases (and an attention readout's pooling) stay `f32`.
    /// See [`Recurrent::quantize`] for what it refuses.
    pub fn quantize(&self, scheme: Scheme) -> Result<SequenceModel> {
        let mut out = self.clone();
        out.rnn = self.rnn.quantize(scheme).map_err(|e| prefix_error(e, "rnn"))?;
        if let Some(e) = &mut out.embedding {
            let m = e.quantize_weight(scheme, "embedding.weight")?;
            e.set_stored(m);
        }
        let m = self.head.linear().quantize_weight(scheme, "head.weight")?;
        out.head.linear_mut().set_stored(m);
        Ok(out)
    }

    /// The stored weight matrices under their names in the model's `state_dict` (`rnn.weight_ih_l0`, …).
    pub fn stored_weights(&self) -> Vec<(String, &StoredMatrix)> {
        let mut all: Vec<(String, &StoredMatrix)> = Vec::new();
        if let Some(m) = self.embedding.as_ref().and_then(Embedding::stored) {
            all.push(("embedding.weight".into(), m));
        }
        all.extend(self.rnn.stored_weights().into_iter().map(|(name, m)| (format!("rnn.{name}"), m)));
        if let Some(m) = self.head.linear().stored() {
            all.push(("head.weight".into(), m));
        }
        all
    }

    /// Takes this model's stored matrices out of `stored`.
    fn take_stored_weights(&mut self, stored: &mut HashMap<String, StoredMatrix>) -> Result<()> {
        if let (Some(e), Some(m)) = (&mut self.embedding, stored.remove("embedding.weight")) {
            e.set_stored(m);
        }
        let mut rnn: HashMap<String, StoredMatrix> = stored
            .keys()
            .filter(|name| name.starts_with("rnn."))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .map(|name| (name["rnn.".len()..].to_string(), stored.remove(&name).expect("listed")))
            .collect();
        self.rnn.take_stored_weights(&mut rnn)?;
        stored.extend(rnn.into_iter().map(|(name, m)| (format!("rnn.{name}"), m)));
        if let Some(m) = stored.remove("head.weight") {
            self.head.linear_mut().set_stored(m);
        }
        Ok(())
    }

    /// Loads a model written by [`SequenceModel::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        Self::from_tensor_file(&file).map_err(|e| match e {
            Error::Config(reason) => Error::Format { path: path.into(), reason },
            other => other,
        })
    }

    /// Builds a model from tensors and metadata already read (the `model` metadata key holds the configuration).
    pub fn from_tensor_file(file: &TensorFile) -> Result<Self> {
        let json =
            file.metadata.get("model").ok_or_else(|| Error::config("no `model` configuration in the metadata"))?;
        let config: SequenceModelConfig = serde_json::from_str(json)
            .map_err(|e| Error::config(format!("cannot parse the model configuration: {e}")))?;
        check_declared_sizes(&config, file)?;
        // The values drawn here are all overwritten by the file's.
        let mut model = SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0))?;
        let mut stored = file.stored.clone();
        model.take_stored_weights(&mut stored)?;
        model_file::refuse_leftover_stored(&stored)?;
        model.load_state_dict(&file.tensors)?;
        Ok(model)
    }
}

/// `e` with its message placed in the recurrent layer (`rnn.`), whose own errors name its tensors without the
/// model's prefix.
fn prefix_error(e: Error, prefix: &str) -> Error {
    match e {
        Error::Config(msg) => Error::Config(format!("{prefix}: {msg}")),
        other => other,
    }
}

/// Checks the sizes a sequence model's configuration declares against a file's tensors before a model of them is
/// allocated (see [`model_file::check_declared_sizes`]): the recurrent layer's (under `rnn.`), the vocabulary
/// (`embedding.weight`) and the outputs (`head.weight`, `head.bias`).
fn check_declared_sizes(config: &SequenceModelConfig, tensors: &impl TensorShapes) -> Result<()> {
    let r = &config.recurrent;
    model_file::check_declared_sizes(r, "rnn.", "recurrent.", tensors)?;
    let input = Some(("recurrent.input_size", r.input_size));
    match (config.vocab, tensors.shape_of("embedding.weight").is_some()) {
        (Some(vocab), true) => model_file::check_shape(
            tensors,
            "embedding.weight",
            &[(vocab, Some(("vocab", vocab))), (r.input_size, input)],
            r,
        )?,
        (None, false) => {}
        (vocab, has) => {
            return Err(Error::DeclaredSize {
                field: "vocab".into(),
                declared: vocab.map_or_else(|| "null".into(), |v| v.to_string()),
                found: format!("the file {} tensor `embedding.weight`", if has { "has a" } else { "has no" }),
            });
        }
    }
    // Already checked not to overflow with the recurrent layer's sizes.
    let features = r.directions().saturating_mul(r.output_size());
    let outputs = Some(("outputs", config.outputs));
    model_file::check_shape(tensors, "head.weight", &[(config.outputs, outputs), (features, None)], r)?;
    model_file::check_shape(tensors, "head.bias", &[(config.outputs, outputs)], r)
}

impl Module for SequenceModel {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let mut all = Vec::new();
        if let Some(e) = &self.embedding {
            all.extend(prefixed("embedding", e.named_params()));
        }
        all.extend(prefixed("rnn", self.rnn.named_params()));
        if let Some(p) = &self.pool {
            all.extend(prefixed("pool", p.named_params()));
        }
        all.extend(prefixed("head", self.head.named_params()));
        all
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let mut all = Vec::new();
        if let Some(e) = &mut self.embedding {
            all.extend(prefixed("embedding", e.named_params_mut()));
        }
        all.extend(prefixed("rnn", self.rnn.named_params_mut()));
        if let Some(p) = &mut self.pool {
            all.extend(prefixed("pool", p.named_params_mut()));
        }
        all.extend(prefixed("head", self.head.named_params_mut()));
        all
    }
}

impl Trainable for SequenceModel {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let mut all = Vec::new();
        if let Some(e) = &mut self.embedding {
            all.extend(prefixed("embedding", e.parameters()));
        }
        all.extend(prefixed("rnn", self.rnn.parameters()));
        if let Some(p) = &mut self.pool {
            all.extend(prefixed("pool", p.parameters()));
        }
        all.extend(prefixed("head", self.head.parameters()));
        all
    }
}

/// The state carried from one window to the next: a copy of the previous window's final `h_n` (and `c_n`),
/// detached from its graph by construction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CarriedState {
    h: Option<Tensor>,
    c: Option<Tensor>,
}

impl CarriedState {
    /// No state yet: the first window starts from zeros.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state from saved tensors (a checkpoint).
    pub fn from_tensors(h: Tensor, c: Option<Tensor>) -> Self {
        CarriedState { h: Some(h), c }
    }

    /// The initial `h_0` for the next window.
    pub fn h0(&self) -> Option<&Tensor> {
        self.h.as_ref()
    }

    /// The initial `c_0` for the next window (LSTM).
    pub fn c0(&self) -> Option<&Tensor> {
        self.c.as_ref()
    }

    /// Keeps the final states of a window for the next one.
    pub fn carry(&mut self, out: &RecurrentOutput) {
        self.h = Some(out.h_n.clone());
        self.c = out.c_n.clone();
    }

    /// Forgets the state (at the start of an epoch, or of a new document).
    pub fn reset(&mut self) {
        self.h = None;
        self.c = None;
    }
}
