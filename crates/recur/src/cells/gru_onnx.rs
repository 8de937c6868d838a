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
//! that product itself (the driver's recurrent product still covers all three gates; its `n` block goes unused),
//! and its weight gradient `∂W_hn = Σ ∂a_n ⊗ s` is accumulated after the time loop from the cache.
//!
//! These passes are plain loops: they serve imported models and experiments, while PyTorch's configuration keeps
//! the vectorised passes of [`gru`](super::gru).

use super::activation::{Activation, clipped, clipped_derivative};
use crate::driver::{CellWeights, ExtraGradInputs, GateBackward, GatePass};
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, gemm};

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
        let width = CACHE_SLOTS * n;
        let [f, g] = self.activations;
        let clip = self.clip;
        let GatePass { batch, gx, gh, h_prev, h_next, cache, .. } = pass;
        if !self.linear_before_reset {
            // `s = r ⊙ h` into the cache, then `W_hn s` into `h_next`, which the last loop overwrites.
            for b in 0..batch {
                for j in 0..n {
                    let (g3, k) = (b * 3 * n + j, b * width + j);
                    let r = f.apply(clipped(gx[g3] + gh[g3], clip));
                    cache[k + 4 * n] = r * h_prev[b * n + j];
                }
            }
            let s = MatRef::strided(&cache[4 * n..], batch, n, width, 1);
            gemm(s, recurrent_n(weights).t(), T::zero(), MatMut::new(&mut *h_next, batch, n));
        }
        // Inference with `linear_before_reset` keeps no cache (the cell's `inference_cache_width` is 0).
        let keep = !cache.is_empty();
        let b_hn = weights.bias_hh().map(|b| &b[2 * n..]);
        for b in 0..batch {
            for j in 0..n {
                let (g3, u, k) = (b * 3 * n + j, b * n + j, b * width + j);
                let (a_r, a_z) = (gx[g3] + gh[g3], gx[n + g3] + gh[n + g3]);
                let r = f.apply(clipped(a_r, clip));
                let z = f.apply(clipped(a_z, clip));
                let (recurrent, a_n) = if self.linear_before_reset {
                    let hn = gh[2 * n + g3];
                    (hn, gx[2 * n + g3] + r * hn)
                } else {
                    let q = h_next[u] + b_hn.map_or(T::zero(), |bias| bias[j]);
                    (q, gx[2 * n + g3] + q)
                };
                let new = g.apply(clipped(a_n, clip));
                h_next[u] = (T::one() - z) * new + z * h_prev[u];
                if keep {
                    for (slot, v) in [a_r, a_z, a_n, recurrent].into_iter().enumerate() {
                        cache[k + slot * n] = v;
                    }
                }
            }
        }
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
        let width = CACHE_SLOTS * n;
        let [f, g] = self.activations;
        let (clip, one) = (self.clip, T::one());
        let GateBackward { batch, cache, h_prev, dh, dgx, dgh, dh_prev, scratch, .. } = pass;
        let r_of = |k: usize| f.apply(clipped(cache[k], clip));
        for b in 0..batch {
            for j in 0..n {
                let (g3, u, k) = (b * 3 * n + j, b * n + j, b * width + j);
                let (a_z, a_n, recurrent) = (cache[k + n], cache[k + 2 * n], cache[k + 3 * n]);
                let z = f.apply(clipped(a_z, clip));
                let new = g.apply(clipped(a_n, clip));
                let da_n = dh[u] * (one - z) * clipped_derivative(g, a_n, clip);
                let da_z = dh[u] * (h_prev[u] - new) * clipped_derivative(f, a_z, clip);
                dh_prev[u] = dh[u] * z;
                dgx[n + g3] = da_z;
                dgx[2 * n + g3] = da_n;
                dgh[n + g3] = da_z;
                if self.linear_before_reset {
                    let a_r = cache[k];
                    let da_r = da_n * recurrent * clipped_derivative(f, a_r, clip);
                    dgx[g3] = da_r;
                    dgh[g3] = da_r;
                    dgh[2 * n + g3] = da_n * r_of(k);
                } else {
                    dgh[2 * n + g3] = T::zero();
                }
            }
        }
        if self.linear_before_reset {
            return;
        }
        // `∂s = ∂a_n W_hn` for every row, into the scratch.
        let da_n = MatRef::strided(&dgx[2 * n..], batch, n, 3 * n, 1);
        gemm(da_n, recurrent_n(weights), T::zero(), MatMut::new(&mut *scratch, batch, n));
        for b in 0..batch {
            for j in 0..n {
                let (g3, u, k) = (b * 3 * n + j, b * n + j, b * width + j);
                let ds = scratch[u];
                dh_prev[u] += ds * r_of(k);
                let da_r = ds * h_prev[u] * clipped_derivative(f, cache[k], clip);
                dgx[g3] = da_r;
                dgh[g3] = da_r;
            }
        }
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

/// `W_hn`, the candidate's block of `weight_hh`, `H × H`.
fn recurrent_n<T: Real>(weights: &CellWeights<T>) -> MatRef<'_, T> {
    let n = weights.hidden_size();
    MatRef::new(&weights.weight_hh()[2 * n * n..3 * n * n], n, n)
}
