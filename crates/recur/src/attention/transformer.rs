//! PyTorch's `nn.TransformerEncoderLayer`: self-attention and a feed-forward block, each with a residual
//! connection, dropout and LayerNorm, forward and backward. It is here to be compared with the recurrent layers.

use rand::Rng;

use super::AttentionShape;
use super::mask::AttentionMask;
use super::multihead::{MhaCache, MhaInput, MhaInputGrads, MultiheadAttention, MultiheadAttentionConfig, NeedWeights};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{LayerNorm, LayerNormCache, Linear, dropout_mask};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable, prefixed};
use crate::tensor::Tensor;

/// The configuration of a [`TransformerEncoderLayer`], PyTorch's `nn.TransformerEncoderLayer(d_model, nhead,
/// dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5, batch_first=False,
/// norm_first=False, bias=True)`. The activation is ReLU (PyTorch's default); `"gelu"` is not supported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// `E`, the size of every position's vector.
    pub d_model: usize,
    /// Attention heads.
    pub nhead: usize,
    /// Units of the feed-forward block's hidden layer.
    pub dim_feedforward: usize,
    /// Dropout in training passes: on the attention weights, after the attention, inside and after the
    /// feed-forward block.
    pub dropout: f64,
    /// The LayerNorms' `eps`.
    pub layer_norm_eps: f64,
    /// Whether batched inputs are `(N, L, E)` rather than `(L, N, E)`.
    pub batch_first: bool,
    /// LayerNorm before each block (pre-norm) rather than after each residual sum (post-norm, the original).
    pub norm_first: bool,
    /// Whether the linear layers and LayerNorms have biases.
    pub bias: bool,
}

impl TransformerEncoderLayerConfig {
    /// PyTorch's defaults for `d_model` and `nhead`.
    pub fn new(d_model: usize, nhead: usize) -> Self {
        TransformerEncoderLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }

    /// The feed-forward block's hidden size.
    pub fn dim_feedforward(self, dim_feedforward: usize) -> Self {
        TransformerEncoderLayerConfig { dim_feedforward, ..self }
    }

    /// The dropout probability.
    pub fn dropout(self, dropout: f64) -> Self {
        TransformerEncoderLayerConfig { dropout, ..self }
    }

    /// Batch-first or time-major inputs.
    pub fn batch_first(self, batch_first: bool) -> Self {
        TransformerEncoderLayerConfig { batch_first, ..self }
    }

    /// Pre-norm (`true`) or post-norm.
    pub fn norm_first(self, norm_first: bool) -> Self {
        TransformerEncoderLayerConfig { norm_first, ..self }
    }

    /// With or without biases.
    pub fn bias(self, bias: bool) -> Self {
        TransformerEncoderLayerConfig { bias, ..self }
    }
}

/// What [`TransformerEncoderLayer::backward`] needs from its forward pass.
#[derive(Clone, Debug)]
pub struct TransformerCache<T: Real = f32> {
    shape: AttentionShape,
    /// Pre-norm: the attention's input `norm1(x)` (post-norm reads `x` itself, which the backward is given).
    normed_input: Vec<T>,
    attention: MhaCache<T>,
    /// `x + dropout(attention)`.
    first_sum: Vec<T>,
    norm1: LayerNormCache<T>,
    /// The feed-forward block's input: `norm1(first_sum)` (post-norm) or `norm2(first_sum)` (pre-norm).
    ff_input: Vec<T>,
    /// `linear1`'s output before ReLU, and the hidden layer after ReLU and dropout.
    pre_activation: Vec<T>,
    hidden: Vec<T>,
    /// Post-norm: `ff_input + dropout(linear2(hidden))`, the input of `norm2`.
    second_sum: Vec<T>,
    norm2: LayerNormCache<T>,
    /// Dropout masks after the attention, on the hidden layer and after `linear2` (empty without dropout).
    masks: [Vec<T>; 3],
}

/// One Transformer encoder layer, exactly PyTorch's `nn.TransformerEncoderLayer` with ReLU:
///
/// - post-norm: `x ← norm1(x + SA(x))`, then `x ← norm2(x + FF(x))`;
/// - pre-norm: `x ← x + SA(norm1(x))`, then `x ← x + FF(norm2(x))`;
///
/// with `SA` the multi-head self-attention and `FF(x) = linear2(dropout(relu(linear1(x))))`, each followed by
/// dropout. Parameters under PyTorch's names: `self_attn.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerEncoderLayer<T: Real = f32> {
    config: TransformerEncoderLayerConfig,
    self_attn: MultiheadAttention<T>,
    linear1: Linear<T>,
    linear2: Linear<T>,
    norm1: LayerNorm<T>,
    norm2: LayerNorm<T>,
}

impl<T: Real> TransformerEncoderLayer<T> {
    /// A layer with PyTorch's initialisation drawn from `rng`.
    pub fn new(config: TransformerEncoderLayerConfig, rng: &mut impl Rng) -> Result<Self> {
        let TransformerEncoderLayerConfig { d_model, nhead, dim_feedforward, dropout, layer_norm_eps, bias, .. } =
            config;
        if !(0.0..=1.0).contains(&dropout) {
            return Err(Error::config(format!("TransformerEncoderLayer: dropout must be in [0, 1], found {dropout}")));
        }
        let attention =
            MultiheadAttentionConfig::new(d_model, nhead).bias(bias).batch_first(config.batch_first).dropout(dropout);
        Ok(TransformerEncoderLayer {
            config,
            self_attn: MultiheadAttention::new(attention, rng)?,
            linear1: Linear::new(d_model, dim_feedforward, bias, rng)?,
            linear2: Linear::new(dim_feedforward, d_model, bias, rng)?,
            norm1: LayerNorm::with_options(d_model, layer_norm_eps, true, bias)?,
            norm2: LayerNorm::with_options(d_model, layer_norm_eps, true, bias)?,
        })
    }

    /// [`TransformerEncoderLayer::new`] from a seeded generator.
    pub fn with_seed(config: TransformerEncoderLayerConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        Self::new(config, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// The configuration.
    pub fn config(&self) -> &TransformerEncoderLayerConfig {
        &self.config
    }

    /// The forward pass (PyTorch's eval mode: no dropout) over `batch` sequences of `len` positions, `x` laid out
    /// as the configuration says. `mask` is the self-attention's (key padding, `attn_mask`, causal).
    pub fn forward(&self, x: &[T], (batch, len): (usize, usize), mask: &AttentionMask<'_>) -> Result<Vec<T>> {
        self.run(x, (batch, len), mask, None::<&mut rand::rngs::StdRng>).map(|(y, _)| y)
    }

    /// The forward pass in training mode (dropout drawn from `rng`), keeping what the backward needs.
    pub fn forward_train(
        &self,
        x: &[T],
        (batch, len): (usize, usize),
        mask: &AttentionMask<'_>,
        rng: &mut impl Rng,
    ) -> Result<(Vec<T>, TransformerCache<T>)> {
        self.run(x, (batch, len), mask, Some(rng))
    }

    fn run<R: Rng>(
        &self,
        x: &[T],
        (batch, len): (usize, usize),
        mask: &AttentionMask<'_>,
        mut rng: Option<&mut R>,
    ) -> Result<(Vec<T>, TransformerCache<T>)> {
        let (e, f) = (self.config.d_model, self.config.dim_feedforward);
        let shape = AttentionShape { batch, queries: len, keys: len };
        let rows = batch * len;
        let p = self.config.dropout;
        let norm_first = self.config.norm_first;
        let (normed_input, norm1_first) = if norm_first {
            let (y, cache) = self.norm1.forward_train(x, rows)?;
            (y, Some(cache))
        } else {
            (Vec::new(), None)
        };
        let input = MhaInput::SelfAttention(if norm_first { &normed_input } else { x });
        let (attended, attention) = self.self_attn.run(input, shape, mask, NeedWeights::No, rng.as_deref_mut())?;
        let mask0 = draw_mask(&mut rng, rows * e, p);
        let mut first_sum = attended.output;
        apply_mask(&mut first_sum, &mask0);
        first_sum.iter_mut().zip(x).for_each(|(s, &x)| *s += x);
        let (ff_input, norm1, norm2_first) = if norm_first {
            let (y, c2) = self.norm2.forward_train(&first_sum, rows)?;
            (y, norm1_first.expect("pre-norm kept norm1"), Some(c2))
        } else {
            let (y, c1) = self.norm1.forward_train(&first_sum, rows)?;
            (y, c1, None)
        };
        let pre_activation = self.linear1.forward(&ff_input, rows)?;
        let mut hidden: Vec<T> = pre_activation.iter().map(|&v| v.max(T::zero())).collect();
        let mask1 = draw_mask(&mut rng, rows * f, p);
        apply_mask(&mut hidden, &mask1);
        let mut ff = self.linear2.forward(&hidden, rows)?;
        let mask2 = draw_mask(&mut rng, rows * e, p);
        apply_mask(&mut ff, &mask2);
        let (y, second_sum, norm2) = if norm_first {
            let y = first_sum.iter().zip(&ff).map(|(&a, &b)| a + b).collect();
            (y, Vec::new(), norm2_first.expect("pre-norm kept norm2"))
        } else {
            let second_sum: Vec<T> = ff_input.iter().zip(&ff).map(|(&a, &b)| a + b).collect();
            let (y, c2) = self.norm2.forward_train(&second_sum, rows)?;
            (y, second_sum, c2)
        };
        let cache = TransformerCache {
            shape,
            normed_input,
            attention,
            first_sum,
            norm1,
            ff_input,
            pre_activation,
            hidden,
            second_sum,
            norm2,
            masks: [mask0, mask1, mask2],
        };
        Ok((y, cache))
    }

    /// The backward of [`TransformerEncoderLayer::forward_train`] for the same `x`: accumulates every parameter's
    /// gradient and returns `∂L/∂x`.
    pub fn backward(&mut self, x: &[T], cache: &TransformerCache<T>, dy: &[T]) -> Result<Vec<T>> {
        let (e, f) = (self.config.d_model, self.config.dim_feedforward);
        let rows = cache.shape.batch * cache.shape.queries;
        if dy.len() != rows * e || x.len() != rows * e {
            return Err(Error::shape("output gradient", format!("[{rows}, {e}] values"), &[dy.len()]));
        }
        let [mask0, mask1, mask2] = &cache.masks;
        // The gradient of the second residual sum: post-norm through `norm2`, pre-norm the output's own.
        let d_sum = if self.config.norm_first {
            dy.to_vec()
        } else {
            self.norm2.backward(&cache.second_sum, &cache.norm2, dy, rows)?
        };
        // The feed-forward path: dropout, `linear2`, dropout, ReLU, `linear1`.
        let mut d_linear2 = d_sum.clone();
        apply_mask(&mut d_linear2, mask2);
        let mut d_hidden = vec![T::zero(); rows * f];
        self.linear2.backward_into(&cache.hidden, &d_linear2, rows, Some(&mut d_hidden))?;
        apply_mask(&mut d_hidden, mask1);
        for (d, &a) in d_hidden.iter_mut().zip(&cache.pre_activation) {
            if a <= T::zero() {
                *d = T::zero();
            }
        }
        let mut d_ff_input = vec![T::zero(); rows * e];
        self.linear1.backward_into(&cache.ff_input, &d_hidden, rows, Some(&mut d_ff_input))?;
        let d_first_sum = if self.config.norm_first {
            // `y = first_sum + FF(norm2(first_sum))`.
            let mut d = self.norm2.backward(&cache.first_sum, &cache.norm2, &d_ff_input, rows)?;
            d.iter_mut().zip(&d_sum).for_each(|(a, &b)| *a += b);
            d
        } else {
            // `second_sum = ff_input + FF(ff_input)` with `ff_input = norm1(first_sum)`.
            d_ff_input.iter_mut().zip(&d_sum).for_each(|(a, &b)| *a += b);
            self.norm1.backward(&cache.first_sum, &cache.norm1, &d_ff_input, rows)?
        };
        // The attention path: `first_sum = x + dropout(SA(x))`, or `SA(norm1(x))` pre-norm.
        let mut d_attended = d_first_sum.clone();
        apply_mask(&mut d_attended, mask0);
        let input = MhaInput::SelfAttention(if self.config.norm_first { &cache.normed_input } else { x });
        let MhaInputGrads::SelfAttention(d_attention_input) =
            self.self_attn.backward(input, &cache.attention, &d_attended, None)?
        else {
            unreachable!("self-attention returns one input gradient");
        };
        let mut dx = d_first_sum;
        if self.config.norm_first {
            let d_norm = self.norm1.backward(x, &cache.norm1, &d_attention_input, rows)?;
            dx.iter_mut().zip(&d_norm).for_each(|(a, &b)| *a += b);
        } else {
            dx.iter_mut().zip(&d_attention_input).for_each(|(a, &b)| *a += b);
        }
        Ok(dx)
    }
}

/// A dropout mask of `len` values when training with `p > 0`, else none.
fn draw_mask<T: Real, R: Rng>(rng: &mut Option<&mut R>, len: usize, p: f64) -> Vec<T> {
    match rng.as_deref_mut() {
        Some(rng) if p > 0.0 => dropout_mask(len, p, rng),
        _ => Vec::new(),
    }
}

fn apply_mask<T: Real>(values: &mut [T], mask: &[T]) {
    if !mask.is_empty() {
        values.iter_mut().zip(mask).for_each(|(v, &m)| *v *= m);
    }
}

impl TransformerEncoderLayer<f32> {
    /// PyTorch's `forward(src, src_mask, src_key_padding_mask, is_causal)` in eval mode on a tensor `(L, N, E)`
    /// (batch-first: `(N, L, E)`) or unbatched `(L, E)`; the output has the input's shape.
    pub fn forward_tensor(&self, src: &Tensor, mask: &AttentionMask<'_>) -> Result<Tensor> {
        let e = self.config.d_model;
        let (batch, len) = match *src.shape() {
            [len, last] if last == e => (1, len),
            [a, b, last] if last == e => {
                if self.config.batch_first {
                    (a, b)
                } else {
                    (b, a)
                }
            }
            _ => {
                let layout = if self.config.batch_first { "[N, L, E]" } else { "[L, N, E]" };
                return Err(Error::shape("src", format!("{layout} with E = {e}, or [L, {e}] unbatched"), src.shape()));
            }
        };
        let y = self.forward(src.data(), (batch, len), mask)?;
        Tensor::new(src.shape().to_vec(), y)
    }
}

macro_rules! each_part {
    ($self:expr, $method:ident) => {{
        let mut all = prefixed("self_attn", $self.self_attn.$method());
        all.extend(prefixed("linear1", $self.linear1.$method()));
        all.extend(prefixed("linear2", $self.linear2.$method()));
        all.extend(prefixed("norm1", $self.norm1.$method()));
        all.extend(prefixed("norm2", $self.norm2.$method()));
        all
    }};
}

impl Module for TransformerEncoderLayer<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        each_part!(self, named_params)
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        each_part!(self, named_params_mut)
    }
}

impl Trainable for TransformerEncoderLayer<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        each_part!(self, parameters)
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

    /// Randomises the LayerNorms' affine parameters (PyTorch starts them at ones and zeros).
    fn randomise_norms(layer: &mut TransformerEncoderLayer<f64>, rng: &mut StdRng) {
        for norm in [&mut layer.norm1, &mut layer.norm2] {
            if let Some(w) = norm.weight_mut() {
                w.iter_mut().for_each(|v| *v = 1.0 + 0.3 * rng.random_range(-1.0..1.0));
            }
            if let Some(b) = norm.bias_mut() {
                b.iter_mut().for_each(|v| *v = 0.3 * rng.random_range(-1.0..1.0));
            }
        }
    }

    fn check_layer(config: TransformerEncoderLayerConfig, lengths: &[usize]) {
        let mut rng = StdRng::seed_from_u64(21);
        let mut layer = TransformerEncoderLayer::<f64>::new(config, &mut rng).unwrap();
        randomise_norms(&mut layer, &mut rng);
        let (batch, len) = (lengths.len(), 4);
        let mask = AttentionMask::lengths(lengths).with_causal(true);
        let mut x = random(batch * len * config.d_model, &mut rng);
        let g = random(x.len(), &mut rng);
        let loss = |l: &TransformerEncoderLayer<f64>, x: &[f64]| {
            let (y, _) = l.forward_train(x, (batch, len), &mask, &mut StdRng::seed_from_u64(4)).unwrap();
            y.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
        };
        let x0 = x.clone();
        let (_, cache) = layer.forward_train(&x0, (batch, len), &mask, &mut StdRng::seed_from_u64(4)).unwrap();
        let dx = layer.backward(&x0, &cache, &g).unwrap();
        let what = format!("norm_first {} dropout {}", config.norm_first, config.dropout);
        check(&format!("{what}: dx"), &mut x, &dx, 1e-6, |x| loss(&layer, x)).unwrap();
        let mut w = layer.linear1.weight().to_vec();
        let dw = layer.linear1.weight_grad().to_vec();
        check(&format!("{what}: linear1.weight"), &mut w, &dw, 1e-6, |w| {
            let mut l = layer.clone();
            l.linear1.weight_mut().copy_from_slice(w);
            loss(&l, &x0)
        })
        .unwrap();
        let mut nw = layer.norm1.weight().unwrap().to_vec();
        let dnw = layer.norm1.weight_grad().unwrap().to_vec();
        check(&format!("{what}: norm1.weight"), &mut nw, &dnw, 1e-6, |w| {
            let mut l = layer.clone();
            l.norm1.weight_mut().unwrap().copy_from_slice(w);
            loss(&l, &x0)
        })
        .unwrap();
        let mut a = layer.self_attn.out_proj().weight().to_vec();
        let da = layer.self_attn.out_proj().weight_grad().to_vec();
        check(&format!("{what}: self_attn.out_proj.weight"), &mut a, &da, 1e-6, |w| {
            let mut l = layer.clone();
            l.self_attn.out_proj_mut().weight_mut().copy_from_slice(w);
            loss(&l, &x0)
        })
        .unwrap();
    }

    #[test]
    fn gradients_match_finite_differences_post_and_pre_norm_with_and_without_dropout() {
        for norm_first in [false, true] {
            for dropout in [0.0, 0.25] {
                let config = TransformerEncoderLayerConfig::new(6, 2)
                    .dim_feedforward(10)
                    .dropout(dropout)
                    .norm_first(norm_first)
                    .batch_first(norm_first);
                check_layer(config, &[4, 2]);
            }
        }
    }

    #[test]
    fn the_tensor_api_checks_shapes() {
        let layer = TransformerEncoderLayer::<f32>::with_seed(TransformerEncoderLayerConfig::new(4, 2), 0).unwrap();
        let y = layer.forward_tensor(&Tensor::zeros([3, 2, 4]), &AttentionMask::none()).unwrap();
        assert_eq!(y.shape(), &[3, 2, 4]);
        let err = layer.forward_tensor(&Tensor::zeros([3, 2, 5]), &AttentionMask::none()).unwrap_err();
        assert!(err.to_string().contains("[L, N, E] with E = 4"), "{err}");
        assert!(TransformerEncoderLayer::<f32>::with_seed(TransformerEncoderLayerConfig::new(4, 3), 0).is_err());
        assert!(
            TransformerEncoderLayer::<f32>::with_seed(TransformerEncoderLayerConfig::new(4, 2).dropout(2.0), 0)
                .is_err()
        );
    }
}
