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

use super::{Cell, CellWeights, GatePass, step_tensors};
use crate::error::{Error, Result};
use crate::kernels::activation::{add, sigmoid_in_place, tanh, tanh_in_place};
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::params::{Module, ParamMut, ParamRef, init_uniform};
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
        LstmCellConfig {
            input_size,
            hidden_size,
            bias: true,
            proj_size: 0,
        }
    }
}

/// An LSTM cell, PyTorch's `nn.LSTMCell` (and, with `proj_size > 0`, one step of a projected `nn.LSTM`).
#[derive(Clone, Debug, PartialEq)]
pub struct LstmCell {
    weights: CellWeights,
    /// `weight_hr`, `(proj_size, hidden_size)`, when projected.
    weight_hr: Option<Vec<f32>>,
}

impl LstmCell {
    /// A cell with PyTorch's default initialisation, drawn from `rng`.
    pub fn new(config: LstmCellConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        let hidden = config.hidden_size;
        init_uniform(cell.named_params_mut(), hidden, rng);
        Ok(cell)
    }

    /// A cell with all parameters zero (to be loaded).
    pub fn zeros(config: LstmCellConfig) -> Result<Self> {
        super::check_sizes(config.input_size, config.hidden_size)?;
        if config.proj_size >= config.hidden_size {
            return Err(Error::config(format!(
                "proj_size must be smaller than hidden_size, found proj_size={} and hidden_size={}",
                config.proj_size, config.hidden_size
            )));
        }
        let recurrent = if config.proj_size > 0 {
            config.proj_size
        } else {
            config.hidden_size
        };
        let weights = CellWeights::zeros(
            4,
            config.input_size,
            config.hidden_size,
            recurrent,
            config.bias,
        );
        let weight_hr =
            (config.proj_size > 0).then(|| vec![0.0; config.proj_size * config.hidden_size]);
        Ok(LstmCell { weights, weight_hr })
    }

    /// Projection size, or 0 without a projection.
    pub fn proj_size(&self) -> usize {
        if self.weight_hr.is_some() {
            self.weights.recurrent_size()
        } else {
            0
        }
    }

    /// One step: input `(B, I)` or `(I)`, state `(h, c)` of the same batch shape (zeros when `None`); returns
    /// `(h', c')`.
    pub fn forward(
        &self,
        input: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let (h, c) = step_tensors(self, input, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok((h, c.expect("an LSTM cell has a cell state")))
    }

    /// Loads PyTorch `state_dict` tensors (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, `weight_hr`).
    pub fn from_state_dict(
        config: LstmCellConfig,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let mut cell = Self::zeros(config)?;
        cell.load_state_dict(tensors)?;
        Ok(cell)
    }
}

impl Cell for LstmCell {
    const GATES: usize = 4;
    const HAS_CELL_STATE: bool = true;

    fn weights(&self) -> &CellWeights {
        &self.weights
    }

    fn weights_mut(&mut self) -> &mut CellWeights {
        &mut self.weights
    }

    fn output_size(&self) -> usize {
        self.weights.recurrent_size()
    }

    /// Per row: the activated gates `i, f, g, o`, then `m = o ⊙ tanh(c')` (the unprojected output).
    fn cache_width(&self) -> usize {
        5 * self.weights.hidden_size()
    }

    fn forward_gates(&self, pass: GatePass<'_>) {
        let hidden = self.weights.hidden_size();
        let width = 4 * hidden;
        let cache_width = 5 * hidden;
        for b in 0..pass.batch {
            let rows = b * width..(b + 1) * width;
            let c_prev = &pass.c_prev[b * hidden..(b + 1) * hidden];
            let c_next = &mut pass.c_next[b * hidden..(b + 1) * hidden];
            let cache = &mut pass.cache[b * cache_width..(b + 1) * cache_width];
            let (gates, m) = cache.split_at_mut(width);
            add(&pass.gx[rows.clone()], &pass.gh[rows], gates);
            sigmoid_in_place(&mut gates[..2 * hidden]);
            tanh_in_place(&mut gates[2 * hidden..3 * hidden]);
            sigmoid_in_place(&mut gates[3 * hidden..]);
            let (i, rest) = gates.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, o) = rest.split_at(hidden);
            for ((((c, &cp), &i), &f), &g) in c_next.iter_mut().zip(c_prev).zip(i).zip(f).zip(g) {
                *c = f * cp + i * g;
            }
            for ((m, &c), &o) in m.iter_mut().zip(c_next.iter()).zip(o) {
                *m = o * tanh(c);
            }
        }
        match &self.weight_hr {
            None => {
                for (h, cache) in pass
                    .h_next
                    .chunks_exact_mut(hidden)
                    .zip(pass.cache.chunks_exact(cache_width))
                {
                    h.copy_from_slice(&cache[4 * hidden..]);
                }
            }
            Some(w_hr) => {
                let proj = self.weights.recurrent_size();
                let m = MatRef::strided(
                    &pass.cache[4 * hidden..],
                    pass.batch,
                    hidden,
                    cache_width,
                    1,
                );
                let w_hr_t = MatRef::new(w_hr, proj, hidden).t();
                gemm(m, w_hr_t, 0.0, MatMut::new(pass.h_next, pass.batch, proj));
            }
        }
    }

    fn params(&self, suffix: &str) -> Vec<ParamRef<'_>> {
        let mut params = self.weights.params(suffix);
        if let Some(data) = &self.weight_hr {
            let shape = vec![self.weights.recurrent_size(), self.weights.hidden_size()];
            params.push(ParamRef {
                name: format!("weight_hr{suffix}"),
                shape,
                data,
            });
        }
        params
    }

    fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_>> {
        let shape = vec![self.weights.recurrent_size(), self.weights.hidden_size()];
        let mut params = self.weights.params_mut(suffix);
        if let Some(data) = &mut self.weight_hr {
            params.push(ParamMut {
                name: format!("weight_hr{suffix}"),
                shape,
                data,
            });
        }
        params
    }
}

impl Module for LstmCell {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        self.params("")
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.params_mut("")
    }
}
