//! The GRU cell, with PyTorch's gate order (r, z, n) and its placement of the reset gate (after the product):
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! ONNX's options (other activations, `clip`, the reset gate before the product) run the passes of
//! [`gru_onnx`](super::gru_onnx).

use std::collections::HashMap;

use rand::Rng;

use super::activation::{Activation, check_clip};
use super::blocks::{InBlocks, UnitBlocks, lanes, load, store};
use super::gru_onnx::{self, GruOnnx};
use crate::driver::{Cell, CellWeights, ExtraGradInputs, GateBackward, GatePass};
use crate::error::Result;
use crate::kernels::Real;
use crate::kernels::simd;
use crate::params::{Module, ParamMut, ParamRef, Trainable};
use crate::tensor::Tensor;

/// Configuration of a [`GruCell`], as the arguments of PyTorch's `nn.GRUCell`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GruCellConfig {
    /// Size of the input `x`.
    pub input_size: usize,
    /// Size of the hidden state `h`.
    pub hidden_size: usize,
    /// Whether the cell has `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// ONNX's activations `f` (the reset and update gates) and `g` (the candidate); PyTorch's are
    /// [`GRU_ACTIVATIONS`].
    pub activations: [Activation; 2],
    /// ONNX's `clip`: every pre-activation is clamped to `[−clip, clip]` before its activation, when set.
    pub clip: Option<f32>,
    /// Whether the reset gate multiplies the recurrent product `W_hn h + b_hn` (PyTorch's GRU, ONNX's
    /// `linear_before_reset = 1`, Keras's `reset_after=True`) rather than `h` before it (`W_hn (r ⊙ h) + b_hn`:
    /// the original GRU, ONNX's default 0, Keras's `reset_after=False`).
    pub linear_before_reset: bool,
}

/// PyTorch's GRU activations: the sigmoid for the gates, tanh for the candidate.
pub const GRU_ACTIVATIONS: [Activation; 2] = [Activation::Sigmoid, Activation::Tanh];

impl GruCellConfig {
    /// A cell with bias, as PyTorch's default.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        GruCellConfig {
            input_size,
            hidden_size,
            bias: true,
            activations: GRU_ACTIVATIONS,
            clip: None,
            linear_before_reset: true,
        }
    }
}

/// A GRU cell, PyTorch's `nn.GRUCell`.
#[derive(Clone, Debug, PartialEq)]
pub struct GruCell<T: Real = f32> {
    weights: CellWeights<T>,
    /// ONNX's options, when any differs from PyTorch's.
    onnx: Option<GruOnnx<T>>,
}

impl<T: Real> GruCell<T> {
    /// A cell with all parameters zero, in any precision (`f64` for gradient checks).
    pub fn zeros_in(config: GruCellConfig) -> Result<Self> {
        super::check_sizes(config.input_size, config.hidden_size)?;
        check_clip(config.clip)?;
        for activation in config.activations {
            activation.validate()?;
        }
        let (i, h) = (config.input_size, config.hidden_size);
        let pytorch = config.activations == GRU_ACTIVATIONS && config.clip.is_none() && config.linear_before_reset;
        let onnx = (!pytorch).then(|| GruOnnx {
            activations: config.activations,
            clip: config.clip.map(<T as Real>::from_f32),
            linear_before_reset: config.linear_before_reset,
        });
        Ok(GruCell { weights: CellWeights::zeros(3, i, h, h, config.bias), onnx })
    }

    /// The cell's options: the activations, clip and reset placement.
    pub fn config(&self) -> GruCellConfig {
        let (input_size, hidden_size) = (self.weights.input_size(), self.weights.hidden_size());
        let mut config = GruCellConfig { bias: self.weights.has_bias(), ..GruCellConfig::new(input_size, hidden_size) };
        if let Some(onnx) = &self.onnx {
            config.activations = onnx.activations;
            config.clip = onnx.clip.map(<T as Real>::to_f32);
            config.linear_before_reset = onnx.linear_before_reset;
        }
        config
    }

    /// The same cell in another precision, without gradients.
    pub fn cast<U: Real>(&self) -> GruCell<U> {
        let onnx = self.onnx.map(|o| GruOnnx {
            activations: o.activations,
            clip: o.clip.map(|c| U::from_f64_lossy(Real::to_f64(c))),
            linear_before_reset: o.linear_before_reset,
        });
        GruCell { weights: self.weights.cast(), onnx }
    }
}

impl GruCell<f32> {
    /// A cell with all parameters zero (to be loaded).
    pub fn zeros(config: GruCellConfig) -> Result<Self> {
        Self::zeros_in(config)
    }

    /// A cell with PyTorch's default initialisation, drawn from `rng`.
    pub fn new(config: GruCellConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.weights.init(rng);
        Ok(cell)
    }

    /// Loads PyTorch `state_dict` tensors (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
    pub fn from_state_dict(config: GruCellConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.load_state_dict(tensors)?;
        Ok(cell)
    }
}

impl<T: Real> Cell for GruCell<T> {
    type Real = T;
    const GATES: usize = 3;
    const HAS_CELL_STATE: bool = false;
    const SEPARATE_RECURRENT_GRAD: bool = true;

    fn weights(&self) -> &CellWeights<T> {
        &self.weights
    }

    fn weights_mut(&mut self) -> &mut CellWeights<T> {
        &mut self.weights
    }

    /// Per row: the activated gates `r, z, n`, then `W_hn h + b_hn` (which the reset gate multiplied); with
    /// ONNX's options, the slots of [`gru_onnx::CACHE_SLOTS`].
    fn cache_width(&self) -> usize {
        let slots = if self.onnx.is_some() { gru_onnx::CACHE_SLOTS } else { 4 };
        slots * self.weights.hidden_size()
    }

    /// None: the cache serves only the backward; but without `linear_before_reset` the pass keeps `r ⊙ h` there
    /// for its own product.
    fn inference_cache_width(&self) -> usize {
        match self.onnx {
            Some(onnx) if !onnx.linear_before_reset => self.cache_width(),
            _ => 0,
        }
    }

    fn recurrent_gates(&self) -> usize {
        match self.onnx {
            // `gh_n` goes unused: the gate pass multiplies `r ⊙ h` by `W_hn` itself.
            Some(onnx) if !onnx.linear_before_reset => 2,
            _ => 3,
        }
    }

    /// Without `linear_before_reset`, `∂(r ⊙ h)` per row.
    fn scratch_width(&self) -> usize {
        match self.onnx {
            Some(onnx) if !onnx.linear_before_reset => self.weights.hidden_size(),
            _ => 0,
        }
    }

    /// `None` without `linear_before_reset`, whose product `W_hn (r ⊙ h)` mixes every unit's reset gate.
    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self> {
        match self.onnx {
            Some(onnx) if !onnx.linear_before_reset => None,
            onnx => Some(GruCell { weights: self.weights.unit_slice(units), onnx }),
        }
    }

    fn forward_gates(&self, pass: GatePass<'_, T>) {
        if let Some(onnx) = &self.onnx {
            return onnx.forward(&self.weights, pass);
        }
        let hidden = self.weights.hidden_size();
        // An inference pass keeps nothing (see `inference_cache_width`).
        let cache = if pass.cache.is_empty() { None } else { Some(&mut *pass.cache) };
        let (gx, gh, h_prev, h_next) = (pass.gx, pass.gh, pass.h_prev, &mut *pass.h_next);
        simd::vectorised::<T, _>(InBlocks(ForwardRows { hidden, gx, gh, h_prev, h_next, cache }));
    }

    /// With `a_n = gx_n + r ⊙ hn` (`hn = W_hn h + b_hn`):
    ///
    /// ```text
    /// ∂n = ∂h' ⊙ (1 − z)    ∂z = ∂h' ⊙ (h − n)    ∂h (direct) = ∂h' ⊙ z
    /// ∂a_n = ∂n ⊙ (1 − n²)  →  ∂gx_n = ∂a_n,  ∂gh_n = ∂a_n ⊙ r
    /// ∂r = ∂a_n ⊙ hn  →  ∂a_r = ∂r ⊙ r(1−r);   ∂a_z = ∂z ⊙ z(1−z)   (the same for gx and gh)
    /// ```
    fn backward_gates(&self, pass: GateBackward<'_, T>) {
        if let Some(onnx) = &self.onnx {
            return onnx.backward(&self.weights, pass);
        }
        simd::vectorised::<T, _>(InBlocks(BackwardRows {
            hidden: self.weights.hidden_size(),
            cache: pass.cache,
            dh: pass.dh,
            h_prev: pass.h_prev,
            dh_prev: &mut *pass.dh_prev,
            dgx: &mut *pass.dgx,
            dgh: &mut *pass.dgh,
        }));
    }

    fn accumulate_extra_grads(&mut self, inputs: ExtraGradInputs<'_, T>) {
        if let Some(onnx) = self.onnx {
            onnx.accumulate_grads(&mut self.weights, inputs);
        }
    }
}

/// The GRU's forward gate pass over a batch of rows, a block of units at a time (see
/// [`blocks`](super::blocks)).
struct ForwardRows<'a, T> {
    hidden: usize,
    gx: &'a [T],
    gh: &'a [T],
    h_prev: &'a [T],
    h_next: &'a mut [T],
    /// Per row: the activated gates `r, z, n`, then `W_hn h + b_hn` (for a backward).
    cache: Option<&'a mut [T]>,
}

impl<T: Real> UnitBlocks for ForwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.h_next.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let n = self.hidden;
        // Where the row starts in the buffers of `3n`, `n` and `4n` values a row.
        let (g3, u, k) = (row * 3 * n + j, row * n + j, row * 4 * n + j);
        let (xr, xz, xn) = (load(self.gx, g3, w), load(self.gx, n + g3, w), load(self.gx, 2 * n + g3, w));
        let (hr, hz, hn) = (load(self.gh, g3, w), load(self.gh, n + g3, w), load(self.gh, 2 * n + g3, w));
        let h_prev = load(self.h_prev, u, w);
        let r = lanes(|l| (xr[l] + hr[l]).sigmoid());
        let z = lanes(|l| (xz[l] + hz[l]).sigmoid());
        let new = lanes(|l| (xn[l] + r[l] * hn[l]).act_tanh());
        store(self.h_next, u, w, &lanes(|l| (T::one() - z[l]) * new[l] + z[l] * h_prev[l]));
        if let Some(cache) = self.cache.as_deref_mut() {
            for (gate, v) in [r, z, new, hn].iter().enumerate() {
                store(cache, gate * n + k, w, v);
            }
        }
    }
}

/// The GRU's backward gate pass over a batch of rows, a block of units at a time.
struct BackwardRows<'a, T> {
    hidden: usize,
    /// The forward's cache.
    cache: &'a [T],
    /// `∂L/∂h'` and `h`, `n` values a row.
    dh: &'a [T],
    h_prev: &'a [T],
    /// Receives `∂L/∂h ⊙ z`, the gradient that bypasses `W_hh`.
    dh_prev: &'a mut [T],
    /// Receive the gradients of the two projections' pre-activations, `3n` a row each.
    dgx: &'a mut [T],
    dgh: &'a mut [T],
}

impl<T: Real> UnitBlocks for BackwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.dh.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let (n, one) = (self.hidden, T::one());
        // Where the row starts in the buffers of `4n`, `n` and `3n` values a row.
        let (k, u, g3) = (row * 4 * n + j, row * n + j, row * 3 * n + j);
        let (r, z) = (load(self.cache, k, w), load(self.cache, n + k, w));
        let (new, hn) = (load(self.cache, 2 * n + k, w), load(self.cache, 3 * n + k, w));
        let (dh, h_prev) = (load(self.dh, u, w), load(self.h_prev, u, w));
        let dn = lanes(|l| dh[l] * (one - z[l]));
        let dz = lanes(|l| dh[l] * (h_prev[l] - new[l]));
        store(self.dh_prev, u, w, &lanes(|l| dh[l] * z[l]));
        let dan = lanes(|l| dn[l] * (one - new[l] * new[l]));
        let dar = lanes(|l| dan[l] * hn[l] * r[l] * (one - r[l]));
        let daz = lanes(|l| dz[l] * z[l] * (one - z[l]));
        for (gate, v) in [dar, daz, dan].iter().enumerate() {
            store(self.dgx, gate * n + g3, w, v);
        }
        store(self.dgh, g3, w, &dar);
        store(self.dgh, n + g3, w, &daz);
        store(self.dgh, 2 * n + g3, w, &lanes(|l| dan[l] * r[l]));
    }
}

impl Module for GruCell<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        self.params("")
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.params_mut("")
    }
}

impl Trainable for GruCell<f32> {
    fn parameters(&mut self) -> Vec<crate::params::Param<'_>> {
        self.params_with_grads("")
    }
}
