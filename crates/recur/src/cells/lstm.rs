//! The LSTM cell, with PyTorch's gate order (i, f, g, o) and optional projection:
//!
//! ```text
//! i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
//! g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')            or, with a projection,   h' = W_hr (o ⊙ tanh(c'))
//! ```

use std::collections::HashMap;

use rand::Rng;

use super::{
    Cell, CellCache, CellGrads, CellWeights, GateBackward, GatePass, step_backward_tensors, step_tensors, transpose,
};
use crate::error::{Error, Result};
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::params::{Module, Param, ParamMut, ParamRef, Parameter, Trainable, init_uniform};
use crate::real::Real;
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
}

impl LstmCellConfig {
    /// A cell with bias and no projection, as PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        LstmCellConfig { input_size, hidden_size, bias: true, proj_size: 0 }
    }
}

/// An LSTM cell, PyTorch's `nn.LSTMCell` (and, with `proj_size > 0`, one step of a projected `nn.LSTM`).
#[derive(Clone, Debug, PartialEq)]
pub struct LstmCell<T: Real = f32> {
    weights: CellWeights<T>,
    /// `weight_hr`, `(proj_size, hidden_size)`, when projected.
    weight_hr: Option<Parameter<T>>,
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

    /// One step: input `(B, I)` or `(I)`, state `(h, c)` of the same batch shape (zeros when `None`); returns
    /// `(h', c')`.
    pub fn forward(&self, input: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        Ok(self.forward_train(input, state)?.0)
    }

    /// [`Self::forward`] that also keeps what [`Self::backward`] needs.
    pub fn forward_train(
        &self,
        input: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<((Tensor, Tensor), CellCache)> {
        let (h, c, cache) = step_tensors(self, input, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok(((h, c.expect("an LSTM cell has a cell state")), cache))
    }

    /// Backward of one step from `∂L/∂h'` and `∂L/∂c'` (zero when `None`): accumulates the parameter gradients
    /// and returns those of the input, `h` and `c`.
    pub fn backward(&mut self, cache: &CellCache, grad_h: &Tensor, grad_c: Option<&Tensor>) -> Result<CellGrads> {
        step_backward_tensors(self, cache, grad_h, grad_c)
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
        let recurrent = if config.proj_size > 0 { config.proj_size } else { config.hidden_size };
        let weights = CellWeights::zeros(4, config.input_size, config.hidden_size, recurrent, config.bias);
        let weight_hr = (config.proj_size > 0).then(|| Parameter::zeros(config.proj_size * config.hidden_size));
        Ok(LstmCell { weights, weight_hr })
    }

    /// Projection size, or 0 without a projection.
    pub fn proj_size(&self) -> usize {
        if self.weight_hr.is_some() { self.weights.recurrent_size() } else { 0 }
    }

    /// The same cell in another precision, without gradients.
    pub fn cast<U: Real>(&self) -> LstmCell<U> {
        LstmCell { weights: self.weights.cast(), weight_hr: self.weight_hr.as_ref().map(Parameter::cast) }
    }

    fn projection_shape(&self) -> Vec<usize> {
        vec![self.weights.recurrent_size(), self.weights.hidden_size()]
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

    /// Per row: the activated gates `i, f, g, o`, then `m = o ⊙ tanh(c')` (the unprojected output).
    fn cache_width(&self) -> usize {
        5 * self.weights.hidden_size()
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
        match self.weight_hr {
            Some(_) => None,
            None => Some(LstmCell { weights: self.weights.unit_slice(units), weight_hr: None }),
        }
    }

    fn forward_gates(&self, pass: GatePass<'_, T>) {
        let hidden = self.weights.hidden_size();
        let width = 4 * hidden;
        let cache_width = 5 * hidden;
        for b in 0..pass.batch {
            let rows = b * width..(b + 1) * width;
            let c_prev = &pass.c_prev[b * hidden..(b + 1) * hidden];
            let c_next = &mut pass.c_next[b * hidden..(b + 1) * hidden];
            let cache = &mut pass.cache[b * cache_width..(b + 1) * cache_width];
            let (gates, m) = cache.split_at_mut(width);
            for ((a, &x), &h) in gates.iter_mut().zip(&pass.gx[rows.clone()]).zip(&pass.gh[rows]) {
                *a = x + h;
            }
            T::sigmoid_in_place(&mut gates[..2 * hidden]);
            T::tanh_in_place(&mut gates[2 * hidden..3 * hidden]);
            T::sigmoid_in_place(&mut gates[3 * hidden..]);
            let (i, rest) = gates.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, o) = rest.split_at(hidden);
            for ((((c, &cp), &i), &f), &g) in c_next.iter_mut().zip(c_prev).zip(i).zip(f).zip(g) {
                *c = f * cp + i * g;
            }
            m.copy_from_slice(c_next);
            T::tanh_in_place(m);
            for (m, &o) in m.iter_mut().zip(o) {
                *m *= o;
            }
        }
        match &self.weight_hr {
            None => {
                for (h, cache) in pass.h_next.chunks_exact_mut(hidden).zip(pass.cache.chunks_exact(cache_width)) {
                    h.copy_from_slice(&cache[4 * hidden..]);
                }
            }
            Some(w_hr) => {
                let proj = self.weights.recurrent_size();
                let m = MatRef::strided(&pass.cache[4 * hidden..], pass.batch, hidden, cache_width, 1);
                let w_hr_t = MatRef::new(w_hr.value(), proj, hidden).t();
                gemm(m, w_hr_t, T::zero(), MatMut::new(pass.h_next, pass.batch, proj));
            }
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
        let width = 4 * hidden;
        let cache_width = 5 * hidden;
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
        let one = T::one();
        for b in 0..pass.batch {
            let h = b * hidden..(b + 1) * hidden;
            let cache = &pass.cache[b * cache_width..(b + 1) * cache_width];
            let (i, rest) = cache.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, rest) = rest.split_at(hidden);
            let o = &rest[..hidden];
            let dgx = &mut pass.dgx[b * width..(b + 1) * width];
            let (di, rest) = dgx.split_at_mut(hidden);
            let (df, rest) = rest.split_at_mut(hidden);
            let (dg, do_) = rest.split_at_mut(hidden);
            let (dm, dc_in, c, c_prev) =
                (&dm_all[h.clone()], &pass.dc[h.clone()], &pass.c_next[h.clone()], &pass.c_prev[h.clone()]);
            let dc_prev = &mut pass.dc_prev[h];
            for j in 0..hidden {
                let tanh_c = c[j].act_tanh();
                let dct = dc_in[j] + dm[j] * o[j] * (one - tanh_c * tanh_c);
                di[j] = dct * g[j] * i[j] * (one - i[j]);
                df[j] = dct * c_prev[j] * f[j] * (one - f[j]);
                dg[j] = dct * i[j] * (one - g[j] * g[j]);
                do_[j] = dm[j] * tanh_c * o[j] * (one - o[j]);
                dc_prev[j] = dct * f[j];
            }
        }
        pass.dh_prev.fill(T::zero());
    }

    /// `∂W_hr += Σ_rows ∂h ⊗ m`.
    fn accumulate_extra_grads(&mut self, dh: &[T], cache: &[T]) {
        let hidden = self.weights.hidden_size();
        let proj = self.weights.recurrent_size();
        if let Some(w_hr) = &mut self.weight_hr {
            let rows = dh.len() / proj;
            let m = MatRef::strided(&cache[4 * hidden..], rows, hidden, 5 * hidden, 1);
            let dh = MatRef::new(dh, rows, proj);
            gemm(dh.t(), m, T::one(), MatMut::new(w_hr.grad_mut(), proj, hidden));
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
        params
    }

    fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_, T>> {
        let shape = self.projection_shape();
        let mut params = self.weights.params_mut(suffix);
        if let Some(p) = &mut self.weight_hr {
            params.push(ParamMut { name: format!("weight_hr{suffix}"), shape, data: p.value_mut() });
        }
        params
    }

    fn params_with_grads(&mut self, suffix: &str) -> Vec<Param<'_, T>> {
        let shape = self.projection_shape();
        let mut params = self.weights.params_with_grads(suffix);
        if let Some(p) = &mut self.weight_hr {
            let (value, grad) = p.value_and_grad_mut();
            params.push(Param { name: format!("weight_hr{suffix}"), shape, value, grad });
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
