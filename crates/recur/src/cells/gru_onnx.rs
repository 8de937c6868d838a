//! The GRU's gate passes with ONNX's options: any activations `f` (for `r`, `z`) and `g` (for `n`), `clip`, and
//! the reset gate applied before the recurrent product (`linear_before_reset = 0`, the original GRU of Cho et
//! al. and Keras's `reset_after=False`):
//!
//! ```text
//! r = f(a_r)   z = f(a_z)          a_r = gx_r + gh_r,  a_z = gx_z + gh_z   (each clipped when set)
//! n = g(a_n)                       a_n = gx_n + r ⊙ (W_hn h + b_hn)     (linear_before_reset, PyTorch's)
//!                                  a_n = gx_n + W_hn (r ⊙ h) + b_hn     (without)
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Without `linear_before_reset`, `W_hn` multiplies `s = r ⊙ h`, which only the gate pass knows: the pass makes
//! that product itself (the driver's recurrent product covers the `r` and `z` blocks alone, see
//! `Cell::recurrent_gates`), through recur's packed kernel with `W_hn` packed once per weights version by `CellWeights` (forward and
//! backward), and its weight gradient `∂W_hn = Σ ∂a_n ⊗ s` is accumulated after the time loop from the cache.
//!
//! The passes run in blocks of units like PyTorch's (see [`blocks`](super::blocks)), each activation matched once
//! a block.

use super::activation::{Activation, activate, clip_block, derivative_block};
use super::blocks::{BLOCK, InBlocks, UnitBlocks, lanes, load, store};
use crate::driver::{CellWeights, ExtraGradInputs, GateBackward, GatePass};
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::kernels::packed::{Start, packed_product};
use crate::kernels::simd;

/// A GRU cell's ONNX options, when any differs from PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GruOnnx<T> {
    /// `f` for the reset and update gates, `g` for the candidate.
    pub activations: [Activation; 2],
    pub clip: Option<T>,
    pub linear_before_reset: bool,
}

/// Cache slots per row, each `H` wide: the pre-activations `a_r, a_z, a_n`, then the recurrent term of `a_n`
/// (`W_hn h + b_hn`, or `W_hn s + b_hn`), then `s = r ⊙ h` (without `linear_before_reset`).
pub(crate) const CACHE_SLOTS: usize = 5;

impl<T: Real> GruOnnx<T> {
    /// The forward gate pass.
    pub fn forward(&self, weights: &CellWeights<T>, pass: GatePass<'_, T>) {
        let n = weights.hidden_size();
        let GatePass { batch, gx, gh, h_prev, h_next, cache, .. } = pass;
        // Inference with `linear_before_reset` keeps no cache (the cell's `inference_cache_width` is 0).
        let cache = if cache.is_empty() { None } else { Some(cache) };
        let b_hn = weights.bias_hh().map(|b| &b[2 * n..]);
        let mut rows =
            ForwardRows { options: *self, hidden: n, gx, gh, h_prev, h_next, cache, b_hn, stage: Stage::Whole };
        if !self.linear_before_reset {
            // `s = r ⊙ h` into the cache, then `W_hn s` into `h_next`, which the second stage overwrites.
            rows.stage = Stage::ResetGate;
            simd::vectorised::<T, _>(InBlocks(&mut rows));
            let cache = rows.cache.as_deref().expect("a GRU resetting first always keeps a cache");
            let w_hn_t = weights.packed_gate_forward(GATE_N);
            packed_product(&cache[4 * n..], CACHE_SLOTS * n, batch, w_hn_t, Start::Zero, rows.h_next, n);
            rows.stage = Stage::AfterProduct;
        }
        simd::vectorised::<T, _>(InBlocks(&mut rows));
    }

    /// The backward gate pass: with `∂n = ∂h' ⊙ (1 − z)`, `∂z = ∂h' ⊙ (h − n)`, `∂a = ∂(f or g)(a) ⊙ f′(a)` (0
    /// where clipped), and `∂h` (direct) `= ∂h' ⊙ z`;
    ///
    /// ```text
    /// linear_before_reset:  ∂r = ∂a_n ⊙ (W_hn h + b_hn),   ∂gh_n = ∂a_n ⊙ r
    /// without:              ∂s = W_hnᵀ ∂a_n,  ∂r = ∂s ⊙ h,  ∂h += ∂s ⊙ r,   ∂gh_n = 0
    /// ```
    pub fn backward(&self, weights: &CellWeights<T>, pass: GateBackward<'_, T>) {
        let n = weights.hidden_size();
        let GateBackward { batch, cache, h_prev, dh, dgx, dgh, dh_prev, scratch, .. } = pass;
        let mut rows = BackwardRows {
            options: *self,
            hidden: n,
            cache,
            h_prev,
            dh,
            dgx,
            dgh,
            dh_prev,
            ds: &[],
            stage: Stage::Whole,
        };
        if self.linear_before_reset {
            simd::vectorised::<T, _>(InBlocks(&mut rows));
            return;
        }
        rows.stage = Stage::ResetGate;
        simd::vectorised::<T, _>(InBlocks(&mut rows));
        // `∂s = ∂a_n W_hn` for every row, into the scratch.
        let BackwardRows { dgx, dgh, dh_prev, .. } = rows;
        let w_hn = weights.packed_gate_backward(GATE_N);
        packed_product(&dgx[2 * n..], 3 * n, batch, w_hn, Start::Zero, scratch, n);
        let mut rows = BackwardRows {
            options: *self,
            hidden: n,
            cache,
            h_prev,
            dh,
            dgx,
            dgh,
            dh_prev,
            ds: scratch,
            stage: Stage::AfterProduct,
        };
        simd::vectorised::<T, _>(InBlocks(&mut rows));
    }

    /// Without `linear_before_reset`: `∂W_hn += Σ_rows ∂a_n ⊗ s` and `∂b_hn += Σ_rows ∂a_n`, which the driver's
    /// products (over `h_{t−1}`, with `∂gh_n = 0`) leave out.
    pub fn accumulate_grads(&self, weights: &mut CellWeights<T>, inputs: ExtraGradInputs<'_, T>) {
        if self.linear_before_reset {
            return;
        }
        let n = weights.hidden_size();
        let rows = inputs.dgx.len() / (3 * n);
        let da_n = MatRef::strided(&inputs.dgx[2 * n..], rows, n, 3 * n, 1);
        let s = MatRef::strided(&inputs.cache[4 * n..], rows, n, CACHE_SLOTS * n, 1);
        let (grad_hh, grad_bias) = weights.recurrent_grads_mut();
        gemm(da_n.t(), s, T::one(), MatMut::new(&mut grad_hh[2 * n * n..3 * n * n], n, n));
        if let Some(grad_bias) = grad_bias {
            for row in inputs.dgx.chunks_exact(3 * n) {
                grad_bias[2 * n..].iter_mut().zip(&row[2 * n..]).for_each(|(g, &d)| *g += d);
            }
        }
    }
}

/// Which part of a pass a walk over the blocks does. With `linear_before_reset` one walk does all; without, the
/// walk stops where the product by `W_hn` must see every unit (of `s = r ⊙ h` forward, of `∂a_n` backward) and a
/// second walk finishes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Whole,
    ResetGate,
    AfterProduct,
}

/// The forward pass in blocks of units.
struct ForwardRows<'a, T> {
    options: GruOnnx<T>,
    hidden: usize,
    gx: &'a [T],
    gh: &'a [T],
    h_prev: &'a [T],
    h_next: &'a mut [T],
    cache: Option<&'a mut [T]>,
    b_hn: Option<&'a [T]>,
    stage: Stage,
}

impl<T: Real> UnitBlocks for &mut ForwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.h_next.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let n = self.hidden;
        let GruOnnx { activations: [f, g], clip, .. } = self.options;
        let (g3, u, k) = (row * 3 * n + j, row * n + j, row * CACHE_SLOTS * n + j);
        let pre = |gate: usize| {
            let (x, r) = (load(self.gx, gate * n + g3, w), load(self.gh, gate * n + g3, w));
            lanes(|l| x[l] + r[l])
        };
        let h_prev = load(self.h_prev, u, w);
        let a_r = pre(0);
        if self.stage == Stage::ResetGate {
            let r = activate(f, &clip_block(&a_r, clip));
            let cache = self.cache.as_deref_mut().expect("a GRU resetting first always keeps a cache");
            store(cache, k + 4 * n, w, &lanes(|l| r[l] * h_prev[l]));
            return;
        }
        let a_z = pre(1);
        let z = activate(f, &clip_block(&a_z, clip));
        let x_n = load(self.gx, 2 * n + g3, w);
        // After the product, `r` is already in it.
        let (recurrent, a_n) = if self.stage == Stage::Whole {
            let r = activate(f, &clip_block(&a_r, clip));
            let hn = load(self.gh, 2 * n + g3, w);
            (hn, lanes(|l| x_n[l] + r[l] * hn[l]))
        } else {
            let product = load(self.h_next, u, w);
            let bias = self.b_hn.map_or([T::zero(); BLOCK], |b| load(b, j, w));
            let q = lanes(|l| product[l] + bias[l]);
            (q, lanes(|l| x_n[l] + q[l]))
        };
        let new = activate(g, &clip_block(&a_n, clip));
        store(self.h_next, u, w, &lanes(|l| (T::one() - z[l]) * new[l] + z[l] * h_prev[l]));
        if let Some(cache) = self.cache.as_deref_mut() {
            for (slot, v) in [a_r, a_z, a_n, recurrent].iter().enumerate() {
                store(cache, k + slot * n, w, v);
            }
        }
    }
}

/// The backward pass in blocks of units.
struct BackwardRows<'a, T> {
    options: GruOnnx<T>,
    hidden: usize,
    cache: &'a [T],
    h_prev: &'a [T],
    dh: &'a [T],
    dgx: &'a mut [T],
    dgh: &'a mut [T],
    dh_prev: &'a mut [T],
    /// `∂s` of every row, in the stage after the product.
    ds: &'a [T],
    stage: Stage,
}

impl<T: Real> UnitBlocks for &mut BackwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.dh.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let n = self.hidden;
        let GruOnnx { activations: [f, g], clip, .. } = self.options;
        let (g3, u, k) = (row * 3 * n + j, row * n + j, row * CACHE_SLOTS * n + j);
        let (a_r, h_prev) = (load(self.cache, k, w), load(self.h_prev, u, w));
        if self.stage == Stage::AfterProduct {
            let r = activate(f, &clip_block(&a_r, clip));
            let df_r = derivative_block(f, &a_r, clip);
            let (ds, dh_direct) = (load(self.ds, u, w), load(self.dh_prev, u, w));
            store(self.dh_prev, u, w, &lanes(|l| dh_direct[l] + ds[l] * r[l]));
            let da_r = lanes(|l| ds[l] * h_prev[l] * df_r[l]);
            store(self.dgx, g3, w, &da_r);
            store(self.dgh, g3, w, &da_r);
            return;
        }
        let (a_z, a_n) = (load(self.cache, k + n, w), load(self.cache, k + 2 * n, w));
        let dh = load(self.dh, u, w);
        let z = activate(f, &clip_block(&a_z, clip));
        let new = activate(g, &clip_block(&a_n, clip));
        let (dg_n, df_z) = (derivative_block(g, &a_n, clip), derivative_block(f, &a_z, clip));
        let da_n = lanes(|l| dh[l] * (T::one() - z[l]) * dg_n[l]);
        let da_z = lanes(|l| dh[l] * (h_prev[l] - new[l]) * df_z[l]);
        store(self.dh_prev, u, w, &lanes(|l| dh[l] * z[l]));
        store(self.dgx, n + g3, w, &da_z);
        store(self.dgh, n + g3, w, &da_z);
        store(self.dgx, 2 * n + g3, w, &da_n);
        // Resetting first, `∂a_r` waits for `∂s`, after the product.
        if self.stage == Stage::Whole {
            let r = activate(f, &clip_block(&a_r, clip));
            let df_r = derivative_block(f, &a_r, clip);
            let hn = load(self.cache, k + 3 * n, w);
            let da_r = lanes(|l| da_n[l] * hn[l] * df_r[l]);
            store(self.dgx, g3, w, &da_r);
            store(self.dgh, g3, w, &da_r);
            store(self.dgh, 2 * n + g3, w, &lanes(|l| da_n[l] * r[l]));
        } else {
            store(self.dgh, 2 * n + g3, w, &[T::zero(); BLOCK]);
        }
    }
}

/// The candidate's gate in `weight_hh`: `W_hn` is its block.
const GATE_N: usize = 2;
