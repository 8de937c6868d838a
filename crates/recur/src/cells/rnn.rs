//! The Elman RNN cell: `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, with `act` = tanh or ReLU (PyTorch's
//! choices) or any of ONNX's [`Activation`]s, and optionally ONNX's `clip` on the pre-activation.

use std::collections::HashMap;

use rand::Rng;

use super::activation::{Activation, activate, check_clip, clip_block, derivative_block};
use super::blocks::{InBlocks, UnitBlocks, lanes, load, store};
use crate::driver::{Cell, CellWeights, GateBackward, GatePass};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::simd;
use crate::params::{Module, ParamMut, ParamRef, Trainable};
use crate::tensor::Tensor;

/// The nonlinearity of a vanilla RNN, PyTorch's `nonlinearity` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

impl std::str::FromStr for Nonlinearity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tanh" => Ok(Nonlinearity::Tanh),
            "relu" => Ok(Nonlinearity::Relu),
            other => Err(Error::config(format!("nonlinearity must be `tanh` or `relu`, found `{other}`"))),
        }
    }
}

/// Configuration of an [`RnnCell`], as the arguments of PyTorch's `nn.RNNCell`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnCellConfig {
    /// Size of the input `x`.
    pub input_size: usize,
    /// Size of the hidden state `h`.
    pub hidden_size: usize,
    /// Whether the cell has `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// tanh or ReLU.
    pub nonlinearity: Nonlinearity,
    /// ONNX's activation `f`, in place of `nonlinearity` when set.
    pub activation: Option<Activation>,
    /// ONNX's `clip`: the pre-activation is clamped to `[−clip, clip]` before the activation, when set.
    pub clip: Option<f32>,
}

impl RnnCellConfig {
    /// A cell with bias and tanh, as PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnCellConfig {
            input_size,
            hidden_size,
            bias: true,
            nonlinearity: Nonlinearity::Tanh,
            activation: None,
            clip: None,
        }
    }
}

impl From<Nonlinearity> for Activation {
    fn from(nonlinearity: Nonlinearity) -> Self {
        match nonlinearity {
            Nonlinearity::Tanh => Activation::Tanh,
            Nonlinearity::Relu => Activation::Relu,
        }
    }
}

/// A vanilla RNN cell, PyTorch's `nn.RNNCell`:
///
/// `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnCell<T: Real = f32> {
    nonlinearity: Nonlinearity,
    /// ONNX's options, when any is set: the cell then caches its pre-activations for the backward.
    onnx: Option<RnnOnnx<T>>,
    weights: CellWeights<T>,
}

/// An RNN cell's ONNX options.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RnnOnnx<T> {
    activation: Activation,
    clip: Option<T>,
}

impl RnnCell<f32> {
    /// A cell with all parameters zero (to be loaded).
    pub fn zeros(config: RnnCellConfig) -> Result<Self> {
        Self::zeros_in(config)
    }

    /// A cell with PyTorch's default initialisation, drawn from `rng`.
    pub fn new(config: RnnCellConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.weights.init(rng);
        Ok(cell)
    }

    /// Loads PyTorch `state_dict` tensors (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
    pub fn from_state_dict(config: RnnCellConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.load_state_dict(tensors)?;
        Ok(cell)
    }
}

impl<T: Real> RnnCell<T> {
    /// A cell with all parameters zero, in any precision (`f64` for gradient checks).
    pub fn zeros_in(config: RnnCellConfig) -> Result<Self> {
        super::check_sizes(config.input_size, config.hidden_size)?;
        check_clip(config.clip)?;
        if let Some(activation) = config.activation {
            activation.validate()?;
        }
        let weights = CellWeights::zeros(1, config.input_size, config.hidden_size, config.hidden_size, config.bias);
        let onnx = (config.activation.is_some() || config.clip.is_some()).then(|| RnnOnnx {
            activation: config.activation.unwrap_or(config.nonlinearity.into()),
            clip: config.clip.map(<T as Real>::from_f32),
        });
        Ok(RnnCell { nonlinearity: config.nonlinearity, onnx, weights })
    }

    /// The nonlinearity.
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }

    /// The activation function: ONNX's when set, else the nonlinearity's.
    pub fn activation(&self) -> Activation {
        self.onnx.map_or(self.nonlinearity.into(), |o| o.activation)
    }

    /// ONNX's clip threshold, if any.
    pub fn clip(&self) -> Option<f32> {
        self.onnx.and_then(|o| o.clip).map(<T as Real>::to_f32)
    }

    /// The same cell in another precision, without gradients.
    pub fn cast<U: Real>(&self) -> RnnCell<U> {
        let onnx = self
            .onnx
            .map(|o| RnnOnnx { activation: o.activation, clip: o.clip.map(|c| U::from_f64_lossy(Real::to_f64(c))) });
        RnnCell { nonlinearity: self.nonlinearity, onnx, weights: self.weights.cast() }
    }
}

impl<T: Real> Cell for RnnCell<T> {
    type Real = T;
    const GATES: usize = 1;
    const HAS_CELL_STATE: bool = false;

    fn weights(&self) -> &CellWeights<T> {
        &self.weights
    }

    fn weights_mut(&mut self) -> &mut CellWeights<T> {
        &mut self.weights
    }

    /// None with PyTorch's nonlinearities (the backward reads the derivative off `h'`); with ONNX's options, the
    /// pre-activation.
    fn cache_width(&self) -> usize {
        if self.onnx.is_some() { self.weights.hidden_size() } else { 0 }
    }

    fn inference_cache_width(&self) -> usize {
        0
    }

    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self> {
        Some(RnnCell { nonlinearity: self.nonlinearity, onnx: self.onnx, weights: self.weights.unit_slice(units) })
    }

    fn forward_gates(&self, pass: GatePass<'_, T>) {
        if let Some(onnx) = self.onnx {
            let cache = if pass.cache.is_empty() { None } else { Some(&mut *pass.cache) };
            let rows = OnnxRows { onnx, pre: [pass.gx, pass.gh], out: &mut *pass.h_next, cache, backward: false };
            return simd::vectorised::<T, _>(InBlocks(rows));
        }
        let relu = self.nonlinearity == Nonlinearity::Relu;
        simd::vectorised::<T, _>(InBlocks(Rows {
            relu,
            pre: [pass.gx, pass.gh],
            out: &mut *pass.h_next,
            backward: false,
        }));
    }

    /// `∂L/∂a = ∂L/∂h ⊙ act′(a)`, with `act′ = 1 − h²` for tanh and `[h > 0]` for ReLU (read off the output).
    /// With ONNX's options, `act′` at the cached pre-activation (0 where the clip cut it).
    fn backward_gates(&self, pass: GateBackward<'_, T>) {
        pass.dh_prev.fill(T::zero());
        if let Some(onnx) = self.onnx {
            let rows = OnnxRows { onnx, pre: [pass.dh, pass.cache], out: &mut *pass.dgx, cache: None, backward: true };
            return simd::vectorised::<T, _>(InBlocks(rows));
        }
        let relu = self.nonlinearity == Nonlinearity::Relu;
        simd::vectorised::<T, _>(InBlocks(Rows {
            relu,
            pre: [pass.dh, pass.h_next],
            out: &mut *pass.dgx,
            backward: true,
        }));
    }
}

/// The RNN's gate pass over whole rows, a block of values at a time (see [`blocks`](super::blocks)): forward,
/// `h' = act(gx + gh)` from `pre = [gx, gh]`; backward, `∂a = ∂h ⊙ act′` from `pre = [∂h, h']`.
struct Rows<'a, T> {
    relu: bool,
    pre: [&'a [T]; 2],
    out: &'a mut [T],
    backward: bool,
}

impl<T: Real> UnitBlocks for Rows<'_, T> {
    /// One row of every value: the math is element by element.
    fn shape(&self) -> (usize, usize) {
        (1, self.out.len())
    }

    #[inline(always)]
    fn block(&mut self, _row: usize, j: usize, w: usize) {
        let (a, b) = (load(self.pre[0], j, w), load(self.pre[1], j, w));
        let (zero, one) = (T::zero(), T::one());
        let out = match (self.backward, self.relu) {
            (false, false) => lanes(|l| (a[l] + b[l]).act_tanh()),
            (false, true) => lanes(|l| (a[l] + b[l]).max(zero)),
            (true, false) => lanes(|l| a[l] * (one - b[l] * b[l])),
            (true, true) => lanes(|l| if b[l] > zero { a[l] } else { zero }),
        };
        store(self.out, j, w, &out);
    }
}

/// The RNN's gate pass with ONNX's options, a block of values at a time: forward, `h' = f(clip(a))` with
/// `a = gx + gh` from `pre = [gx, gh]`, `a` kept in the cache; backward, `∂a = ∂h ⊙ f′(a)` (0 where clipped) from
/// `pre = [∂h, a]`.
struct OnnxRows<'a, T> {
    onnx: RnnOnnx<T>,
    pre: [&'a [T]; 2],
    out: &'a mut [T],
    cache: Option<&'a mut [T]>,
    backward: bool,
}

impl<T: Real> UnitBlocks for OnnxRows<'_, T> {
    /// One row of every value: the math is element by element.
    fn shape(&self) -> (usize, usize) {
        (1, self.out.len())
    }

    #[inline(always)]
    fn block(&mut self, _row: usize, j: usize, w: usize) {
        let (a, b) = (load(self.pre[0], j, w), load(self.pre[1], j, w));
        let RnnOnnx { activation, clip } = self.onnx;
        if self.backward {
            let d = derivative_block(activation, &b, clip);
            store(self.out, j, w, &lanes(|l| a[l] * d[l]));
            return;
        }
        let pre = lanes(|l| a[l] + b[l]);
        if let Some(cache) = self.cache.as_deref_mut() {
            store(cache, j, w, &pre);
        }
        store(self.out, j, w, &activate(activation, &clip_block(&pre, clip)));
    }
}

impl Module for RnnCell<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        self.params("")
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.params_mut("")
    }
}

impl Trainable for RnnCell<f32> {
    fn parameters(&mut self) -> Vec<crate::params::Param<'_>> {
        self.params_with_grads("")
    }
}
