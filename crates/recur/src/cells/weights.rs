//! The input and recurrent weights every cell has, with PyTorch's names and shapes.

use rand::Rng;

use super::affine_rows;
use crate::kernels::gemm::MatRef;
use crate::params::{ParamMut, ParamRef, init_uniform};

/// `weight_ih (G·H, I)`, `weight_hh (G·H, H_out)` and the optional `bias_ih`, `bias_hh (G·H)` of one cell, where
/// `G` is the number of gates, `H` the hidden size and `H_out` the size of the fed-back state.
#[derive(Clone, Debug, PartialEq)]
pub struct CellWeights {
    input_size: usize,
    hidden_size: usize,
    recurrent_size: usize,
    gates: usize,
    weight_ih: Vec<f32>,
    weight_hh: Vec<f32>,
    bias_ih: Option<Vec<f32>>,
    bias_hh: Option<Vec<f32>>,
}

impl CellWeights {
    /// Zero weights for a cell with `gates` gates.
    pub fn zeros(
        gates: usize,
        input_size: usize,
        hidden_size: usize,
        recurrent_size: usize,
        bias: bool,
    ) -> Self {
        let rows = gates * hidden_size;
        CellWeights {
            input_size,
            hidden_size,
            recurrent_size,
            gates,
            weight_ih: vec![0.0; rows * input_size],
            weight_hh: vec![0.0; rows * recurrent_size],
            bias_ih: bias.then(|| vec![0.0; rows]),
            bias_hh: bias.then(|| vec![0.0; rows]),
        }
    }

    /// Size of the input `x_t`.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Hidden size `H` (rows per gate).
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Size of the state fed back through `weight_hh` (`H`, or the projection size).
    pub fn recurrent_size(&self) -> usize {
        self.recurrent_size
    }

    /// Whether the cell has biases.
    pub fn has_bias(&self) -> bool {
        self.bias_ih.is_some()
    }

    /// `weight_ih`, row-major `(G·H, I)`.
    pub fn weight_ih(&self) -> &[f32] {
        &self.weight_ih
    }

    /// `weight_hh`, row-major `(G·H, H_out)`.
    pub fn weight_hh(&self) -> &[f32] {
        &self.weight_hh
    }

    /// `gx ← x Wᵢₕᵀ + b_ih` for `rows` rows of `x` (`rows × I`).
    pub(crate) fn input_projection(&self, x: &[f32], rows: usize, gx: &mut [f32]) {
        let width = self.gates * self.hidden_size;
        affine_rows(
            MatRef::new(x, rows, self.input_size),
            &self.weight_ih,
            width,
            self.bias_ih.as_deref(),
            gx,
        );
    }

    /// `gh ← h Wₕₕᵀ + b_hh` for `rows` rows of `h` (`rows × H_out`).
    pub(crate) fn recurrent_projection(&self, h: &[f32], rows: usize, gh: &mut [f32]) {
        let width = self.gates * self.hidden_size;
        let h = MatRef::new(h, rows, self.recurrent_size);
        affine_rows(h, &self.weight_hh, width, self.bias_hh.as_deref(), gh);
    }

    /// The parameters, named as PyTorch names them, each followed by `suffix`.
    pub(crate) fn params(&self, suffix: &str) -> Vec<ParamRef<'_>> {
        let rows = self.gates * self.hidden_size;
        let mut out = vec![
            ParamRef {
                name: format!("weight_ih{suffix}"),
                shape: vec![rows, self.input_size],
                data: &self.weight_ih,
            },
            ParamRef {
                name: format!("weight_hh{suffix}"),
                shape: vec![rows, self.recurrent_size],
                data: &self.weight_hh,
            },
        ];
        if let (Some(bi), Some(bh)) = (&self.bias_ih, &self.bias_hh) {
            out.push(ParamRef {
                name: format!("bias_ih{suffix}"),
                shape: vec![rows],
                data: bi,
            });
            out.push(ParamRef {
                name: format!("bias_hh{suffix}"),
                shape: vec![rows],
                data: bh,
            });
        }
        out
    }

    /// The parameters, mutably.
    pub(crate) fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_>> {
        let rows = self.gates * self.hidden_size;
        let mut out = vec![
            ParamMut {
                name: format!("weight_ih{suffix}"),
                shape: vec![rows, self.input_size],
                data: &mut self.weight_ih,
            },
            ParamMut {
                name: format!("weight_hh{suffix}"),
                shape: vec![rows, self.recurrent_size],
                data: &mut self.weight_hh,
            },
        ];
        if let (Some(bi), Some(bh)) = (&mut self.bias_ih, &mut self.bias_hh) {
            out.push(ParamMut {
                name: format!("bias_ih{suffix}"),
                shape: vec![rows],
                data: bi,
            });
            out.push(ParamMut {
                name: format!("bias_hh{suffix}"),
                shape: vec![rows],
                data: bh,
            });
        }
        out
    }

    /// PyTorch's default initialisation (uniform in `±1/√H`).
    pub(crate) fn init(&mut self, rng: &mut impl Rng) {
        let hidden = self.hidden_size;
        init_uniform(self.params_mut(""), hidden, rng);
    }
}
