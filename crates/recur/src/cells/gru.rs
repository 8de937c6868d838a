//! The GRU cell, with PyTorch's gate order (r, z, n) and its placement of the reset gate (after the product):
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```

use std::collections::HashMap;

use rand::Rng;

use super::{Cell, CellCache, CellGrads, CellWeights, GateBackward, GatePass, step_backward_tensors, step_tensors};
use crate::error::Result;
use crate::params::{Module, ParamMut, ParamRef, Trainable};
use crate::real::Real;
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
}

impl GruCellConfig {
    /// A cell with bias, as PyTorch's default.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        GruCellConfig { input_size, hidden_size, bias: true }
    }
}

/// A GRU cell, PyTorch's `nn.GRUCell`.
#[derive(Clone, Debug, PartialEq)]
pub struct GruCell<T: Real = f32> {
    weights: CellWeights<T>,
}

impl<T: Real> GruCell<T> {
    /// A cell with all parameters zero, in any precision (`f64` for gradient checks).
    pub fn zeros_in(config: GruCellConfig) -> Result<Self> {
        super::check_sizes(config.input_size, config.hidden_size)?;
        let (i, h) = (config.input_size, config.hidden_size);
        Ok(GruCell { weights: CellWeights::zeros(3, i, h, h, config.bias) })
    }

    /// The same cell in another precision, without gradients.
    pub fn cast<U: Real>(&self) -> GruCell<U> {
        GruCell { weights: self.weights.cast() }
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

    /// One step: input `(B, I)` or `(I)`, `h` of the same batch shape (zeros when `None`); returns `h'`.
    pub fn forward(&self, input: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(step_tensors(self, input, h, None)?.0)
    }

    /// [`Self::forward`] that also keeps what [`Self::backward`] needs.
    pub fn forward_train(&self, input: &Tensor, h: Option<&Tensor>) -> Result<(Tensor, CellCache)> {
        let (h, _, cache) = step_tensors(self, input, h, None)?;
        Ok((h, cache))
    }

    /// Backward of one step from `∂L/∂h'`: accumulates the parameter gradients and returns those of the input
    /// and of `h`.
    pub fn backward(&mut self, cache: &CellCache, grad_h: &Tensor) -> Result<CellGrads> {
        step_backward_tensors(self, cache, grad_h, None)
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

    /// Per row: the activated gates `r, z, n`, then `W_hn h + b_hn` (which the reset gate multiplied).
    fn cache_width(&self) -> usize {
        4 * self.weights.hidden_size()
    }

    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self> {
        Some(GruCell { weights: self.weights.unit_slice(units) })
    }

    fn forward_gates(&self, pass: GatePass<'_, T>) {
        let hidden = self.weights.hidden_size();
        let width = 3 * hidden;
        let cache_width = 4 * hidden;
        for b in 0..pass.batch {
            let gx = &pass.gx[b * width..(b + 1) * width];
            let gh = &pass.gh[b * width..(b + 1) * width];
            let h_prev = &pass.h_prev[b * hidden..(b + 1) * hidden];
            let h_next = &mut pass.h_next[b * hidden..(b + 1) * hidden];
            let cache = &mut pass.cache[b * cache_width..(b + 1) * cache_width];
            let (rz, rest) = cache.split_at_mut(2 * hidden);
            let (n, hn) = rest.split_at_mut(hidden);
            for ((a, &x), &h) in rz.iter_mut().zip(&gx[..2 * hidden]).zip(&gh[..2 * hidden]) {
                *a = x + h;
            }
            T::sigmoid_in_place(rz);
            hn.copy_from_slice(&gh[2 * hidden..]);
            let (r, z) = rz.split_at(hidden);
            for (((n, &x), &r), &hn) in n.iter_mut().zip(&gx[2 * hidden..]).zip(r).zip(hn.iter()) {
                *n = x + r * hn;
            }
            T::tanh_in_place(n);
            for (((h, &n), &z), &hp) in h_next.iter_mut().zip(n.iter()).zip(z).zip(h_prev) {
                *h = (T::one() - z) * n + z * hp;
            }
        }
    }

    /// With `a_n = gx_n + r ⊙ hn` (`hn = W_hn h + b_hn`):
    ///
    /// ```text
    /// ∂n = ∂h' ⊙ (1 − z)    ∂z = ∂h' ⊙ (h − n)    ∂h (direct) = ∂h' ⊙ z
    /// ∂a_n = ∂n ⊙ (1 − n²)  →  ∂gx_n = ∂a_n,  ∂gh_n = ∂a_n ⊙ r
    /// ∂r = ∂a_n ⊙ hn  →  ∂a_r = ∂r ⊙ r(1−r);   ∂a_z = ∂z ⊙ z(1−z)   (the same for gx and gh)
    /// ```
    fn backward_gates(&self, pass: GateBackward<'_, T>) {
        let hidden = self.weights.hidden_size();
        let width = 3 * hidden;
        let one = T::one();
        for b in 0..pass.batch {
            let h = b * hidden..(b + 1) * hidden;
            let cache = &pass.cache[b * 4 * hidden..(b + 1) * 4 * hidden];
            let (r, rest) = cache.split_at(hidden);
            let (z, rest) = rest.split_at(hidden);
            let (n, hn) = rest.split_at(hidden);
            let (dh, h_prev) = (&pass.dh[h.clone()], &pass.h_prev[h.clone()]);
            let dh_prev = &mut pass.dh_prev[h];
            let dgx = &mut pass.dgx[b * width..(b + 1) * width];
            let dgh = &mut pass.dgh[b * width..(b + 1) * width];
            for j in 0..hidden {
                let dn = dh[j] * (one - z[j]);
                let dz = dh[j] * (h_prev[j] - n[j]);
                dh_prev[j] = dh[j] * z[j];
                let dan = dn * (one - n[j] * n[j]);
                let dar = dan * hn[j] * r[j] * (one - r[j]);
                let daz = dz * z[j] * (one - z[j]);
                dgx[j] = dar;
                dgx[hidden + j] = daz;
                dgx[2 * hidden + j] = dan;
                dgh[j] = dar;
                dgh[hidden + j] = daz;
                dgh[2 * hidden + j] = dan * r[j];
            }
        }
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
