//! A sequence-to-sequence model: a recurrent encoder, a recurrent decoder that attends over the encoder's outputs,
//! an embedding for each side and an output projection. With attention off it is the encoder–decoder of Sutskever
//! et al. (2014), whose only bridge from source to target is the encoder's final state; with it, the decoder reads
//! every encoder output at every step (Bahdanau et al., 2015; in the form of Luong et al., 2015).
//!
//! At target step `t` the decoder's state `sₜ` (from the previous target token and `sₜ₋₁`) attends over the encoder
//! outputs `h₁ … h_S` (padding masked) and the model predicts from
//!
//! `h̃ₜ = tanh(W_c [cₜ; sₜ] + b_c)`, `cₜ = Σⱼ αₜⱼ hⱼ`, `logitsₜ = W_o h̃ₜ + b_o`
//!
//! (without attention, `logitsₜ = W_o sₜ + b_o`). The decoder starts from the encoder's final states, the two
//! directions of a bidirectional encoder side by side, so it has `D·H` units. Because the state does not depend on
//! the attention, training runs the decoder over all target steps at once (teacher forcing) through the same
//! whole-sequence path as any recurrent layer, and decoding steps it one token at a time through the streaming
//! path ([`Seq2Seq::decode`]).
//!
//! Parameters are named as a PyTorch module with attributes `source_embedding`, `target_embedding`, `encoder`,
//! `decoder`, `attention`, `combine` and `output` would name them.

mod decode;

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use decode::{DecodeOptions, Decoded};

use crate::attention::{
    Attention, AttentionCache, AttentionConfig, AttentionInput, AttentionMask, AttentionShape, Score,
};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::layer::{Mode, Recurrent, RecurrentCache, RecurrentConfig};
use crate::model_file::{self, TensorFile};
use crate::nn::{Embedding, Linear};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable, prefixed};
use crate::tensor::Tensor;

/// The configuration of a [`Seq2Seq`] model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    /// The recurrent cell of encoder and decoder (`rnn_tanh`, `rnn_relu`, `lstm` or `gru`).
    pub mode: Mode,
    /// Source tokens (the source embedding's rows).
    pub source_vocab: usize,
    /// Target tokens (the target embedding's rows and the output's classes).
    pub target_vocab: usize,
    /// Size of a token's embedding, both sides.
    pub embedding_dim: usize,
    /// Units `H` of each encoder direction; the decoder has `D·H`.
    pub hidden_size: usize,
    /// Layers `L` of encoder and decoder.
    pub num_layers: usize,
    /// Whether the encoder reads the source both ways (`D = 2`).
    pub bidirectional: bool,
    /// How the decoder scores the encoder's outputs, or `None` for no attention.
    pub attention: Option<Score>,
}

impl Seq2SeqConfig {
    /// Units of the decoder, `D·H`.
    pub fn decoder_size(&self) -> usize {
        // Saturating: a file's declared size is checked against its tensors only after this is computed.
        self.hidden_size.saturating_mul(if self.bidirectional { 2 } else { 1 })
    }

    fn encoder_config(&self) -> RecurrentConfig {
        RecurrentConfig::new(self.mode, self.embedding_dim, self.hidden_size)
            .num_layers(self.num_layers)
            .bidirectional(self.bidirectional)
            .batch_first(true)
    }

    fn decoder_config(&self) -> RecurrentConfig {
        RecurrentConfig::new(self.mode, self.embedding_dim, self.decoder_size())
            .num_layers(self.num_layers)
            .batch_first(true)
    }

    fn validate(&self) -> Result<()> {
        if self.source_vocab == 0 || self.target_vocab == 0 {
            return Err(Error::config(format!(
                "seq2seq vocabularies must not be empty: source {}, target {}",
                self.source_vocab, self.target_vocab
            )));
        }
        self.encoder_config().validate()?;
        self.decoder_config().validate()
    }
}

/// A batch for teacher forcing, batch-first and padded: sequence `b`'s step `t` is at `b·steps + t`.
#[derive(Clone, Copy, Debug)]
pub struct Seq2SeqBatch<'a> {
    /// Sequences `B`.
    pub batch: usize,
    /// Source token ids, `B × source_steps`.
    pub source: &'a [usize],
    /// Real source steps per sequence, each in `1..=source_steps`.
    pub source_lengths: &'a [usize],
    /// Padded source length.
    pub source_steps: usize,
    /// Decoder input ids (begin-of-sequence, then the target shifted right), `B × target_steps`.
    pub decoder_input: &'a [usize],
    /// Real target steps per sequence, each in `1..=target_steps`.
    pub target_lengths: &'a [usize],
    /// Padded target length.
    pub target_steps: usize,
}

/// What [`Seq2Seq::forward_train`] keeps for [`Seq2Seq::backward`].
#[derive(Clone, Debug)]
pub struct Seq2SeqCache {
    batch: usize,
    source: Vec<usize>,
    source_steps: usize,
    decoder_input: Vec<usize>,
    target_steps: usize,
    encoder: RecurrentCache,
    decoder: RecurrentCache,
    /// The encoder's outputs, `(B, S, D·H)`.
    encoded: Vec<f32>,
    /// The decoder's outputs `sₜ`, `(B, T, D·H)`.
    states: Vec<f32>,
    attention: Option<AttentionCache>,
    /// `[cₜ; sₜ]` per row, the input of `combine`.
    combined_input: Vec<f32>,
    /// `h̃ₜ` per row, the input of `output` (the states themselves without attention).
    features: Vec<f32>,
    /// The attention weights, `(B, T, S)` (empty without attention).
    weights: Vec<f32>,
}

impl Seq2SeqCache {
    /// The attention weights of the pass, `(B, T, S)` batch-first, or empty without attention.
    pub fn attention_weights(&self) -> &[f32] {
        &self.weights
    }
}

/// A recurrent encoder–decoder with optional attention: see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct Seq2Seq {
    config: Seq2SeqConfig,
    source_embedding: Embedding,
    target_embedding: Embedding,
    encoder: Recurrent,
    decoder: Recurrent,
    attention: Option<Attention>,
    combine: Option<Linear>,
    output: Linear,
}

impl Seq2Seq {
    /// A model with PyTorch's default initialisation of every part, drawn from `rng`.
    pub fn new(config: Seq2SeqConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let (e, d) = (config.embedding_dim, config.decoder_size());
        let source_embedding = Embedding::new(config.source_vocab, e, None, rng)?;
        let target_embedding = Embedding::new(config.target_vocab, e, None, rng)?;
        let encoder = Recurrent::new(config.encoder_config(), rng)?;
        let decoder = Recurrent::new(config.decoder_config(), rng)?;
        let attention = match config.attention {
            Some(score) => Some(Attention::new(AttentionConfig::new(score, d, d), rng)?),
            None => None,
        };
        let combine = match config.attention {
            Some(_) => Some(Linear::new(2 * d, d, true, rng)?),
            None => None,
        };
        let output = Linear::new(d, config.target_vocab, true, rng)?;
        Ok(Seq2Seq { config, source_embedding, target_embedding, encoder, decoder, attention, combine, output })
    }

    /// [`Seq2Seq::new`] from a seeded generator.
    pub fn with_seed(config: Seq2SeqConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        Self::new(config, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// The configuration.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    /// The logits of every target step, `B·T × target_vocab` (batch-first rows), in inference mode.
    pub fn forward(&self, batch: &Seq2SeqBatch<'_>) -> Result<Vec<f32>> {
        self.forward_train(batch).map(|(logits, _)| logits)
    }

    /// The logits of every target step, keeping what [`Seq2Seq::backward`] needs.
    pub fn forward_train(&self, batch: &Seq2SeqBatch<'_>) -> Result<(Vec<f32>, Seq2SeqCache)> {
        let Seq2SeqBatch {
            batch: b,
            source,
            source_lengths,
            source_steps,
            decoder_input,
            target_lengths,
            target_steps,
        } = *batch;
        check_ids("source", source, b, source_steps)?;
        check_ids("decoder input", decoder_input, b, target_steps)?;
        let (e, d) = (self.config.embedding_dim, self.config.decoder_size());
        let embedded = self.source_embedding.forward(source)?;
        let embedded = Tensor::new([b, source_steps, e], embedded)?;
        // The recurrent layers have no dropout, so their generator is never drawn from.
        let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let (enc, encoder) = self.encoder.forward_train_with_lengths(&embedded, source_lengths, None, None, rng)?;
        let h0 = self.bridge(&enc.h_n);
        let c0 = enc.c_n.as_ref().map(|c| self.bridge(c));
        let target = Tensor::new([b, target_steps, e], self.target_embedding.forward(decoder_input)?)?;
        let (dec, decoder) =
            self.decoder.forward_train_with_lengths(&target, target_lengths, Some(&h0), c0.as_ref(), rng)?;
        let encoded = enc.output.into_data();
        let states = dec.output.into_data();
        let rows = b * target_steps;
        let mut cache = Seq2SeqCache {
            batch: b,
            source: source.to_vec(),
            source_steps,
            decoder_input: decoder_input.to_vec(),
            target_steps,
            encoder,
            decoder,
            encoded,
            states,
            attention: None,
            combined_input: Vec::new(),
            features: Vec::new(),
            weights: Vec::new(),
        };
        if let (Some(attention), Some(combine)) = (&self.attention, &self.combine) {
            let shape = AttentionShape { batch: b, queries: target_steps, keys: source_steps };
            let input = AttentionInput { query: &cache.states, keys: &cache.encoded, values: &cache.encoded };
            let (out, att_cache) = attention.forward_train(input, shape, &AttentionMask::lengths(source_lengths))?;
            cache.combined_input = concat_rows(&out.context, &cache.states, d);
            let mut features = combine.forward(&cache.combined_input, rows)?;
            features.iter_mut().for_each(|v| *v = v.act_tanh());
            cache.features = features;
            cache.attention = Some(att_cache);
            cache.weights = out.weights;
        } else {
            cache.features = cache.states.clone();
        }
        let logits = self.output.forward(&cache.features, rows)?;
        Ok((logits, cache))
    }

    /// The backward of [`Seq2Seq::forward_train`] from `∂L/∂logits` (`B·T × target_vocab`): accumulates every
    /// parameter's gradient (padded target steps get none, whatever `d_logits` holds there).
    pub fn backward(&mut self, cache: &Seq2SeqCache, d_logits: &[f32]) -> Result<()> {
        let (b, t, s) = (cache.batch, cache.target_steps, cache.source_steps);
        let (e, d) = (self.config.embedding_dim, self.config.decoder_size());
        let rows = b * t;
        let mut d_features = vec![0.0; rows * d];
        self.output.backward_into(&cache.features, d_logits, rows, Some(&mut d_features))?;
        let mut d_states;
        let mut d_encoded = vec![0.0; b * s * d];
        if let (Some(attention), Some(combine), Some(att_cache)) =
            (&mut self.attention, &mut self.combine, &cache.attention)
        {
            // tanh′ = 1 − h̃².
            d_features.iter_mut().zip(&cache.features).for_each(|(g, &h)| *g *= 1.0 - h * h);
            let mut d_combined = vec![0.0; rows * 2 * d];
            combine.backward_into(&cache.combined_input, &d_features, rows, Some(&mut d_combined))?;
            let (d_context, d_direct) = split_rows(&d_combined, d);
            let input = AttentionInput { query: &cache.states, keys: &cache.encoded, values: &cache.encoded };
            let grads = attention.backward(input, att_cache, &d_context, None)?;
            d_states = d_direct;
            d_states.iter_mut().zip(&grads.query).for_each(|(g, &q)| *g += q);
            d_encoded.iter_mut().zip(grads.keys.iter().zip(&grads.values)).for_each(|(g, (&k, &v))| *g = k + v);
        } else {
            d_states = d_features;
        }
        let d_states = Tensor::new([b, t, d], d_states)?;
        let dec = self.decoder.backward(&cache.decoder, &d_states, None, None)?;
        self.target_embedding.backward(&cache.decoder_input, dec.input.data())?;
        let d_h_n = self.unbridge(&dec.h0);
        let d_c_n = dec.c0.as_ref().map(|c| self.unbridge(c));
        let d_encoded = Tensor::new([b, s, d], d_encoded)?;
        let enc = self.encoder.backward(&cache.encoder, &d_encoded, Some(&d_h_n), d_c_n.as_ref())?;
        debug_assert_eq!(enc.input.len(), b * s * e);
        self.source_embedding.backward(&cache.source, enc.input.data())?;
        Ok(())
    }

    /// The encoder's final states `(L·D, B, H)` as the decoder's initial states `(L, B, D·H)`: each layer's two
    /// directions side by side.
    fn bridge(&self, state: &Tensor) -> Tensor {
        let (l, dirs, h) = (self.config.num_layers, self.directions(), self.config.hidden_size);
        let b = state.len() / (l * dirs * h).max(1);
        let mut out = vec![0.0; state.len()];
        for layer in 0..l {
            for dir in 0..dirs {
                for row in 0..b {
                    let from = ((layer * dirs + dir) * b + row) * h;
                    let to = (layer * b + row) * dirs * h + dir * h;
                    out[to..to + h].copy_from_slice(&state.data()[from..from + h]);
                }
            }
        }
        Tensor::from_parts(vec![l, b, dirs * h], out)
    }

    /// The backward of [`Self::bridge`]: a gradient of the decoder's initial states as one of the encoder's final
    /// states.
    fn unbridge(&self, grad: &Tensor) -> Tensor {
        let (l, dirs, h) = (self.config.num_layers, self.directions(), self.config.hidden_size);
        let b = grad.len() / (l * dirs * h).max(1);
        let mut out = vec![0.0; grad.len()];
        for layer in 0..l {
            for dir in 0..dirs {
                for row in 0..b {
                    let to = ((layer * dirs + dir) * b + row) * h;
                    let from = (layer * b + row) * dirs * h + dir * h;
                    out[to..to + h].copy_from_slice(&grad.data()[from..from + h]);
                }
            }
        }
        Tensor::from_parts(vec![l * dirs, b, h], out)
    }

    fn directions(&self) -> usize {
        if self.config.bidirectional { 2 } else { 1 }
    }

    /// Saves parameters and configuration as safetensors (the configuration as JSON under `config`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with_metadata(path, HashMap::new())
    }

    /// [`Seq2Seq::save`] with more metadata beside the configuration (a vocabulary, say).
    pub fn save_with_metadata(&self, path: impl AsRef<Path>, mut metadata: HashMap<String, String>) -> Result<()> {
        let json = serde_json::to_string(&self.config).map_err(|e| Error::config(e.to_string()))?;
        metadata.insert(model_file::CONFIG_KEY.into(), json);
        TensorFile::write(path.as_ref(), &self.state_dict(), &metadata)
    }

    /// Loads a model saved by [`Seq2Seq::save`]. A missing, unexpected or mis-shaped tensor is an error naming it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_tensor_file(&TensorFile::read(path)?)
    }

    /// [`Seq2Seq::load`] from a file already read.
    pub fn from_tensor_file(file: &TensorFile) -> Result<Self> {
        let json = file
            .metadata
            .get(model_file::CONFIG_KEY)
            .ok_or_else(|| Error::config("this file has no `config` metadata: it was not saved as a seq2seq model"))?;
        let config: Seq2SeqConfig =
            serde_json::from_str(json).map_err(|e| Error::config(format!("seq2seq config in the file: {e}")))?;
        check_declared_sizes(&config, &file.tensors)?;
        let mut model = Seq2Seq::with_seed(config, 0)?;
        model.load_state_dict(&file.tensors)?;
        Ok(model)
    }
}

/// Checks the sizes a configuration declares against a file's tensors before a model of them is allocated, so
/// that a hostile file cannot ask for more memory than its tensors hold: the encoder's and decoder's (under
/// `encoder.` and `decoder.`), the vocabularies and the embedding size. The attention's and `combine`'s tensors
/// are sized by the decoder, already checked; their names and shapes are checked on loading.
fn check_declared_sizes(config: &Seq2SeqConfig, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let encoder = config.encoder_config();
    model_file::check_declared_sizes(&encoder, "encoder.", "encoder.", tensors)?;
    model_file::check_declared_sizes(&config.decoder_config(), "decoder.", "decoder.", tensors)?;
    let e = Some(("embedding_dim", config.embedding_dim));
    let source = Some(("source_vocab", config.source_vocab));
    let target = Some(("target_vocab", config.target_vocab));
    let shape = |name: &str, dims: &[model_file::Dim<'_>]| model_file::check_shape(tensors, name, dims, &encoder);
    shape("source_embedding.weight", &[(config.source_vocab, source), (config.embedding_dim, e)])?;
    shape("target_embedding.weight", &[(config.target_vocab, target), (config.embedding_dim, e)])?;
    shape("output.weight", &[(config.target_vocab, target), (config.decoder_size(), None)])?;
    shape("output.bias", &[(config.target_vocab, target)])
}

/// Checks that `ids` holds `batch × steps` values.
fn check_ids(what: &str, ids: &[usize], batch: usize, steps: usize) -> Result<()> {
    if batch.checked_mul(steps) != Some(ids.len()) || steps == 0 || batch == 0 {
        return Err(Error::shape(what, format!("[{batch}, {steps}] token ids, neither 0"), &[ids.len()]));
    }
    Ok(())
}

/// `[a; b]` row by row, for rows of `width` values each.
fn concat_rows(a: &[f32], b: &[f32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    for (ra, rb) in a.chunks_exact(width).zip(b.chunks_exact(width)) {
        out.extend_from_slice(ra);
        out.extend_from_slice(rb);
    }
    out
}

/// The two halves of rows `2·width` wide.
fn split_rows(ab: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (Vec::with_capacity(ab.len() / 2), Vec::with_capacity(ab.len() / 2));
    for row in ab.chunks_exact(2 * width) {
        a.extend_from_slice(&row[..width]);
        b.extend_from_slice(&row[width..]);
    }
    (a, b)
}

macro_rules! each_part {
    ($self:expr, $method:ident, $as:ident) => {{
        let mut all = prefixed("source_embedding", $self.source_embedding.$method());
        all.extend(prefixed("target_embedding", $self.target_embedding.$method()));
        all.extend(prefixed("encoder", $self.encoder.$method()));
        all.extend(prefixed("decoder", $self.decoder.$method()));
        if let Some(a) = $self.attention.$as() {
            all.extend(prefixed("attention", a.$method()));
        }
        if let Some(c) = $self.combine.$as() {
            all.extend(prefixed("combine", c.$method()));
        }
        all.extend(prefixed("output", $self.output.$method()));
        all
    }};
}

impl Module for Seq2Seq {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        each_part!(self, named_params, as_ref)
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        each_part!(self, named_params_mut, as_mut)
    }
}

impl Trainable for Seq2Seq {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        each_part!(self, parameters, as_mut)
    }
}
