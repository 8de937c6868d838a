//! PyTorch's `nn.MultiheadAttention`, forward and backward.

use rand::Rng;

use super::AttentionShape;
use super::core::{
    Groups, HeadLayout, Heads, QkvBuffers, QkvGrads, RowOrder, dot_scores, dot_scores_backward, masked_softmax,
    softmax_backward, weighted_sum, weighted_sum_backward,
};
use super::mask::{AttentionMask, CheckedMask, MaskDims};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, broadcast_rows, gemm};
use crate::nn::{Linear, dropout_mask};
use crate::params::{Module, Param, ParamMut, ParamRef, Parameter, Trainable, prefixed};
use crate::scratch;
use crate::tensor::Tensor;

/// The configuration of a [`MultiheadAttention`], PyTorch's
/// `nn.MultiheadAttention(embed_dim, num_heads, bias=True, batch_first=False)`.
///
/// Keys and values have the query's size (`kdim = vdim = embed_dim`), so the three input projections are one
/// packed `in_proj_weight`. PyTorch's `add_bias_kv` and `add_zero_attn` are not supported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// `E`, the size of queries, keys, values and output.
    pub embed_dim: usize,
    /// Heads `H`; each attends in `E / H` dimensions.
    pub num_heads: usize,
    /// Whether the projections have biases (`in_proj_bias`, `out_proj.bias`).
    pub bias: bool,
    /// Whether batched inputs are `(N, L, E)` rather than `(L, N, E)`.
    pub batch_first: bool,
    /// Dropout on the attention weights in training passes ([`MultiheadAttention::forward_train`]).
    pub dropout: f64,
}

impl MultiheadAttentionConfig {
    /// `embed_dim` split over `num_heads` heads, with biases, time-major.
    pub fn new(embed_dim: usize, num_heads: usize) -> Self {
        MultiheadAttentionConfig { embed_dim, num_heads, bias: true, batch_first: false, dropout: 0.0 }
    }

    /// With or without biases.
    pub fn bias(self, bias: bool) -> Self {
        MultiheadAttentionConfig { bias, ..self }
    }

    /// Batch-first (`(N, L, E)`) or time-major (`(L, N, E)`) inputs.
    pub fn batch_first(self, batch_first: bool) -> Self {
        MultiheadAttentionConfig { batch_first, ..self }
    }

    /// Dropout with probability `dropout` on the attention weights while training.
    pub fn dropout(self, dropout: f64) -> Self {
        MultiheadAttentionConfig { dropout, ..self }
    }

    /// `E / H`, the size of one head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads.max(1)
    }

    fn validate(&self) -> Result<()> {
        let (e, h) = (self.embed_dim, self.num_heads);
        if e == 0 || h == 0 || e % h != 0 {
            return Err(Error::config(format!(
                "MultiheadAttention: embed_dim ({e}) must be a positive multiple of num_heads ({h})"
            )));
        }
        e.checked_mul(3 * e).ok_or_else(|| Error::config(format!("MultiheadAttention: embed_dim {e} is too large")))?;
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(Error::config(format!(
                "MultiheadAttention: dropout must be in [0, 1], found {}",
                self.dropout
            )));
        }
        Ok(())
    }

    fn order(&self, batch: usize) -> RowOrder {
        if self.batch_first { RowOrder::BatchFirst } else { RowOrder::TimeMajor { batch } }
    }
}

/// Which attention weights a forward pass returns (PyTorch's `need_weights` and `average_attn_weights`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NeedWeights {
    /// None (`need_weights=False`).
    No,
    /// Averaged over heads, `(N, L, S)` (PyTorch's default).
    #[default]
    Averaged,
    /// One set per head, `(N, H, L, S)` (`average_attn_weights=False`).
    PerHead,
}

/// What attends to what: self-attention over one sequence, or queries over separate keys and values.
///
/// Each is row-major with [`MultiheadAttentionConfig::batch_first`]'s layout: `(L, N, E)` or `(N, L, E)` for the
/// queries, `(S, N, E)` or `(N, S, E)` for keys and values.
#[derive(Clone, Copy, Debug)]
pub enum MhaInput<'a, T = f32> {
    /// `query = key = value = x`: the three projections are one product.
    SelfAttention(&'a [T]),
    /// Queries attending over keys and values of another sequence.
    Cross {
        /// The queries, `N·L` rows of `E`.
        query: &'a [T],
        /// The keys, `N·S` rows of `E`.
        key: &'a [T],
        /// The values, `N·S` rows of `E`.
        value: &'a [T],
    },
}

/// The result of a forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct MhaOutput<T = f32> {
    /// `attn_output`, with the queries' layout.
    pub output: Vec<T>,
    /// `attn_output_weights`, as [`NeedWeights`] asked.
    pub weights: Option<Vec<T>>,
}

/// The gradients of the inputs, as [`MhaInput`] gave them.
#[derive(Clone, Debug, PartialEq)]
pub enum MhaInputGrads<T = f32> {
    /// `∂L/∂x` of self-attention (its three uses summed).
    SelfAttention(Vec<T>),
    /// `∂L/∂query`, `∂L/∂key`, `∂L/∂value`.
    Cross {
        /// `∂L/∂query`.
        query: Vec<T>,
        /// `∂L/∂key`.
        key: Vec<T>,
        /// `∂L/∂value`.
        value: Vec<T>,
    },
}

/// What [`MultiheadAttention::backward`] needs from its forward pass.
#[derive(Clone, Debug)]
pub struct MhaCache<T: Real = f32> {
    shape: AttentionShape,
    weights: NeedWeights,
    /// The projected queries, keys and values: one packed `N·L × 3E` buffer, or three.
    projected: Projected<T>,
    /// Attention probabilities, `N·H` blocks of `L × S`.
    probs: Vec<T>,
    /// The dropout mask of the probabilities and the probabilities after it (both empty without dropout).
    dropout_mask: Vec<T>,
    dropped: Vec<T>,
    /// The heads' outputs side by side, the input of `out_proj`.
    heads_output: Vec<T>,
}

#[derive(Clone, Debug)]
enum Projected<T> {
    Packed(Vec<T>),
    Split([Vec<T>; 3]),
}

/// Multi-head attention, exactly PyTorch's `nn.MultiheadAttention` (with `kdim = vdim = embed_dim`):
///
/// `headₕ = softmax(Qₕ Kₕᵀ / √d + mask) Vₕ` with `Q = query W_qᵀ + b_q`, `K = key W_kᵀ + b_k`,
/// `V = value W_vᵀ + b_v` split into `H` heads of `d = E/H` columns, and `output = [head₁ … head_H] W_oᵀ + b_o`.
///
/// Parameters, under PyTorch's `state_dict` names: `in_proj_weight (3E, E)` (`W_q`, `W_k`, `W_v` stacked),
/// `in_proj_bias (3E)`, `out_proj.weight (E, E)`, `out_proj.bias (E)`. A `state_dict` saved from PyTorch loads
/// with [`Module::load_state_dict`] and gives its numbers.
///
/// ```
/// use recur::attention::{MultiheadAttention, MultiheadAttentionConfig, NeedWeights};
/// use recur::Tensor;
///
/// let config = MultiheadAttentionConfig::new(8, 2).batch_first(true);
/// let mha = MultiheadAttention::with_seed(config, 0)?;
/// let x = Tensor::zeros([3, 5, 8]); // (N, L, E)
/// let (y, weights) = mha.forward(&x, &x, &x, &Default::default(), NeedWeights::Averaged)?;
/// assert_eq!(y.shape(), &[3, 5, 8]);
/// assert_eq!(weights.unwrap().shape(), &[3, 5, 5]); // (N, L, S)
/// # Ok::<(), recur::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MultiheadAttention<T: Real = f32> {
    config: MultiheadAttentionConfig,
    in_proj_weight: Parameter<T>,
    in_proj_bias: Option<Parameter<T>>,
    out_proj: Linear<T>,
}

impl<T: Real> MultiheadAttention<T> {
    /// A layer with PyTorch's initialisation drawn from `rng`: `in_proj_weight` Xavier-uniform in
    /// `±√(6 / (E + 3E))`, `out_proj.weight` uniform in `±1/√E`, biases zero.
    pub fn new(config: MultiheadAttentionConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut layer = Self::zeros(config)?;
        let e = config.embed_dim;
        let bound = (6.0 / (4 * e) as f32).sqrt();
        layer
            .in_proj_weight
            .value_mut()
            .iter_mut()
            .for_each(|v| *v = <T as Real>::from_f32(rng.random_range(-bound..=bound)));
        let out = Linear::new(e, e, config.bias, rng)?;
        layer.out_proj.weight_mut().copy_from_slice(out.weight());
        Ok(layer)
    }

    /// [`MultiheadAttention::new`] from a seeded generator.
    pub fn with_seed(config: MultiheadAttentionConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        Self::new(config, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// A layer with all parameters zero (to be loaded).
    pub fn zeros(config: MultiheadAttentionConfig) -> Result<Self> {
        config.validate()?;
        let e = config.embed_dim;
        Ok(MultiheadAttention {
            config,
            in_proj_weight: Parameter::zeros(3 * e * e),
            in_proj_bias: config.bias.then(|| Parameter::zeros(3 * e)),
            out_proj: Linear::zeros(e, e, config.bias)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MultiheadAttentionConfig {
        &self.config
    }

    /// The output projection, PyTorch's `out_proj`.
    pub fn out_proj(&self) -> &Linear<T> {
        &self.out_proj
    }

    /// The output projection, mutably.
    pub fn out_proj_mut(&mut self) -> &mut Linear<T> {
        &mut self.out_proj
    }

    /// The forward pass on row-major slices: see [`MhaInput`] for the layouts. `mask` is checked against
    /// `shape` (`(N, S)` key padding; `(L, S)` or `(N·H, L, S)` `attn_mask`).
    pub fn forward_slices(
        &self,
        input: MhaInput<'_, T>,
        shape: AttentionShape,
        mask: &AttentionMask<'_>,
        weights: NeedWeights,
    ) -> Result<MhaOutput<T>> {
        self.run(input, shape, mask, weights, None::<&mut rand::rngs::StdRng>).map(|(out, _)| out)
    }

    /// The forward pass in training mode, keeping what [`MultiheadAttention::backward`] needs: with
    /// [`MultiheadAttentionConfig::dropout`], the attention weights are dropped out (masks drawn from `rng`) before
    /// they weigh the values, and the weights returned are the dropped ones, as PyTorch returns them.
    pub fn forward_train(
        &self,
        input: MhaInput<'_, T>,
        shape: AttentionShape,
        mask: &AttentionMask<'_>,
        weights: NeedWeights,
        rng: &mut impl Rng,
    ) -> Result<(MhaOutput<T>, MhaCache<T>)> {
        self.run(input, shape, mask, weights, Some(rng))
    }

    pub(super) fn run<R: Rng>(
        &self,
        input: MhaInput<'_, T>,
        shape: AttentionShape,
        mask: &AttentionMask<'_>,
        weights: NeedWeights,
        rng: Option<&mut R>,
    ) -> Result<(MhaOutput<T>, MhaCache<T>)> {
        let shape = self.check_input(input, shape)?;
        let (e, h) = (self.config.embed_dim, self.config.num_heads);
        let AttentionShape { batch, queries, keys } = shape;
        let mask = CheckedMask::new(*mask, MaskDims { batch, heads: h, queries, keys })?;
        let projected = self.project(input, shape);
        let groups = Groups { count: batch * h, queries, keys };
        let [q, k, v] = self.qkv_layouts(input, shape);
        let views = projected.views([q, k, v]);
        // Every value of these is written before it is read; they go back to the pool with the cache.
        let mut probs = scratch::take_unzeroed(groups.scores_len());
        let scale = T::one() / T::from_usize(self.config.head_dim()).unwrap_or(T::one()).sqrt();
        dot_scores(groups, views[0], views[1], scale, &mut probs);
        masked_softmax(groups, &mask, &mut probs)?;
        let (dropout_mask, dropped) = match rng {
            Some(rng) if self.config.dropout > 0.0 => {
                let m: Vec<T> = dropout_mask(probs.len(), self.config.dropout, rng);
                let dropped = probs.iter().zip(&m).map(|(&p, &m)| p * m).collect();
                (m, dropped)
            }
            _ => (Vec::new(), Vec::new()),
        };
        let used = if dropped.is_empty() { &probs } else { &dropped };
        let mut heads_output = scratch::take_unzeroed(batch * queries * e);
        weighted_sum(groups, used, views[2], (&mut heads_output, self.heads_layout(shape)));
        let output = self.out_proj.forward(&heads_output, batch * queries)?;
        let returned = average_heads(used, weights, h, queries * keys);
        let cache = MhaCache { shape, weights, projected, probs, dropout_mask, dropped, heads_output };
        Ok((MhaOutput { output, weights: returned }, cache))
    }

    /// The backward of [`MultiheadAttention::forward_train`] for the same `input`: from `∂L/∂output` (and, when
    /// the loss also reads the returned weights, their gradient), accumulates every parameter's gradient and
    /// returns the inputs' gradients.
    pub fn backward(
        &mut self,
        input: MhaInput<'_, T>,
        cache: &MhaCache<T>,
        d_output: &[T],
        d_weights: Option<&[T]>,
    ) -> Result<MhaInputGrads<T>> {
        self.backward_inner(input, cache, (d_output, d_weights), InputGrad::Wanted)
    }

    /// [`MultiheadAttention::backward`] for inputs that need no gradient (PyTorch's `requires_grad=False`: raw
    /// features rather than a layer's output): the same parameter gradients, without the products `∂L/∂x = dP W`;
    /// the returned gradients are empty.
    pub fn backward_without_input_grad(
        &mut self,
        input: MhaInput<'_, T>,
        cache: &MhaCache<T>,
        d_output: &[T],
        d_weights: Option<&[T]>,
    ) -> Result<()> {
        self.backward_inner(input, cache, (d_output, d_weights), InputGrad::Skipped).map(drop)
    }

    fn backward_inner(
        &mut self,
        input: MhaInput<'_, T>,
        cache: &MhaCache<T>,
        (d_output, d_weights): (&[T], Option<&[T]>),
        input_grad: InputGrad,
    ) -> Result<MhaInputGrads<T>> {
        let shape = self.check_input(input, cache.shape)?;
        let (e, h) = (self.config.embed_dim, self.config.num_heads);
        let AttentionShape { batch, queries, keys } = shape;
        let rows = batch * queries;
        let groups = Groups { count: batch * h, queries, keys };
        let mut dprobs = scratch::take(groups.scores_len());
        if let Some(dw) = d_weights {
            spread_heads(dw, cache.weights, h, queries * keys, &mut dprobs)?;
        }
        let mut d_heads = scratch::take_unzeroed(rows * e);
        self.out_proj.backward_into(&cache.heads_output, d_output, rows, Some(&mut d_heads))?;

        let layouts = self.qkv_layouts(input, shape);
        let views = cache.projected.views(layouts);
        // The gradients of the projections, laid out as the projections are; every value is written.
        let mut d_projected = match &cache.projected {
            Projected::Packed(p) => Projected::Packed(scratch::take_unzeroed(p.len())),
            Projected::Split(p) => Projected::Split(p.each_ref().map(|b| scratch::take_unzeroed(b.len()))),
        };
        let buffers = match &mut d_projected {
            Projected::Packed(p) => QkvBuffers::Packed(&mut p[..]),
            Projected::Split([q, k, v]) => QkvBuffers::Split([&mut q[..], &mut k[..], &mut v[..]]),
        };
        let mut grads = QkvGrads { buffers, layouts };
        let d_heads_view = Heads { data: &d_heads[..], layout: self.heads_layout(shape) };
        let used = if cache.dropped.is_empty() { &cache.probs } else { &cache.dropped };
        weighted_sum_backward(groups, (used, views[2]), d_heads_view, &mut dprobs, &mut grads);
        dprobs.iter_mut().zip(&cache.dropout_mask).for_each(|(d, &m)| *d *= m);
        softmax_backward(keys, &cache.probs, &mut dprobs);
        let scale = T::one() / T::from_usize(self.config.head_dim()).unwrap_or(T::one()).sqrt();
        dot_scores_backward(groups, (views[0], views[1]), scale, &mut dprobs, &mut grads);
        let d_slices = match &d_projected {
            Projected::Packed(d) => [&d[..], &[][..], &[][..]],
            Projected::Split([q, k, v]) => [&q[..], &k[..], &v[..]],
        };
        let grads = self.project_backward(input, shape, d_slices, input_grad);
        scratch::give(dprobs);
        scratch::give(d_heads);
        d_projected.give_back();
        Ok(grads)
    }

    /// Checks the inputs' lengths against `shape` (self-attention has `S = L`).
    fn check_input(&self, input: MhaInput<'_, T>, shape: AttentionShape) -> Result<AttentionShape> {
        let e = self.config.embed_dim;
        let AttentionShape { batch, queries, .. } = shape;
        let layout = |len: usize| {
            if self.config.batch_first { format!("[{batch}, {len}, {e}]") } else { format!("[{len}, {batch}, {e}]") }
        };
        let check = |what: &str, data: &[T], len: usize| {
            if batch.checked_mul(len).and_then(|n| n.checked_mul(e)) == Some(data.len()) {
                Ok(())
            } else {
                Err(Error::shape(what, layout(len), &[data.len()]))
            }
        };
        if queries == 0 || shape.keys == 0 {
            return Err(Error::config(format!(
                "MultiheadAttention: {} queries and {} keys; both must be at least 1",
                queries, shape.keys
            )));
        }
        match input {
            MhaInput::SelfAttention(x) => {
                check("input", x, queries)?;
                Ok(AttentionShape { keys: queries, ..shape })
            }
            MhaInput::Cross { query, key, value } => {
                check("query", query, queries)?;
                check("key", key, shape.keys)?;
                check("value", value, shape.keys)?;
                Ok(shape)
            }
        }
    }

    /// The layouts of the projected queries, keys and values.
    fn qkv_layouts(&self, input: MhaInput<'_, T>, shape: AttentionShape) -> [HeadLayout; 3] {
        let (e, h, d) = (self.config.embed_dim, self.config.num_heads, self.config.head_dim());
        let order = self.config.order(shape.batch);
        match input {
            MhaInput::SelfAttention(_) => {
                [0, e, 2 * e].map(|offset| HeadLayout::new(order, shape.queries, h, d, 3 * e, offset))
            }
            MhaInput::Cross { .. } => {
                let kv = HeadLayout::new(order, shape.keys, h, d, e, 0);
                [HeadLayout::new(order, shape.queries, h, d, e, 0), kv, kv]
            }
        }
    }

    fn heads_layout(&self, shape: AttentionShape) -> HeadLayout {
        let (e, h, d) = (self.config.embed_dim, self.config.num_heads, self.config.head_dim());
        HeadLayout::new(self.config.order(shape.batch), shape.queries, h, d, e, 0)
    }

    /// `x W_blockᵀ + b_block` for the blocks `first..first + count` of `E` rows of `in_proj_weight`.
    fn project_block(&self, x: &[T], rows: usize, (first, count): (usize, usize)) -> Vec<T> {
        let e = self.config.embed_dim;
        let width = count * e;
        // Written in full (the bias or zeros, then the product onto it); back to the pool with the cache.
        let mut out = scratch::take_unzeroed(rows * width);
        let bias = self.in_proj_bias.as_ref().map(|b| &b.value()[first * e..first * e + width]);
        broadcast_rows(&mut out, bias, width);
        let w = MatRef::new(&self.in_proj_weight.value()[first * e * e..], width, e);
        gemm(MatRef::new(x, rows, e), w.t(), T::one(), MatMut::new(&mut out, rows, width));
        out
    }

    fn project(&self, input: MhaInput<'_, T>, shape: AttentionShape) -> Projected<T> {
        let (l_rows, s_rows) = (shape.batch * shape.queries, shape.batch * shape.keys);
        match input {
            MhaInput::SelfAttention(x) => Projected::Packed(self.project_block(x, l_rows, (0, 3))),
            MhaInput::Cross { query, key, value } => Projected::Split([
                self.project_block(query, l_rows, (0, 1)),
                self.project_block(key, s_rows, (1, 1)),
                self.project_block(value, s_rows, (2, 1)),
            ]),
        }
    }

    /// The backward of [`Self::project_block`]: accumulates the block's weight and bias gradients and returns
    /// `∂L/∂x = dy W_block` (empty when the input needs no gradient).
    fn project_block_backward(
        &mut self,
        (x, dy): (&[T], &[T]),
        rows: usize,
        (first, count): (usize, usize),
        input_grad: InputGrad,
    ) -> Vec<T> {
        let e = self.config.embed_dim;
        let width = count * e;
        if let Some(b) = &mut self.in_proj_bias {
            let db = &mut b.grad_mut()[first * e..first * e + width];
            for row in dy.chunks_exact(width.max(1)) {
                db.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
        }
        let dy = MatRef::new(dy, rows, width);
        let (w, dw) = self.in_proj_weight.value_and_grad_mut();
        let block = first * e * e..(first + count) * e * e;
        gemm(dy.t(), MatRef::new(x, rows, e), T::one(), MatMut::new(&mut dw[block.clone()], width, e));
        if input_grad == InputGrad::Skipped {
            return Vec::new();
        }
        let mut dx = vec![T::zero(); rows * e];
        gemm(dy, MatRef::new(&w[block], width, e), T::zero(), MatMut::new(&mut dx, rows, e));
        dx
    }

    fn project_backward(
        &mut self,
        input: MhaInput<'_, T>,
        shape: AttentionShape,
        d: [&[T]; 3],
        input_grad: InputGrad,
    ) -> MhaInputGrads<T> {
        let (l_rows, s_rows) = (shape.batch * shape.queries, shape.batch * shape.keys);
        match input {
            MhaInput::SelfAttention(x) => {
                MhaInputGrads::SelfAttention(self.project_block_backward((x, d[0]), l_rows, (0, 3), input_grad))
            }
            MhaInput::Cross { query, key, value } => MhaInputGrads::Cross {
                query: self.project_block_backward((query, d[0]), l_rows, (0, 1), input_grad),
                key: self.project_block_backward((key, d[1]), s_rows, (1, 1), input_grad),
                value: self.project_block_backward((value, d[2]), s_rows, (2, 1), input_grad),
            },
        }
    }
}

/// Whether a backward pass computes the inputs' gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputGrad {
    Wanted,
    Skipped,
}

impl<T: Real> Drop for MhaCache<T> {
    fn drop(&mut self) {
        std::mem::take(&mut self.projected).give_back();
        for buffer in [&mut self.probs, &mut self.dropout_mask, &mut self.dropped, &mut self.heads_output] {
            scratch::give(std::mem::take(buffer));
        }
    }
}

impl<T: Real> Default for Projected<T> {
    fn default() -> Self {
        Projected::Packed(Vec::new())
    }
}

impl<T: Real> Projected<T> {
    /// Hands the buffers back to the scratch pool.
    fn give_back(self) {
        match self {
            Projected::Packed(p) => scratch::give(p),
            Projected::Split(buffers) => buffers.into_iter().for_each(scratch::give),
        }
    }
}

impl<T> Projected<T> {
    fn views(&self, layouts: [HeadLayout; 3]) -> [Heads<'_, T>; 3] {
        match self {
            Projected::Packed(p) => layouts.map(|layout| Heads { data: &p[..], layout }),
            Projected::Split([q, k, v]) => [
                Heads { data: &q[..], layout: layouts[0] },
                Heads { data: &k[..], layout: layouts[1] },
                Heads { data: &v[..], layout: layouts[2] },
            ],
        }
    }
}

/// The weights to return: the probabilities averaged over heads, or all of them.
fn average_heads<T: Real>(probs: &[T], weights: NeedWeights, heads: usize, block: usize) -> Option<Vec<T>> {
    match weights {
        NeedWeights::No => None,
        NeedWeights::PerHead => Some(probs.to_vec()),
        NeedWeights::Averaged => {
            let inv = T::one() / T::from_usize(heads).unwrap_or(T::one());
            let mut avg = vec![T::zero(); probs.len() / heads.max(1)];
            for (b, out) in avg.chunks_exact_mut(block.max(1)).enumerate() {
                for h in 0..heads {
                    let p = &probs[(b * heads + h) * block..(b * heads + h + 1) * block];
                    out.iter_mut().zip(p).for_each(|(o, &p)| *o += p);
                }
                out.iter_mut().for_each(|o| *o *= inv);
            }
            Some(avg)
        }
    }
}

/// The backward of [`average_heads`]: the gradient of the returned weights, as a gradient of every head's
/// probabilities.
fn spread_heads<T: Real>(d: &[T], weights: NeedWeights, heads: usize, block: usize, dprobs: &mut [T]) -> Result<()> {
    let expected = match weights {
        NeedWeights::No => 0,
        NeedWeights::PerHead => dprobs.len(),
        NeedWeights::Averaged => dprobs.len() / heads,
    };
    if weights == NeedWeights::No || d.len() != expected {
        let what = if weights == NeedWeights::No {
            "none (the forward pass returned no weights)".into()
        } else {
            format!("{expected} values")
        };
        return Err(Error::shape("attention weights gradient", what, &[d.len()]));
    }
    match weights {
        NeedWeights::PerHead => dprobs.copy_from_slice(d),
        _ => {
            let inv = T::one() / T::from_usize(heads).unwrap_or(T::one());
            for (g, out) in dprobs.chunks_exact_mut(block).enumerate() {
                let b = g / heads;
                out.iter_mut().zip(&d[b * block..(b + 1) * block]).for_each(|(o, &v)| *o = v * inv);
            }
        }
    }
    Ok(())
}

impl MultiheadAttention<f32> {
    /// PyTorch's `forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
    /// is_causal)` on tensors: `query (L, N, E)`, `key` and `value (S, N, E)` (batch-first: `(N, L, E)`,
    /// `(N, S, E)`), or unbatched `(L, E)` and `(S, E)`. Returns `attn_output` with the query's shape and the
    /// weights `(N, L, S)`, `(N, H, L, S)` (unbatched: without `N`) or none.
    ///
    /// When `query`, `key` and `value` are the same tensor, the three projections run as one product.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        mask: &AttentionMask<'_>,
        weights: NeedWeights,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (q_shape, unbatched) = self.tensor_shape("query", query)?;
        let (k_shape, _) = self.tensor_shape("key", key)?;
        let (v_shape, _) = self.tensor_shape("value", value)?;
        if k_shape != v_shape || k_shape.batch != q_shape.batch {
            return Err(Error::shape(
                "key and value",
                format!("{} sequences of equal length", q_shape.batch),
                value.shape(),
            ));
        }
        let shape = AttentionShape { keys: k_shape.queries, ..q_shape };
        let same = std::ptr::eq(query, key) && std::ptr::eq(key, value);
        let input = if same {
            MhaInput::SelfAttention(query.data())
        } else {
            MhaInput::Cross { query: query.data(), key: key.data(), value: value.data() }
        };
        let out = self.forward_slices(input, shape, mask, weights)?;
        let output = Tensor::from_parts(query.shape().to_vec(), out.output);
        let weights = out.weights.map(|w| {
            let (n, h, l, s) = (shape.batch, self.config.num_heads, shape.queries, shape.keys);
            let dims = match (weights, unbatched) {
                (NeedWeights::PerHead, false) => vec![n, h, l, s],
                (NeedWeights::PerHead, true) => vec![h, l, s],
                (_, false) => vec![n, l, s],
                (_, true) => vec![l, s],
            };
            Tensor::from_parts(dims, w)
        });
        Ok((output, weights))
    }

    /// The batch size and length of a tensor input, and whether it is unbatched.
    fn tensor_shape(&self, what: &str, t: &Tensor) -> Result<(AttentionShape, bool)> {
        let e = self.config.embed_dim;
        let expected = || if self.config.batch_first { "[N, L, E]" } else { "[L, N, E]" };
        match *t.shape() {
            [len, last] if last == e => Ok((AttentionShape { batch: 1, queries: len, keys: len }, true)),
            [a, b, last] if last == e => {
                let (batch, len) = if self.config.batch_first { (a, b) } else { (b, a) };
                Ok((AttentionShape { batch, queries: len, keys: len }, false))
            }
            _ => Err(Error::shape(what, format!("{} with E = {e}, or [L, {e}] unbatched", expected()), t.shape())),
        }
    }
}

impl Module for MultiheadAttention<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let e = self.config.embed_dim;
        let mut params =
            vec![ParamRef { name: "in_proj_weight".into(), shape: vec![3 * e, e], data: self.in_proj_weight.value() }];
        if let Some(b) = &self.in_proj_bias {
            params.push(ParamRef { name: "in_proj_bias".into(), shape: vec![3 * e], data: b.value() });
        }
        params.extend(prefixed("out_proj", self.out_proj.named_params()));
        params
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let e = self.config.embed_dim;
        let mut params = vec![ParamMut {
            name: "in_proj_weight".into(),
            shape: vec![3 * e, e],
            data: self.in_proj_weight.value_mut(),
        }];
        if let Some(b) = &mut self.in_proj_bias {
            params.push(ParamMut { name: "in_proj_bias".into(), shape: vec![3 * e], data: b.value_mut() });
        }
        params.extend(prefixed("out_proj", self.out_proj.named_params_mut()));
        params
    }
}

impl Trainable for MultiheadAttention<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let e = self.config.embed_dim;
        let (value, grad) = self.in_proj_weight.value_and_grad_mut();
        let mut params = vec![Param { name: "in_proj_weight".into(), shape: vec![3 * e, e], value, grad }];
        if let Some(b) = &mut self.in_proj_bias {
            let (value, grad) = b.value_and_grad_mut();
            params.push(Param { name: "in_proj_bias".into(), shape: vec![3 * e], value, grad });
        }
        params.extend(prefixed("out_proj", self.out_proj.parameters()));
        params
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::attention::{KeyPadding, MaskValues};
    use crate::gradcheck::check;

    fn random(len: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// A layer with random parameters everywhere (biases too, which PyTorch initialises to zero).
    fn layer(config: MultiheadAttentionConfig, rng: &mut StdRng) -> MultiheadAttention<f64> {
        let mut m = MultiheadAttention::<f64>::zeros(config).unwrap();
        let w = random(m.in_proj_weight.value().len(), rng);
        m.in_proj_weight.value_mut().copy_from_slice(&w);
        if let Some(b) = &mut m.in_proj_bias {
            let v = random(b.value().len(), rng);
            b.value_mut().copy_from_slice(&v);
        }
        let w = random(m.out_proj.weight().len(), rng);
        m.out_proj.weight_mut().copy_from_slice(&w);
        if let Some(b) = m.out_proj.bias_mut() {
            let v = random(b.len(), rng);
            b.copy_from_slice(&v);
        }
        m
    }

    /// `L = Σ output ⊙ g + Σ weights ⊙ g_w`.
    struct Probe<'a> {
        shape: AttentionShape,
        mask: AttentionMask<'a>,
        weights: NeedWeights,
        g: Vec<f64>,
        g_w: Option<Vec<f64>>,
    }

    impl Probe<'_> {
        fn loss(&self, m: &MultiheadAttention<f64>, input: MhaInput<'_, f64>) -> f64 {
            let out = m.forward_slices(input, self.shape, &self.mask, self.weights).unwrap();
            let mut l: f64 = out.output.iter().zip(&self.g).map(|(a, b)| a * b).sum();
            if let (Some(w), Some(g)) = (&out.weights, &self.g_w) {
                l += w.iter().zip(g).map(|(a, b)| a * b).sum::<f64>();
            }
            l
        }
    }

    fn make_input<'a>(cross: bool, q: &'a [f64], k: &'a [f64], v: &'a [f64]) -> MhaInput<'a, f64> {
        if cross { MhaInput::Cross { query: q, key: k, value: v } } else { MhaInput::SelfAttention(q) }
    }

    fn check_layer(
        config: MultiheadAttentionConfig,
        shape: AttentionShape,
        cross: bool,
        probe_mask: AttentionMask<'_>,
        weights: NeedWeights,
    ) {
        let mut rng = StdRng::seed_from_u64(7);
        let mut m = layer(config, &mut rng);
        let e = config.embed_dim;
        let (l_len, s_len) = (shape.batch * shape.queries * e, shape.batch * shape.keys * e);
        let mut q = random(l_len, &mut rng);
        let mut k = random(s_len, &mut rng);
        let mut v = random(s_len, &mut rng);
        let groups = shape.batch * config.num_heads;
        let w_len = match weights {
            NeedWeights::No => 0,
            NeedWeights::Averaged => shape.batch * shape.queries * shape.keys,
            NeedWeights::PerHead => groups * shape.queries * shape.keys,
        };
        let probe = Probe {
            shape,
            mask: probe_mask,
            weights,
            g: random(l_len, &mut rng),
            g_w: (w_len > 0).then(|| random(w_len, &mut rng)),
        };
        let (q0, k0, v0) = (q.clone(), k.clone(), v.clone());
        let (_, cache) =
            m.forward_train(make_input(cross, &q0, &k0, &v0), shape, &probe.mask, weights, &mut rng).unwrap();
        let grads = m.backward(make_input(cross, &q0, &k0, &v0), &cache, &probe.g, probe.g_w.as_deref()).unwrap();
        let tol = 1e-6;
        match grads {
            MhaInputGrads::SelfAttention(dx) => {
                check("dx", &mut q, &dx, tol, |x| probe.loss(&m, MhaInput::SelfAttention(x))).unwrap();
            }
            MhaInputGrads::Cross { query, key, value } => {
                check("dquery", &mut q, &query, tol, |x| probe.loss(&m, make_input(cross, x, &k0, &v0))).unwrap();
                check("dkey", &mut k, &key, tol, |x| probe.loss(&m, make_input(cross, &q0, x, &v0))).unwrap();
                check("dvalue", &mut v, &value, tol, |x| probe.loss(&m, make_input(cross, &q0, &k0, x))).unwrap();
            }
        }
        let input = make_input(cross, &q0, &k0, &v0);
        let mut w = m.in_proj_weight.value().to_vec();
        let dw = m.in_proj_weight.grad().unwrap().to_vec();
        check("in_proj_weight", &mut w, &dw, tol, |w| {
            let mut m2 = m.clone();
            m2.in_proj_weight.value_mut().copy_from_slice(w);
            probe.loss(&m2, input)
        })
        .unwrap();
        if let Some(b) = &m.in_proj_bias {
            let (mut bv, db) = (b.value().to_vec(), b.grad().unwrap().to_vec());
            check("in_proj_bias", &mut bv, &db, tol, |b| {
                let mut m2 = m.clone();
                m2.in_proj_bias.as_mut().unwrap().value_mut().copy_from_slice(b);
                probe.loss(&m2, input)
            })
            .unwrap();
        }
        let (mut ow, dow) = (m.out_proj.weight().to_vec(), m.out_proj.weight_grad().to_vec());
        check("out_proj.weight", &mut ow, &dow, tol, |w| {
            let mut m2 = m.clone();
            m2.out_proj.weight_mut().copy_from_slice(w);
            probe.loss(&m2, input)
        })
        .unwrap();
    }

    #[test]
    fn self_attention_gradients_match_finite_differences() {
        let shape = AttentionShape { batch: 2, queries: 4, keys: 4 };
        for batch_first in [false, true] {
            let config = MultiheadAttentionConfig::new(6, 2).batch_first(batch_first);
            check_layer(config, shape, false, AttentionMask::none(), NeedWeights::Averaged);
        }
        let lengths = [4, 2];
        let mask = AttentionMask::lengths(&lengths).with_causal(true);
        check_layer(MultiheadAttentionConfig::new(6, 3).bias(false), shape, false, mask, NeedWeights::PerHead);
    }

    #[test]
    fn cross_attention_gradients_match_finite_differences() {
        let shape = AttentionShape { batch: 2, queries: 3, keys: 5 };
        let attn: Vec<f32> = (0..15).map(|i| if i % 4 == 3 { f32::NEG_INFINITY } else { 0.1 * i as f32 }).collect();
        let padding = [false, false, false, false, false, false, false, false, true, true];
        let mask = AttentionMask {
            key_padding: Some(KeyPadding::Mask(MaskValues::Ignore(&padding))),
            attn_mask: Some(MaskValues::Add(&attn)),
            causal: false,
        };
        check_layer(MultiheadAttentionConfig::new(4, 2), shape, true, mask, NeedWeights::Averaged);
        check_layer(
            MultiheadAttentionConfig::new(4, 1).batch_first(true),
            shape,
            true,
            AttentionMask::none(),
            NeedWeights::No,
        );
    }

    #[test]
    fn dropout_on_the_weights_has_gradients_that_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let config = MultiheadAttentionConfig::new(6, 2).batch_first(true).dropout(0.3);
        let mut m = layer(config, &mut rng);
        let shape = AttentionShape { batch: 2, queries: 4, keys: 4 };
        let mut x = random(2 * 4 * 6, &mut rng);
        let g = random(x.len(), &mut rng);
        let g_w = random(2 * 4 * 4, &mut rng);
        // Every evaluation draws the same masks.
        let loss = |m: &MultiheadAttention<f64>, x: &[f64]| {
            let mut same = StdRng::seed_from_u64(9);
            let (out, _) = m
                .forward_train(
                    MhaInput::SelfAttention(x),
                    shape,
                    &AttentionMask::none(),
                    NeedWeights::Averaged,
                    &mut same,
                )
                .unwrap();
            let w = out.weights.unwrap();
            out.output.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
                + w.iter().zip(&g_w).map(|(a, b)| a * b).sum::<f64>()
        };
        let x0 = x.clone();
        let (out, cache) = m
            .forward_train(
                MhaInput::SelfAttention(&x0),
                shape,
                &AttentionMask::none(),
                NeedWeights::Averaged,
                &mut StdRng::seed_from_u64(9),
            )
            .unwrap();
        assert!(out.weights.unwrap().contains(&0.0), "some weights are dropped");
        let MhaInputGrads::SelfAttention(dx) =
            m.backward(MhaInput::SelfAttention(&x0), &cache, &g, Some(&g_w)).unwrap()
        else {
            panic!("self-attention gives one gradient")
        };
        check("dx", &mut x, &dx, 1e-6, |x| loss(&m, x)).unwrap();
        let mut w = m.in_proj_weight.value().to_vec();
        let dw = m.in_proj_weight.grad().unwrap().to_vec();
        check("in_proj_weight", &mut w, &dw, 1e-6, |w| {
            let mut m2 = m.clone();
            m2.in_proj_weight.value_mut().copy_from_slice(w);
            loss(&m2, &x0)
        })
        .unwrap();
        let inference = m
            .forward_slices(MhaInput::SelfAttention(&x0), shape, &AttentionMask::none(), NeedWeights::Averaged)
            .unwrap();
        assert!(!inference.weights.unwrap().contains(&0.0), "inference does not drop");
    }

    #[test]
    fn skipping_the_input_gradient_leaves_the_parameter_gradients_unchanged() {
        let mut rng = StdRng::seed_from_u64(5);
        let config = MultiheadAttentionConfig::new(4, 2);
        let mut a = layer(config, &mut rng);
        let mut b = a.clone();
        let shape = AttentionShape { batch: 2, queries: 3, keys: 3 };
        let x = random(2 * 3 * 4, &mut rng);
        let g = random(x.len(), &mut rng);
        let input = MhaInput::SelfAttention(&x);
        let (_, cache) = a.forward_train(input, shape, &AttentionMask::none(), NeedWeights::No, &mut rng).unwrap();
        let full = a.backward(input, &cache, &g, None).unwrap();
        assert!(matches!(full, MhaInputGrads::SelfAttention(ref dx) if dx.len() == x.len()));
        b.backward_without_input_grad(input, &cache, &g, None).unwrap();
        assert_eq!(a.in_proj_weight.grad(), b.in_proj_weight.grad());
        assert_eq!(a.out_proj.weight_grad(), b.out_proj.weight_grad());
    }

    #[test]
    fn masked_keys_get_no_weight_and_weights_sum_to_one() {
        let config = MultiheadAttentionConfig::new(4, 2).batch_first(true);
        let m = MultiheadAttention::<f32>::with_seed(config, 3).unwrap();
        let x = Tensor::new([2, 3, 4], (0..24).map(|v| (v as f32 * 0.37).sin()).collect()).unwrap();
        let lengths = [3, 1];
        let (_, w) =
            m.forward(&x, &x, &x, &AttentionMask::lengths(&lengths).with_causal(true), NeedWeights::PerHead).unwrap();
        let w = w.unwrap();
        assert_eq!(w.shape(), &[2, 2, 3, 3]);
        for row in w.data().chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // Batch 1 has one key: every query puts all its weight on it.
        assert!(w.data()[18..].chunks(3).all(|row| row == [1.0, 0.0, 0.0]));
        // Causal: the first query of batch 0 sees only the first key.
        assert_eq!(&w.data()[..3], &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_shapes_and_configurations_are_errors() {
        assert!(MultiheadAttention::<f32>::zeros(MultiheadAttentionConfig::new(6, 4)).is_err());
        assert!(MultiheadAttention::<f32>::zeros(MultiheadAttentionConfig::new(0, 1)).is_err());
        assert!(MultiheadAttention::<f32>::zeros(MultiheadAttentionConfig::new(4, 1).dropout(1.5)).is_err());
        let m = MultiheadAttention::<f32>::with_seed(MultiheadAttentionConfig::new(4, 2), 0).unwrap();
        let x = Tensor::zeros([3, 2, 4]);
        let err = m.forward(&x, &x, &Tensor::zeros([3, 2, 5]), &Default::default(), NeedWeights::No).unwrap_err();
        assert!(err.to_string().contains("value"), "{err}");
        let err = m
            .forward(&x, &Tensor::zeros([3, 1, 4]), &Tensor::zeros([3, 1, 4]), &Default::default(), NeedWeights::No)
            .unwrap_err();
        assert!(err.to_string().contains("key and value"), "{err}");
        let short = [false; 5];
        let mask =
            AttentionMask { key_padding: Some(KeyPadding::Mask(MaskValues::Ignore(&short))), ..Default::default() };
        let err = m.forward(&x, &x, &x, &mask, NeedWeights::No).unwrap_err();
        assert!(err.to_string().contains("key_padding_mask"), "{err}");
        let err = m.forward(&Tensor::zeros([0, 2, 4]), &x, &x, &Default::default(), NeedWeights::No).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
