//! Attention of a decoder over an encoder's outputs, with the scores of Bahdanau et al. (2015, additive) and Luong
//! et al. (2015, dot and general), and the scaled dot product of Vaswani et al. (2017).

use std::fmt;
use std::str::FromStr;

use rand::Rng;

use super::AttentionShape;
use super::core::{
    Groups, HeadLayout, Heads, QkvBuffers, QkvGrads, RowOrder, dot_scores, dot_scores_backward, masked_softmax,
    softmax_backward, weighted_sum, weighted_sum_backward, worth_threads,
};
use super::mask::{AttentionMask, CheckedMask, MaskDims};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::simd::{self, Vectorised};
use crate::nn::Linear;
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable, prefixed};
use crate::scratch;
use rayon::prelude::*;

/// How a query `q` scores a key `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// Bahdanau's additive score, `vᵀ tanh(W_q q + W_k k)`.
    Additive,
    /// Luong's dot score, `qᵀ k` (queries and keys of one size).
    Dot,
    /// Luong's general score, `qᵀ W k`.
    General,
    /// The Transformer's scaled dot product, `qᵀ k / √d`.
    ScaledDot,
}

impl Score {
    /// Every score, in the order of their names.
    pub const ALL: [Score; 4] = [Score::Additive, Score::Dot, Score::General, Score::ScaledDot];

    /// The score's name on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Score::Additive => "additive",
            Score::Dot => "dot",
            Score::General => "general",
            Score::ScaledDot => "scaled-dot",
        }
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Score {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Score::ALL.into_iter().find(|score| score.name() == s).ok_or_else(|| {
            Error::config(format!("unknown attention score `{s}`; expected additive, dot, general or scaled-dot"))
        })
    }
}

/// The configuration of an [`Attention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionConfig {
    /// How queries score keys.
    pub score: Score,
    /// Size of a query, `D_q`.
    pub query_size: usize,
    /// Size of a key, `D_k`.
    pub key_size: usize,
    /// Size of a value, `D_v` (of the context).
    pub value_size: usize,
    /// Size `A` of the additive score's hidden layer (unused by the other scores).
    pub attention_size: usize,
}

impl AttentionConfig {
    /// `score` of queries of size `query_size` over keys and values of size `key_size`; the additive score's
    /// hidden layer has the query's size.
    pub fn new(score: Score, query_size: usize, key_size: usize) -> Self {
        AttentionConfig { score, query_size, key_size, value_size: key_size, attention_size: query_size }
    }

    /// Values of another size than the keys.
    pub fn value_size(self, value_size: usize) -> Self {
        AttentionConfig { value_size, ..self }
    }

    /// The additive score's hidden size `A`.
    pub fn attention_size(self, attention_size: usize) -> Self {
        AttentionConfig { attention_size, ..self }
    }

    fn validate(&self) -> Result<()> {
        let AttentionConfig { score, query_size, key_size, value_size, attention_size } = *self;
        if query_size == 0 || key_size == 0 || value_size == 0 {
            return Err(Error::config(format!(
                "attention sizes must be positive: query {query_size}, key {key_size}, value {value_size}"
            )));
        }
        match score {
            Score::Dot | Score::ScaledDot if query_size != key_size => Err(Error::config(format!(
                "the {score} score needs queries and keys of one size; found query {query_size}, key {key_size}"
            ))),
            Score::Additive if attention_size == 0 => {
                Err(Error::config("the additive score needs an attention size of at least 1"))
            }
            _ => Ok(()),
        }
    }
}

/// The learned part of a score.
#[derive(Clone, Debug, PartialEq)]
// One per attention layer, never in a collection: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum ScoreWeights<T: Real> {
    /// `W_q (A, D_q)`, `W_k (A, D_k)`, `v (1, A)`, as bias-free linear layers.
    Additive { query_proj: Linear<T>, key_proj: Linear<T>, energy: Linear<T> },
    /// `W (D_q, D_k)`, applied to the keys: `qᵀ (W k)`.
    General { key_proj: Linear<T> },
    /// Nothing to learn.
    Fixed,
}

/// Inputs of one call, batch-first: `query (N, L, D_q)`, `keys (N, S, D_k)`, `values (N, S, D_v)`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionInput<'a, T = f32> {
    /// The queries (a decoder's states).
    pub query: &'a [T],
    /// The keys (an encoder's outputs).
    pub keys: &'a [T],
    /// The values (usually the same outputs as the keys).
    pub values: &'a [T],
}

/// The result of [`Attention::forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOutput<T = f32> {
    /// The context of every query, `Σⱼ αᵢⱼ vⱼ`, `(N, L, D_v)`.
    pub context: Vec<T>,
    /// The weights `αᵢⱼ`, `(N, L, S)`: each query's row sums to 1.
    pub weights: Vec<T>,
}

/// What [`Attention::backward`] needs from its forward pass.
#[derive(Clone, Debug)]
pub struct AttentionCache<T: Real = f32> {
    shape: AttentionShape,
    /// Queries or keys after their projection (additive: `W_q q` and `W_k k`; general: `W k`).
    projected_query: Vec<T>,
    projected_keys: Vec<T>,
    /// The additive score's `tanh(W_q qᵢ + W_k kⱼ)`, `(N, L, S, A)`.
    hidden: Vec<T>,
    weights: Vec<T>,
}

impl<T: Real> Drop for AttentionCache<T> {
    fn drop(&mut self) {
        for buffer in [&mut self.projected_query, &mut self.projected_keys, &mut self.hidden, &mut self.weights] {
            scratch::give(std::mem::take(buffer));
        }
    }
}

/// The gradients of an attention's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionGrads<T = f32> {
    /// `∂L/∂query`.
    pub query: Vec<T>,
    /// `∂L/∂keys`.
    pub keys: Vec<T>,
    /// `∂L/∂values` (add it to `keys` when keys and values are one tensor).
    pub values: Vec<T>,
}

/// Attention of queries over keys and values, with one score of [`Score`]:
///
/// `eᵢⱼ = score(qᵢ, kⱼ)`, `αᵢ = softmax(eᵢ + mask)`, `cᵢ = Σⱼ αᵢⱼ vⱼ`.
///
/// Parameters, under the names a PyTorch module with the same layers would give: additive `query_proj.weight
/// (A, D_q)`, `key_proj.weight (A, D_k)`, `energy.weight (1, A)`; general `key_proj.weight (D_q, D_k)`; dot and
/// scaled dot none.
///
/// ```
/// use recur::attention::{Attention, AttentionConfig, AttentionInput, AttentionMask, AttentionShape, Score};
///
/// // Decoder states of size 4 attend over 5 encoder outputs of size 6; the second sequence has 3 real steps.
/// let attention = Attention::<f32>::with_seed(AttentionConfig::new(Score::Additive, 4, 6), 0)?;
/// let shape = AttentionShape { batch: 2, queries: 1, keys: 5 };
/// let (query, encoded) = (vec![0.5; 2 * 4], vec![0.1; 2 * 5 * 6]);
/// let input = AttentionInput { query: &query, keys: &encoded, values: &encoded };
/// let out = attention.forward(input, shape, &AttentionMask::lengths(&[5, 3]))?;
/// assert_eq!(out.context.len(), 2 * 6);
/// assert_eq!(&out.weights[8..], &[0.0, 0.0]); // padding gets no weight
/// # Ok::<(), recur::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Attention<T: Real = f32> {
    config: AttentionConfig,
    weights: ScoreWeights<T>,
}

impl<T: Real> Attention<T> {
    /// An attention with PyTorch's initialisation of its linear layers (uniform in `±1/√fan_in`) drawn from `rng`.
    pub fn new(config: AttentionConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let AttentionConfig { query_size, key_size, attention_size, .. } = config;
        let weights = match config.score {
            Score::Additive => ScoreWeights::Additive {
                query_proj: Linear::new(query_size, attention_size, false, rng)?,
                key_proj: Linear::new(key_size, attention_size, false, rng)?,
                energy: Linear::new(attention_size, 1, false, rng)?,
            },
            Score::General => ScoreWeights::General { key_proj: Linear::new(key_size, query_size, false, rng)? },
            Score::Dot | Score::ScaledDot => ScoreWeights::Fixed,
        };
        Ok(Attention { config, weights })
    }

    /// [`Attention::new`] from a seeded generator.
    pub fn with_seed(config: AttentionConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        Self::new(config, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// The configuration.
    pub fn config(&self) -> &AttentionConfig {
        &self.config
    }

    /// The forward pass: the context of every query and the weights.
    pub fn forward(
        &self,
        input: AttentionInput<'_, T>,
        shape: AttentionShape,
        mask: &AttentionMask<'_>,
    ) -> Result<AttentionOutput<T>> {
        self.forward_train(input, shape, mask).map(|(out, _)| out)
    }

    /// The forward pass, keeping what [`Attention::backward`] needs.
    pub fn forward_train(
        &self,
        input: AttentionInput<'_, T>,
        shape: AttentionShape,
        mask: &AttentionMask<'_>,
    ) -> Result<(AttentionOutput<T>, AttentionCache<T>)> {
        self.check_input(input, shape)?;
        let AttentionShape { batch, queries, keys } = shape;
        let mask = CheckedMask::new(*mask, MaskDims { batch, heads: 1, queries, keys })?;
        let groups = Groups { count: batch, queries, keys };
        let mut scores = vec![T::zero(); groups.scores_len()];
        let mut cache = AttentionCache {
            shape,
            projected_query: Vec::new(),
            projected_keys: Vec::new(),
            hidden: Vec::new(),
            weights: Vec::new(),
        };
        self.scores(input, shape, &mut scores, &mut cache)?;
        masked_softmax(groups, &mask, &mut scores)?;
        let mut context = vec![T::zero(); batch * queries * self.config.value_size];
        let values = Heads { data: input.values, layout: self.layout(keys, self.config.value_size) };
        weighted_sum(groups, &scores, values, (&mut context, self.layout(queries, self.config.value_size)));
        cache.weights = scores.clone();
        Ok((AttentionOutput { context, weights: scores }, cache))
    }

    /// The backward of [`Attention::forward_train`] for the same `input`: from `∂L/∂context` (and, when the loss
    /// reads the weights, their gradient), accumulates the score's parameter gradients and returns the inputs'.
    pub fn backward(
        &mut self,
        input: AttentionInput<'_, T>,
        cache: &AttentionCache<T>,
        d_context: &[T],
        d_weights: Option<&[T]>,
    ) -> Result<AttentionGrads<T>> {
        let shape = cache.shape;
        self.check_input(input, shape)?;
        let AttentionShape { batch, queries, keys } = shape;
        let AttentionConfig { query_size, key_size, value_size, .. } = self.config;
        let groups = Groups { count: batch, queries, keys };
        let expect = |what: &str, len: usize, found: usize| {
            if len == found { Ok(()) } else { Err(Error::shape(what, format!("{len} values"), &[found])) }
        };
        expect("context gradient", batch * queries * value_size, d_context.len())?;
        let mut dscores = match d_weights {
            Some(d) => {
                expect("attention weights gradient", groups.scores_len(), d.len())?;
                d.to_vec()
            }
            None => vec![T::zero(); groups.scores_len()],
        };
        let mut grads = AttentionGrads {
            query: vec![T::zero(); input.query.len()],
            keys: vec![T::zero(); input.keys.len()],
            values: vec![T::zero(); input.values.len()],
        };
        let values = Heads { data: input.values, layout: self.layout(keys, value_size) };
        let d_context = Heads { data: d_context, layout: self.layout(queries, value_size) };
        let mut dv = QkvGrads {
            buffers: QkvBuffers::Split([&mut [], &mut [], &mut grads.values]),
            layouts: [self.layout(queries, query_size), self.layout(keys, key_size), self.layout(keys, value_size)],
        };
        weighted_sum_backward(groups, (&cache.weights, values), d_context, &mut dscores, &mut dv);
        softmax_backward(keys, &cache.weights, &mut dscores);
        self.scores_backward(input, cache, &mut dscores, &mut grads);
        Ok(grads)
    }

    fn check_input(&self, input: AttentionInput<'_, T>, shape: AttentionShape) -> Result<()> {
        let AttentionShape { batch, queries, keys } = shape;
        if queries == 0 || keys == 0 {
            return Err(Error::config(format!(
                "attention over {keys} keys for {queries} queries; both must be at least 1"
            )));
        }
        let AttentionConfig { query_size, key_size, value_size, .. } = self.config;
        for (what, data, len, size) in [
            ("query", input.query, queries, query_size),
            ("keys", input.keys, keys, key_size),
            ("values", input.values, keys, value_size),
        ] {
            if batch.checked_mul(len).and_then(|n| n.checked_mul(size)) != Some(data.len()) {
                return Err(Error::shape(what, format!("[{batch}, {len}, {size}]"), &[data.len()]));
            }
        }
        Ok(())
    }

    /// A batch-first `(N, len, size)` buffer as one group a batch element.
    fn layout(&self, len: usize, size: usize) -> HeadLayout {
        HeadLayout::new(RowOrder::BatchFirst, len, 1, size, size, 0)
    }

    /// The scores `eᵢⱼ` of every query and key, into `scores` (`N` blocks of `L × S`).
    fn scores(
        &self,
        input: AttentionInput<'_, T>,
        shape: AttentionShape,
        scores: &mut [T],
        cache: &mut AttentionCache<T>,
    ) -> Result<()> {
        let AttentionShape { batch, queries, keys } = shape;
        let AttentionConfig { query_size, key_size, .. } = self.config;
        let groups = Groups { count: batch, queries, keys };
        let query = Heads { data: input.query, layout: self.layout(queries, query_size) };
        match &self.weights {
            ScoreWeights::Fixed => {
                let scale = match self.config.score {
                    Score::ScaledDot => T::one() / T::from_usize(key_size).unwrap_or(T::one()).sqrt(),
                    _ => T::one(),
                };
                let k = Heads { data: input.keys, layout: self.layout(keys, key_size) };
                dot_scores(groups, query, k, scale, scores);
            }
            ScoreWeights::General { key_proj } => {
                cache.projected_keys = key_proj.forward(input.keys, batch * keys)?;
                let k = Heads { data: &cache.projected_keys[..], layout: self.layout(keys, query_size) };
                dot_scores(groups, query, k, T::one(), scores);
            }
            ScoreWeights::Additive { query_proj, key_proj, energy } => {
                let a = self.config.attention_size;
                cache.projected_query = query_proj.forward(input.query, batch * queries)?;
                cache.projected_keys = key_proj.forward(input.keys, batch * keys)?;
                // Written in full; back to the pool with the cache.
                cache.hidden = scratch::take_unzeroed(groups.scores_len() * a);
                let (pq, pk) = (&cache.projected_query, &cache.projected_keys);
                let one = |(b, hidden): (usize, &mut [T])| {
                    simd::vectorised::<T, _>(AdditiveHidden {
                        projected_query: &pq[b * queries * a..(b + 1) * queries * a],
                        projected_keys: &pk[b * keys * a..(b + 1) * keys * a],
                        hidden,
                        pairs: (queries, keys),
                        size: a,
                    })
                };
                // A tanh costs about as much as eight multiply-adds.
                let per_batch = (queries * keys * a).max(1);
                if worth_threads(batch, cache.hidden.len().saturating_mul(8)) {
                    cache.hidden.par_chunks_mut(per_batch).enumerate().for_each(one);
                } else {
                    cache.hidden.chunks_mut(per_batch).enumerate().for_each(one);
                }
                // `eᵢⱼ = v · hᵢⱼ` for every pair at once: one product.
                energy.forward_into(&cache.hidden, groups.scores_len(), scores)?;
            }
        }
        Ok(())
    }

    /// The backward of [`Self::scores`], from `∂L/∂e` in `dscores`: accumulates the parameters' gradients and
    /// writes the query's and keys' into `grads`.
    fn scores_backward(
        &mut self,
        input: AttentionInput<'_, T>,
        cache: &AttentionCache<T>,
        dscores: &mut [T],
        grads: &mut AttentionGrads<T>,
    ) {
        let AttentionShape { batch, queries, keys } = cache.shape;
        let AttentionConfig { query_size, key_size, attention_size: a, score, .. } = self.config;
        let groups = Groups { count: batch, queries, keys };
        let q_layout = self.layout(queries, query_size);
        let query = Heads { data: input.query, layout: q_layout };
        match &mut self.weights {
            ScoreWeights::Fixed => {
                let scale = match score {
                    Score::ScaledDot => T::one() / T::from_usize(key_size).unwrap_or(T::one()).sqrt(),
                    _ => T::one(),
                };
                let k_layout = self.layout(keys, key_size);
                let k = Heads { data: input.keys, layout: k_layout };
                let mut qk = QkvGrads {
                    buffers: QkvBuffers::Split([&mut grads.query, &mut grads.keys, &mut []]),
                    layouts: [q_layout, k_layout, k_layout],
                };
                dot_scores_backward(groups, (query, k), scale, dscores, &mut qk);
            }
            ScoreWeights::General { key_proj } => {
                let k_layout = HeadLayout::new(RowOrder::BatchFirst, keys, 1, query_size, query_size, 0);
                let k = Heads { data: &cache.projected_keys[..], layout: k_layout };
                let mut d_projected = vec![T::zero(); cache.projected_keys.len()];
                let mut qk = QkvGrads {
                    buffers: QkvBuffers::Split([&mut grads.query, &mut d_projected, &mut []]),
                    layouts: [q_layout, k_layout, k_layout],
                };
                dot_scores_backward(groups, (query, k), T::one(), dscores, &mut qk);
                key_proj
                    .backward_into(input.keys, &d_projected, batch * keys, Some(&mut grads.keys))
                    .expect("shapes checked by the forward pass");
            }
            ScoreWeights::Additive { query_proj, key_proj, energy } => {
                let mut d_pq = scratch::take(cache.projected_query.len());
                let mut d_pk = scratch::take(cache.projected_keys.len());
                let (v, per_batch) = (energy.weight(), (queries * keys).max(1));
                let one = |(((hidden, dscores), d_pq), d_pk)| {
                    simd::vectorised::<T, _>(AdditiveHiddenBackward {
                        hidden,
                        dscores,
                        v,
                        d_projected_query: d_pq,
                        d_projected_keys: d_pk,
                        pairs: (queries, keys),
                        size: a,
                    })
                };
                let (qa, ka) = ((queries * a).max(1), (keys * a).max(1));
                if worth_threads(batch, cache.hidden.len().saturating_mul(4)) {
                    cache
                        .hidden
                        .par_chunks(per_batch * a)
                        .zip(dscores.par_chunks(per_batch))
                        .zip(d_pq.par_chunks_mut(qa))
                        .zip(d_pk.par_chunks_mut(ka))
                        .for_each(one);
                } else {
                    cache
                        .hidden
                        .chunks(per_batch * a)
                        .zip(dscores.chunks(per_batch))
                        .zip(d_pq.chunks_mut(qa))
                        .zip(d_pk.chunks_mut(ka))
                        .for_each(one);
                }
                // `energy` maps each `(i, j)`'s hidden layer to its score: its weight gradient is `Σ ∂L/∂e · h`.
                energy
                    .backward_into(&cache.hidden, dscores, groups.scores_len(), None)
                    .expect("shapes checked by the forward pass");
                query_proj
                    .backward_into(input.query, &d_pq, batch * queries, Some(&mut grads.query))
                    .expect("shapes checked by the forward pass");
                key_proj
                    .backward_into(input.keys, &d_pk, batch * keys, Some(&mut grads.keys))
                    .expect("shapes checked by the forward pass");
                scratch::give(d_pq);
                scratch::give(d_pk);
            }
        }
    }
}

/// The additive score's hidden layer `hᵢⱼ = tanh(W_q qᵢ + W_k kⱼ)` for every pair, compiled for the CPU's vector
/// width (the loop runs across the `A` units).
struct AdditiveHidden<'a, T> {
    /// One batch element's `W_q qᵢ` (`L × A`), `W_k kⱼ` (`S × A`) and hidden layers (`L·S × A`).
    projected_query: &'a [T],
    projected_keys: &'a [T],
    hidden: &'a mut [T],
    /// `(L, S)`.
    pairs: (usize, usize),
    size: usize,
}

impl<T: Real> Vectorised for AdditiveHidden<'_, T> {
    #[inline(always)]
    fn run(self) {
        let a = self.size;
        if a == 0 {
            return;
        }
        let mut rows = self.hidden.chunks_exact_mut(a);
        for pq in self.projected_query.chunks_exact(a).take(self.pairs.0) {
            for pk in self.projected_keys.chunks_exact(a).take(self.pairs.1) {
                let h = rows.next().expect("one hidden row a pair");
                for ((h, &x), &y) in h.iter_mut().zip(pq).zip(pk) {
                    *h = (x + y).act_tanh();
                }
            }
        }
    }
}

/// The backward of [`AdditiveHidden`]: with `uᵢⱼ = ∂L/∂eᵢⱼ · v ⊙ (1 − hᵢⱼ²)`, `∂L/∂(W_q qᵢ) = Σⱼ uᵢⱼ` and
/// `∂L/∂(W_k kⱼ) = Σᵢ uᵢⱼ`.
struct AdditiveHiddenBackward<'a, T> {
    /// One batch element's hidden layers and score gradients, and the gradients of its projections.
    hidden: &'a [T],
    dscores: &'a [T],
    v: &'a [T],
    d_projected_query: &'a mut [T],
    d_projected_keys: &'a mut [T],
    /// `(L, S)`.
    pairs: (usize, usize),
    size: usize,
}

impl<T: Real> Vectorised for AdditiveHiddenBackward<'_, T> {
    #[inline(always)]
    fn run(self) {
        let a = self.size;
        if a == 0 {
            return;
        }
        let mut pairs = self.hidden.chunks_exact(a).zip(self.dscores);
        for dq in self.d_projected_query.chunks_exact_mut(a).take(self.pairs.0) {
            for dk in self.d_projected_keys.chunks_exact_mut(a).take(self.pairs.1) {
                let (h, &ds) = pairs.next().expect("one hidden row a pair");
                for (((dq, dk), &h), &v) in dq.iter_mut().zip(dk.iter_mut()).zip(h).zip(self.v) {
                    let u = ds * v * (T::one() - h * h);
                    *dq += u;
                    *dk += u;
                }
            }
        }
    }
}

impl Module for Attention<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        match &self.weights {
            ScoreWeights::Additive { query_proj, key_proj, energy } => {
                let mut all = prefixed("query_proj", query_proj.named_params());
                all.extend(prefixed("key_proj", key_proj.named_params()));
                all.extend(prefixed("energy", energy.named_params()));
                all
            }
            ScoreWeights::General { key_proj } => prefixed("key_proj", key_proj.named_params()),
            ScoreWeights::Fixed => Vec::new(),
        }
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        match &mut self.weights {
            ScoreWeights::Additive { query_proj, key_proj, energy } => {
                let mut all = prefixed("query_proj", query_proj.named_params_mut());
                all.extend(prefixed("key_proj", key_proj.named_params_mut()));
                all.extend(prefixed("energy", energy.named_params_mut()));
                all
            }
            ScoreWeights::General { key_proj } => prefixed("key_proj", key_proj.named_params_mut()),
            ScoreWeights::Fixed => Vec::new(),
        }
    }
}

impl Trainable for Attention<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        match &mut self.weights {
            ScoreWeights::Additive { query_proj, key_proj, energy } => {
                let mut all = prefixed("query_proj", query_proj.parameters());
                all.extend(prefixed("key_proj", key_proj.parameters()));
                all.extend(prefixed("energy", energy.parameters()));
                all
            }
            ScoreWeights::General { key_proj } => prefixed("key_proj", key_proj.parameters()),
            ScoreWeights::Fixed => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::gradcheck::check;

    fn random(len: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Every linear layer of the score, mutably, to probe its weights.
    fn linears(a: &mut Attention<f64>) -> Vec<&mut Linear<f64>> {
        match &mut a.weights {
            ScoreWeights::Additive { query_proj, key_proj, energy } => vec![query_proj, key_proj, energy],
            ScoreWeights::General { key_proj } => vec![key_proj],
            ScoreWeights::Fixed => vec![],
        }
    }

    fn check_score(config: AttentionConfig, lengths: &[usize], with_weight_grad: bool) {
        let mut rng = StdRng::seed_from_u64(11);
        let shape = AttentionShape { batch: lengths.len(), queries: 3, keys: 4 };
        let mut att = Attention::<f64>::new(config, &mut rng).unwrap();
        let AttentionConfig { query_size, key_size, value_size, .. } = config;
        let mut q = random(shape.batch * shape.queries * query_size, &mut rng);
        let mut k = random(shape.batch * shape.keys * key_size, &mut rng);
        let mut v = random(shape.batch * shape.keys * value_size, &mut rng);
        let g = random(shape.batch * shape.queries * value_size, &mut rng);
        let g_w = random(shape.batch * shape.queries * shape.keys, &mut rng);
        let mask = AttentionMask::lengths(lengths);
        let loss = |a: &Attention<f64>, q: &[f64], k: &[f64], v: &[f64]| {
            let out = a.forward(AttentionInput { query: q, keys: k, values: v }, shape, &mask).unwrap();
            let mut l: f64 = out.context.iter().zip(&g).map(|(a, b)| a * b).sum();
            if with_weight_grad {
                l += out.weights.iter().zip(&g_w).map(|(a, b)| a * b).sum::<f64>();
            }
            l
        };
        let input = AttentionInput { query: &q, keys: &k, values: &v };
        let (_, cache) = att.forward_train(input, shape, &mask).unwrap();
        let grads = att.backward(input, &cache, &g, with_weight_grad.then_some(&g_w[..])).unwrap();
        let (q0, k0, v0) = (q.clone(), k.clone(), v.clone());
        let name = config.score.name();
        check(&format!("{name} dq"), &mut q, &grads.query, 1e-6, |x| loss(&att, x, &k0, &v0)).unwrap();
        check(&format!("{name} dk"), &mut k, &grads.keys, 1e-6, |x| loss(&att, &q0, x, &v0)).unwrap();
        check(&format!("{name} dv"), &mut v, &grads.values, 1e-6, |x| loss(&att, &q0, &k0, x)).unwrap();
        let count = linears(&mut att).len();
        for n in 0..count {
            let mut w = linears(&mut att)[n].weight().to_vec();
            let dw = linears(&mut att)[n].weight_grad().to_vec();
            check(&format!("{name} weight {n}"), &mut w, &dw, 1e-6, |w| {
                let mut a2 = att.clone();
                linears(&mut a2)[n].weight_mut().copy_from_slice(w);
                loss(&a2, &q0, &k0, &v0)
            })
            .unwrap();
        }
    }

    #[test]
    fn every_score_has_gradients_that_match_finite_differences() {
        check_score(AttentionConfig::new(Score::Additive, 3, 5).attention_size(4).value_size(2), &[4, 2], true);
        check_score(AttentionConfig::new(Score::General, 3, 5), &[3, 4], true);
        check_score(AttentionConfig::new(Score::Dot, 3, 3).value_size(4), &[1, 4], false);
        check_score(AttentionConfig::new(Score::ScaledDot, 6, 6), &[4, 4], true);
    }

    #[test]
    fn additive_scores_follow_the_formula() {
        let config = AttentionConfig::new(Score::Additive, 2, 2).attention_size(2);
        let mut att = Attention::<f64>::with_seed(config, 0).unwrap();
        let mut ws = linears(&mut att);
        ws[0].weight_mut().copy_from_slice(&[1.0, 0.0, 0.0, 1.0]); // W_q = I
        ws[1].weight_mut().copy_from_slice(&[2.0, 0.0, 0.0, 2.0]); // W_k = 2I
        ws[2].weight_mut().copy_from_slice(&[1.0, -1.0]); // v
        let (q, k) = ([0.1, 0.2], [0.3, -0.4, 0.0, 0.5]);
        let shape = AttentionShape { batch: 1, queries: 1, keys: 2 };
        let out =
            att.forward(AttentionInput { query: &q, keys: &k, values: &k }, shape, &AttentionMask::none()).unwrap();
        let e0 = (0.1f64 + 0.6).tanh() - (0.2f64 - 0.8).tanh();
        let e1 = (0.1f64 + 0.0).tanh() - (0.2f64 + 1.0).tanh();
        let p0 = 1.0 / (1.0 + (e1 - e0).exp());
        assert!((out.weights[0] - p0).abs() < 1e-15);
        assert!((out.context[0] - (p0 * 0.3)).abs() < 1e-15);
    }

    #[test]
    fn bad_configurations_and_inputs_are_errors() {
        assert!(Attention::<f32>::with_seed(AttentionConfig::new(Score::Dot, 3, 4), 0).is_err());
        assert!(Attention::<f32>::with_seed(AttentionConfig::new(Score::Additive, 3, 4).attention_size(0), 0).is_err());
        assert!("luong".parse::<Score>().unwrap_err().to_string().contains("additive, dot, general"));
        assert_eq!("general".parse::<Score>().unwrap(), Score::General);
        let att = Attention::<f32>::with_seed(AttentionConfig::new(Score::General, 2, 3), 0).unwrap();
        let shape = AttentionShape { batch: 1, queries: 1, keys: 2 };
        let (q, k) = ([0.0; 2], [0.0; 5]);
        let err =
            att.forward(AttentionInput { query: &q, keys: &k, values: &k }, shape, &AttentionMask::none()).unwrap_err();
        assert!(err.to_string().contains("keys: expected shape [1, 2, 3]"), "{err}");
        let k = [0.0; 6];
        let err = att
            .forward(AttentionInput { query: &q, keys: &k, values: &k }, shape, &AttentionMask::lengths(&[0]))
            .unwrap_err();
        assert!(err.to_string().contains("expected 1..=2"), "{err}");
    }
}
