//! The LSTM cell, with PyTorch's gate order (i, f, g, o) and optional projection:
//!
//! ```text
//! i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
//! g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')            or, with a projection,   h' = W_hr (o ⊙ tanh(c'))
//! ```
//!
//! ONNX's options (other activations, `clip`, peepholes, coupled input and forget gates) run the passes of
//! [`lstm_onnx`](super::lstm_onnx).

use std::collections::HashMap;

use rand::Rng;

use super::activation::{Activation, check_clip};
use super::blocks::{InBlocks, UnitBlocks, lanes, load, store};
use super::lstm_onnx::{self, LstmOnnx, M_SLOT};
use crate::driver::{Cell, CellWeights, ExtraGradInputs, GateBackward, GatePass, transpose};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::kernels::simd;
use crate::params::{Module, Param, ParamMut, ParamRef, Parameter, Trainable, init_uniform};
use crate::tensor::Tensor;

/// Configuration of an [`LstmCell`], as the arguments of PyTorch's `nn.LSTMCell` plus `nn.LSTM`'s `proj_size`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LstmCellConfig {
    /// Size of the input `x`.
    pub input_size: usize,
    /// Size of the cell state `c` (and of `h` without a projection).
    pub hidden_size: usize,
    /// Whether the cell has `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Size of the projected `h`, or 0 for no projection. Must be smaller than `hidden_size`.
    pub proj_size: usize,
    /// ONNX's activations `f` (the gates), `g` (the candidate) and `h` (the output); PyTorch's are
    /// [`LSTM_ACTIVATIONS`].
    pub activations: [Activation; 3],
    /// ONNX's `clip`: every gate's pre-activation is clamped to `[−clip, clip]` before its activation, when set.
    pub clip: Option<f32>,
    /// Whether the gates also see the cell state through peepholes `weight_peephole = (p_i, p_f, p_o)` (ONNX's
    /// `P`): `a_i += p_i ⊙ c`, `a_f += p_f ⊙ c`, `a_o += p_o ⊙ c'`.
    pub peepholes: bool,
    /// ONNX's `input_forget`: the forget gate is coupled to the input gate, `f = 1 − i`.
    pub input_forget: bool,
}

/// PyTorch's LSTM activations: the sigmoid for the gates, tanh for the candidate and the output.
pub const LSTM_ACTIVATIONS: [Activation; 3] = [Activation::Sigmoid, Activation::Tanh, Activation::Tanh];

impl LstmCellConfig {
    /// A cell with bias and no projection, as PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        LstmCellConfig {
            input_size,
            hidden_size,
            bias: true,
            proj_size: 0,
            activations: LSTM_ACTIVATIONS,
            clip: None,
            peepholes: false,
            input_forget: false,
        }
    }
}

/// An LSTM cell, PyTorch's `nn.LSTMCell` (and, with `proj_size > 0`, one step of a projected `nn.LSTM`).
#[derive(Clone, Debug, PartialEq)]
pub struct LstmCell<T: Real = f32> {
    weights: CellWeights<T>,
    /// `weight_hr`, `(proj_size, hidden_size)`, when projected.
    weight_hr: Option<Parameter<T>>,
    /// `weight_peephole`, `(3, hidden_size)` in the order i, f, o, with peepholes.
    peephole: Option<Parameter<T>>,
    /// ONNX's options, when any differs from PyTorch's (or the cell has peepholes).
    onnx: Option<LstmOnnx<T>>,
}

impl LstmCell<f32> {
    /// A cell with all parameters zero (to be loaded).
    pub fn zeros(config: LstmCellConfig) -> Result<Self> {
        Self::zeros_in(config)
    }

    /// A cell with PyTorch's default initialisation, drawn from `rng`.
    pub fn new(config: LstmCellConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        let hidden = config.hidden_size;
        init_uniform(cell.named_params_mut(), hidden, rng);
        Ok(cell)
    }

    /// Loads PyTorch `state_dict` tensors (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, `weight_hr`).
    pub fn from_state_dict(config: LstmCellConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.load_state_dict(tensors)?;
        Ok(cell)
    }
}

impl<T: Real> LstmCell<T> {
    /// A cell with all parameters zero, in any precision (`f64` for gradient checks).
    pub fn zeros_in(config: LstmCellConfig) -> Result<Self> {
        super::check_sizes(config.input_size, config.hidden_size)?;
        if config.proj_size >= config.hidden_size {
            return Err(Error::config(format!(
                "proj_size must be smaller than hidden_size, found proj_size={} and hidden_size={}",
                config.proj_size, config.hidden_size
            )));
        }
        check_clip(config.clip)?;
        for activation in config.activations {
            activation.validate()?;
        }
        let recurrent = if config.proj_size > 0 { config.proj_size } else { config.hidden_size };
        let weights = CellWeights::zeros(4, config.input_size, config.hidden_size, recurrent, config.bias);
        let weight_hr = (config.proj_size > 0).then(|| Parameter::zeros(config.proj_size * config.hidden_size));
        let peephole = config.peepholes.then(|| Parameter::zeros(3 * config.hidden_size));
        let pytorch = config.activations == LSTM_ACTIVATIONS
            && config.clip.is_none()
            && !config.peepholes
            && !config.input_forget;
        let onnx = (!pytorch).then(|| LstmOnnx {
            activations: config.activations,
            clip: config.clip.map(<T as Real>::from_f32),
            input_forget: config.input_forget,
        });
        Ok(LstmCell { weights, weight_hr, peephole, onnx })
    }

    /// The cell's configuration.
    pub fn config(&self) -> LstmCellConfig {
        let (input_size, hidden_size) = (self.weights.input_size(), self.weights.hidden_size());
        let mut config = LstmCellConfig {
            bias: self.weights.has_bias(),
            proj_size: self.proj_size(),
            peepholes: self.peephole.is_some(),
            ..LstmCellConfig::new(input_size, hidden_size)
        };
        if let Some(onnx) = &self.onnx {
            config.activations = onnx.activations;
            config.clip = onnx.clip.map(<T as Real>::to_f32);
            config.input_forget = onnx.input_forget;
        }
        config
    }

    /// Projection size, or 0 without a projection.
    pub fn proj_size(&self) -> usize {
        if self.weight_hr.is_some() { self.weights.recurrent_size() } else { 0 }
    }

    /// The same cell in another precision, without gradients.
    pub fn cast<U: Real>(&self) -> LstmCell<U> {
        let onnx = self.onnx.map(|o| LstmOnnx {
            activations: o.activations,
            clip: o.clip.map(|c| U::from_f64_lossy(Real::to_f64(c))),
            input_forget: o.input_forget,
        });
        LstmCell {
            weights: self.weights.cast(),
            weight_hr: self.weight_hr.as_ref().map(Parameter::cast),
            peephole: self.peephole.as_ref().map(Parameter::cast),
            onnx,
        }
    }

    fn projection_shape(&self) -> Vec<usize> {
        vec![self.weights.recurrent_size(), self.weights.hidden_size()]
    }

    fn peephole_shape(&self) -> Vec<usize> {
        vec![3, self.weights.hidden_size()]
    }
}

impl<T: Real> Cell for LstmCell<T> {
    type Real = T;
    const GATES: usize = 4;
    const HAS_CELL_STATE: bool = true;

    fn weights(&self) -> &CellWeights<T> {
        &self.weights
    }

    fn weights_mut(&mut self) -> &mut CellWeights<T> {
        &mut self.weights
    }

    fn output_size(&self) -> usize {
        self.weights.recurrent_size()
    }

    /// Per row: the activated gates `i, f, g, o`, then `m = o ⊙ tanh(c')` (the unprojected output); with ONNX's
    /// options, the slots of [`lstm_onnx::cache_slots`].
    fn cache_width(&self) -> usize {
        let slots = if self.onnx.is_some() { lstm_onnx::cache_slots(self.peephole.is_some()) } else { 5 };
        slots * self.weights.hidden_size()
    }

    /// Without a projection, none: `h' = m` is written straight to `h_next`. With one, the cache holds `m` for the
    /// projection.
    fn inference_cache_width(&self) -> usize {
        if self.weight_hr.is_some() { self.cache_width() } else { 0 }
    }

    /// With a projection: `∂L/∂m` per row.
    fn scratch_width(&self) -> usize {
        if self.weight_hr.is_some() { self.weights.hidden_size() } else { 0 }
    }

    /// With a projection: `W_hrᵀ`, `(H, P)`.
    fn prepared_len(&self) -> usize {
        self.weight_hr.as_ref().map_or(0, |w| w.value().len())
    }

    fn prepare_backward(&self, prepared: &mut [T]) {
        if let Some(w_hr) = &self.weight_hr {
            let (proj, hidden) = (self.weights.recurrent_size(), self.weights.hidden_size());
            prepared.copy_from_slice(&transpose(w_hr.value(), proj, hidden));
        }
    }

    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self> {
        if self.weight_hr.is_some() {
            return None;
        }
        let hidden = self.weights.hidden_size();
        let peephole = self.peephole.as_ref().map(|p| {
            let values = p.value();
            Parameter::from_values((0..3).flat_map(|g| units.clone().map(move |u| values[g * hidden + u])).collect())
        });
        Some(LstmCell { weights: self.weights.unit_slice(units), weight_hr: None, peephole, onnx: self.onnx })
    }

    fn forward_gates(&self, pass: GatePass<'_, T>) {
        let hidden = self.weights.hidden_size();
        let project = self.weight_hr.is_some();
        let batch = pass.batch;
        if let Some(onnx) = &self.onnx {
            let peephole = self.peephole.as_ref().map(Parameter::value);
            onnx.forward(
                hidden,
                peephole,
                GatePass { h_next: &mut *pass.h_next, cache: &mut *pass.cache, ..pass },
                project,
            );
        } else {
            let h_next = if project { None } else { Some(&mut *pass.h_next) };
            // An inference pass without a projection keeps nothing (see `inference_cache_width`).
            let cache = if pass.cache.is_empty() { None } else { Some(&mut *pass.cache) };
            simd::vectorised::<T, _>(InBlocks(ForwardRows {
                hidden,
                gx: pass.gx,
                gh: pass.gh,
                c_prev: pass.c_prev,
                c_next: &mut *pass.c_next,
                cache,
                h_next,
            }));
        }
        if let Some(w_hr) = &self.weight_hr {
            let proj = self.weights.recurrent_size();
            let w_hr_t = MatRef::new(w_hr.value(), proj, hidden).t();
            let m = cached_m(pass.cache, batch, hidden, self.cache_width());
            gemm(m, w_hr_t, T::zero(), MatMut::new(pass.h_next, batch, proj));
        }
    }

    /// With `m = o ⊙ tanh c'` and `∂L/∂m = ∂L/∂h` (or `W_hrᵀ ∂L/∂h` when projected):
    ///
    /// ```text
    /// ∂c' = ∂L/∂c' + ∂m ⊙ o ⊙ (1 − tanh² c')       ∂c = ∂c' ⊙ f
    /// ∂i = ∂c' ⊙ g ⊙ i(1−i)    ∂f = ∂c' ⊙ c ⊙ f(1−f)    ∂g = ∂c' ⊙ i ⊙ (1−g²)    ∂o = ∂m ⊙ tanh c' ⊙ o(1−o)
    /// ```
    fn backward_gates(&self, pass: GateBackward<'_, T>) {
        let hidden = self.weights.hidden_size();
        let dm_all: &[T] = match &self.weight_hr {
            None => pass.dh,
            Some(_) => {
                let proj = self.weights.recurrent_size();
                let dh = MatRef::new(pass.dh, pass.batch, proj);
                let w = MatRef::new(pass.prepared, hidden, proj).t();
                gemm(dh, w, T::zero(), MatMut::new(&mut *pass.scratch, pass.batch, hidden));
                pass.scratch
            }
        };
        pass.dh_prev.fill(T::zero());
        if let Some(onnx) = &self.onnx {
            let peephole = self.peephole.as_ref().map(Parameter::value);
            let pass = GateBackward { dh: &[], scratch: &mut [], dh_prev: &mut [], ..pass };
            return onnx.backward(hidden, peephole, pass, dm_all);
        }
        simd::vectorised::<T, _>(InBlocks(BackwardRows {
            hidden,
            cache: pass.cache,
            dm: dm_all,
            dc: pass.dc,
            c_next: pass.c_next,
            c_prev: pass.c_prev,
            dgx: &mut *pass.dgx,
            dc_prev: &mut *pass.dc_prev,
        }));
    }

    /// `∂W_hr += Σ_rows ∂h ⊗ m`, and the peepholes' gradients (see
    /// [`lstm_onnx::accumulate_peephole_grads`]).
    fn accumulate_extra_grads(&mut self, inputs: ExtraGradInputs<'_, T>) {
        let hidden = self.weights.hidden_size();
        let proj = self.weights.recurrent_size();
        let width = self.cache_width();
        if let Some(w_hr) = &mut self.weight_hr {
            let rows = inputs.dh.len() / proj;
            let m = cached_m(inputs.cache, rows, hidden, width);
            let dh = MatRef::new(inputs.dh, rows, proj);
            gemm(dh.t(), m, T::one(), MatMut::new(w_hr.grad_mut(), proj, hidden));
        }
        if let Some(p) = &mut self.peephole {
            lstm_onnx::accumulate_peephole_grads(hidden, p.grad_mut(), &inputs);
        }
    }

    fn params(&self, suffix: &str) -> Vec<ParamRef<'_, T>> {
        let mut params = self.weights.params(suffix);
        if let Some(p) = &self.weight_hr {
            params.push(ParamRef {
                name: format!("weight_hr{suffix}"),
                shape: self.projection_shape(),
                data: p.value(),
            });
        }
        if let Some(p) = &self.peephole {
            params.push(ParamRef {
                name: format!("weight_peephole{suffix}"),
                shape: self.peephole_shape(),
                data: p.value(),
            });
        }
        params
    }

    fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_, T>> {
        let (shape, peephole_shape) = (self.projection_shape(), self.peephole_shape());
        let mut params = self.weights.params_mut(suffix);
        if let Some(p) = &mut self.weight_hr {
            params.push(ParamMut { name: format!("weight_hr{suffix}"), shape, data: p.value_mut() });
        }
        if let Some(p) = &mut self.peephole {
            params.push(ParamMut {
                name: format!("weight_peephole{suffix}"),
                shape: peephole_shape,
                data: p.value_mut(),
            });
        }
        params
    }

    fn params_with_grads(&mut self, suffix: &str) -> Vec<Param<'_, T>> {
        let (shape, peephole_shape) = (self.projection_shape(), self.peephole_shape());
        let mut params = self.weights.params_with_grads(suffix);
        if let Some(p) = &mut self.weight_hr {
            let (value, grad) = p.value_and_grad_mut();
            params.push(Param { name: format!("weight_hr{suffix}"), shape, value, grad });
        }
        if let Some(p) = &mut self.peephole {
            let (value, grad) = p.value_and_grad_mut();
            params.push(Param { name: format!("weight_peephole{suffix}"), shape: peephole_shape, value, grad });
        }
        params
    }
}

impl Module for LstmCell<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        self.params("")
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.params_mut("")
    }
}

impl Trainable for LstmCell<f32> {
    fn parameters(&mut self) -> Vec<crate::params::Param<'_>> {
        self.params_with_grads("")
    }
}

/// `m` of `rows` rows in a cache of `width` values a row.
fn cached_m<T>(cache: &[T], rows: usize, hidden: usize, width: usize) -> MatRef<'_, T> {
    MatRef::strided(&cache[M_SLOT * hidden..], rows, hidden, width, 1)
}

/// The LSTM's forward gate pass over a batch of rows, in one pass over each row's units: per unit, its four
/// pre-activations are summed, activated and combined into `c'` and `m = o ⊙ tanh(c')` while in registers.
/// Gate by gate over whole rows, the same math made nine passes over each row's values; in one pass the 2-layer
/// `B32 H256` forward ran 4–10% faster and its training 8% (alternating runs).
struct ForwardRows<'a, T> {
    hidden: usize,
    gx: &'a [T],
    gh: &'a [T],
    c_prev: &'a [T],
    c_next: &'a mut [T],
    /// Per row: the activated gates `i, f, g, o`, then `m` (for a backward, or a projection).
    cache: Option<&'a mut [T]>,
    /// Receives `m`, without a projection.
    h_next: Option<&'a mut [T]>,
}

impl<T: Real> UnitBlocks for ForwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.c_next.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let n = self.hidden;
        // Where the row starts in the buffers of `4n`, `n` and `5n` values a row.
        let (g4, u, k) = (row * 4 * n + j, row * n + j, row * 5 * n + j);
        let (xi, xf, xg, xo) = (
            load(self.gx, g4, w),
            load(self.gx, n + g4, w),
            load(self.gx, 2 * n + g4, w),
            load(self.gx, 3 * n + g4, w),
        );
        let (hi, hf, hg, ho) = (
            load(self.gh, g4, w),
            load(self.gh, n + g4, w),
            load(self.gh, 2 * n + g4, w),
            load(self.gh, 3 * n + g4, w),
        );
        let c_prev = load(self.c_prev, u, w);
        // (Only closures called once: one called several times stays a call, outside the vector build.)
        let i = lanes(|l| (xi[l] + hi[l]).sigmoid());
        let f = lanes(|l| (xf[l] + hf[l]).sigmoid());
        let g = lanes(|l| (xg[l] + hg[l]).act_tanh());
        let o = lanes(|l| (xo[l] + ho[l]).sigmoid());
        let c = lanes(|l| f[l] * c_prev[l] + i[l] * g[l]);
        let m = lanes(|l| c[l].act_tanh() * o[l]);
        if let Some(cache) = self.cache.as_deref_mut() {
            for (gate, v) in [i, f, g, o, m].iter().enumerate() {
                store(cache, gate * n + k, w, v);
            }
        }
        if let Some(h) = self.h_next.as_deref_mut() {
            store(h, u, w, &m);
        }
        store(self.c_next, u, w, &c);
    }
}

/// The LSTM's backward gate pass over a batch of rows, a block of units at a time (see [`blocks`](super::blocks)).
struct BackwardRows<'a, T> {
    hidden: usize,
    /// The forward's cache: per row the activated gates `i, f, g, o`, then `m`.
    cache: &'a [T],
    /// `∂L/∂m`, `∂L/∂c'`, `c'` and `c`, `n` values a row.
    dm: &'a [T],
    dc: &'a [T],
    c_next: &'a [T],
    c_prev: &'a [T],
    /// Receive `∂L/∂(i, f, g, o)` pre-activation, `4n` a row, and `∂L/∂c`.
    dgx: &'a mut [T],
    dc_prev: &'a mut [T],
}

impl<T: Real> UnitBlocks for BackwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.dc_prev.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let (n, one) = (self.hidden, T::one());
        // Where the row starts in the buffers of `5n`, `n` and `4n` values a row.
        let (k, u, g4) = (row * 5 * n + j, row * n + j, row * 4 * n + j);
        let (i, f) = (load(self.cache, k, w), load(self.cache, n + k, w));
        let (g, o) = (load(self.cache, 2 * n + k, w), load(self.cache, 3 * n + k, w));
        let (dm, dc, c, c_prev) =
            (load(self.dm, u, w), load(self.dc, u, w), load(self.c_next, u, w), load(self.c_prev, u, w));
        let tanh_c = lanes(|l| c[l].act_tanh());
        let dct = lanes(|l| dc[l] + dm[l] * o[l] * (one - tanh_c[l] * tanh_c[l]));
        store(self.dgx, g4, w, &lanes(|l| dct[l] * g[l] * i[l] * (one - i[l])));
        store(self.dgx, n + g4, w, &lanes(|l| dct[l] * c_prev[l] * f[l] * (one - f[l])));
        store(self.dgx, 2 * n + g4, w, &lanes(|l| dct[l] * i[l] * (one - g[l] * g[l])));
        store(self.dgx, 3 * n + g4, w, &lanes(|l| dm[l] * tanh_c[l] * o[l] * (one - o[l])));
        store(self.dc_prev, u, w, &lanes(|l| dct[l] * f[l]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{SimdLevel, Vectorised, detected};

    /// `(cache, c', h')` of [`ForwardRows`] over `batch` rows of `n` units, through `run` (a SIMD path), keeping
    /// the cache or (`keep` false, as inference does) not.
    fn forward_rows(
        batch: usize,
        n: usize,
        keep: bool,
        run: impl Fn(ForwardRows<'_, f32>),
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let value = |i: usize, scale: f32| (i as f32 * 0.731).sin() * scale;
        let gx: Vec<f32> = (0..batch * 4 * n).map(|i| value(i, 6.0)).collect();
        let gh: Vec<f32> = (0..batch * 4 * n).map(|i| value(i + 7, 3.0)).collect();
        let c_prev: Vec<f32> = (0..batch * n).map(|i| value(i + 3, 2.0)).collect();
        let (mut c_next, mut cache, mut h) =
            (vec![f32::NAN; batch * n], vec![f32::NAN; batch * 5 * n], vec![0.0; batch * n]);
        let h_next = Some(&mut h[..]);
        run(ForwardRows {
            hidden: n,
            gx: &gx,
            gh: &gh,
            c_prev: &c_prev,
            c_next: &mut c_next,
            cache: keep.then_some(&mut cache[..]),
            h_next,
        });
        // The formulas, in f64.
        for b in 0..batch {
            for j in 0..n {
                let pre = |gate: usize| (gx[b * 4 * n + gate * n + j] + gh[b * 4 * n + gate * n + j]) as f64;
                let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
                let (i, f, g, o) = (sigmoid(pre(0)), sigmoid(pre(1)), pre(2).tanh(), sigmoid(pre(3)));
                let c = f * c_prev[b * n + j] as f64 + i * g;
                let close = |got: f32, want: f64, what: &str| {
                    assert!((got as f64 - want).abs() < 1e-6, "row {b}, unit {j}, {what}: {got} vs {want}")
                };
                close(c_next[b * n + j], c, "c'");
                close(h[b * n + j], o * c.tanh(), "h'");
                if keep {
                    close(cache[b * 5 * n + j], i, "i");
                    close(cache[b * 5 * n + 3 * n + j], o, "o");
                } else {
                    assert!(cache.iter().all(|v| v.is_nan()), "a pass without a cache wrote to it");
                }
            }
        }
        (cache, c_next, h)
    }

    /// One SIMD path's way of running [`ForwardRows`].
    type RowsPath = fn(ForwardRows<'_, f32>);

    #[test]
    fn forward_rows_match_the_formulas_with_the_same_bits_on_every_path() {
        // 37 units: two whole blocks and a partial one.
        for (batch, n) in [(3, 37), (1, 16), (2, 5)] {
            let portable = forward_rows(batch, n, true, |rows| InBlocks(rows).run());
            // Without a cache, the same state.
            let lean = forward_rows(batch, n, false, |rows| InBlocks(rows).run());
            assert_eq!((&lean.1, &lean.2), (&portable.1, &portable.2), "{batch}×{n}: without a cache");
            let mut paths: Vec<(&str, RowsPath)> = Vec::new();
            #[cfg(target_arch = "x86_64")]
            {
                if detected() >= SimdLevel::Avx2 {
                    // SAFETY: added only when the CPU has AVX2 and FMA (the Avx2 level has both).
                    paths.push(("avx2", |rows| unsafe { crate::kernels::simd::run_avx2(InBlocks(rows)) }));
                }
                if detected() >= SimdLevel::Avx512 {
                    // SAFETY: added only when the CPU has AVX-512F and FMA (the Avx512 level has both).
                    paths.push(("avx512", |rows| unsafe { crate::kernels::simd::run_avx512(InBlocks(rows)) }));
                }
            }
            for (name, path) in paths {
                let got = forward_rows(batch, n, true, path);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got.0), bits(&portable.0), "{name}, {batch}×{n}: cache");
                assert_eq!(bits(&got.1), bits(&portable.1), "{name}, {batch}×{n}: c'");
                assert_eq!(bits(&got.2), bits(&portable.2), "{name}, {batch}×{n}: h'");
            }
        }
    }
}
