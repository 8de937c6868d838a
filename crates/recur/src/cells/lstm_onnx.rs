//! The LSTM's gate passes with ONNX's options: any activations `f` (gates), `g` (candidate) and `h` (output),
//! `clip`, peepholes `P = (p_i, p_f, p_o)` and coupled input and forget gates (`input_forget`):
//!
//! ```text
//! i = f(a_i)     a_i = gx_i + gh_i + p_i ⊙ c        (each a clipped when set)
//! f = f(a_f)     a_f = gx_f + gh_f + p_f ⊙ c        or, with input_forget, f = 1 − i
//! g = g(a_g)     a_g = gx_g + gh_g
//! c' = f ⊙ c + i ⊙ g
//! o = f(a_o)     a_o = gx_o + gh_o + p_o ⊙ c'
//! m = o ⊙ h(c')  (h' = m, or W_hr m with a projection)
//! ```
//!
//! As onnxruntime does, `clip` bounds the gates' pre-activations and not `c'` before `h`. The cache keeps the
//! pre-activations, so that the backward takes any activation's derivative at its input; with peepholes, also `c`
//! and `c'`, from which their gradients are summed after the time loop. These passes are plain loops: they serve
//! imported models and experiments, while PyTorch's configuration keeps the vectorised passes of
//! [`lstm`](super::lstm).

use super::activation::{Activation, clipped, clipped_derivative};
use crate::driver::{ExtraGradInputs, GateBackward, GatePass};
use crate::kernels::Real;

/// An LSTM cell's ONNX options, when any differs from PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LstmOnnx<T> {
    /// `f` (gates), `g` (candidate), `h` (output).
    pub activations: [Activation; 3],
    pub clip: Option<T>,
    pub input_forget: bool,
}

/// Cache slots per row, each `H` wide: `a_i, a_f, a_g, a_o`, then `m` (where the projection reads it), then, with
/// peepholes, `c` and `c'`.
pub(crate) fn cache_slots(peepholes: bool) -> usize {
    if peepholes { 7 } else { 5 }
}

/// The slot of `m` in the cache, for the projection.
pub(crate) const M_SLOT: usize = 4;

impl<T: Real> LstmOnnx<T> {
    /// The forward gate pass over `pass.batch` rows of `hidden` units; `h_next` receives `m` unless the cell
    /// projects it (`project`), and the cache is kept when it is not empty.
    pub fn forward(&self, hidden: usize, peephole: Option<&[T]>, pass: GatePass<'_, T>, project: bool) {
        let n = hidden;
        let width = cache_slots(peephole.is_some()) * n;
        let [f, g, h] = self.activations;
        let (clip, one) = (self.clip, T::one());
        let GatePass { batch, gx, gh, c_prev, h_next, c_next, cache, .. } = pass;
        let keep = !cache.is_empty();
        let p = |gate: usize, j: usize| peephole.map_or(T::zero(), |p| p[gate * n + j]);
        for b in 0..batch {
            for j in 0..n {
                let (g4, u, k) = (b * 4 * n + j, b * n + j, b * width + j);
                let pre = |gate: usize| gx[gate * n + g4] + gh[gate * n + g4];
                let c = c_prev[u];
                let a_i = pre(0) + p(0, j) * c;
                let a_f = pre(1) + p(1, j) * c;
                let a_g = pre(2);
                let i = f.apply(clipped(a_i, clip));
                let forget = if self.input_forget { one - i } else { f.apply(clipped(a_f, clip)) };
                let c_new = forget * c + i * g.apply(clipped(a_g, clip));
                let a_o = pre(3) + p(2, j) * c_new;
                let m = f.apply(clipped(a_o, clip)) * h.apply(c_new);
                c_next[u] = c_new;
                if !project {
                    h_next[u] = m;
                }
                if keep {
                    for (slot, v) in [a_i, a_f, a_g, a_o, m].into_iter().enumerate() {
                        cache[k + slot * n] = v;
                    }
                    if peephole.is_some() {
                        cache[k + 5 * n] = c;
                        cache[k + 6 * n] = c_new;
                    }
                }
            }
        }
    }

    /// The backward gate pass, from `∂m` (`dm`, per row) and `∂L/∂c'`:
    ///
    /// ```text
    /// ∂a_o = ∂m ⊙ h(c') ⊙ f′(a_o)
    /// ∂c' = ∂L/∂c' + ∂m ⊙ o ⊙ h′(c') + ∂a_o ⊙ p_o
    /// ∂a_i = ∂c' ⊙ g ⊙ f′(a_i)   (with input_forget: (∂c' ⊙ g − ∂c' ⊙ c) ⊙ f′(a_i))
    /// ∂a_f = ∂c' ⊙ c ⊙ f′(a_f)   (with input_forget: 0)
    /// ∂a_g = ∂c' ⊙ i ⊙ g′(a_g)
    /// ∂c = ∂c' ⊙ f + ∂a_i ⊙ p_i + ∂a_f ⊙ p_f
    /// ```
    ///
    /// where every `f′`, `g′` is 0 where the clip cut its input.
    pub fn backward(&self, hidden: usize, peephole: Option<&[T]>, pass: GateBackward<'_, T>, dm: &[T]) {
        let n = hidden;
        let width = cache_slots(peephole.is_some()) * n;
        let [f, g, h] = self.activations;
        let (clip, one, zero) = (self.clip, T::one(), T::zero());
        let GateBackward { batch, cache, c_prev, c_next, dc, dgx, dc_prev, .. } = pass;
        let p = |gate: usize, j: usize| peephole.map_or(zero, |p| p[gate * n + j]);
        for b in 0..batch {
            for j in 0..n {
                let (g4, u, k) = (b * 4 * n + j, b * n + j, b * width + j);
                let (a_i, a_f, a_g, a_o) = (cache[k], cache[k + n], cache[k + 2 * n], cache[k + 3 * n]);
                let (c, c_new) = (c_prev[u], c_next[u]);
                let i = f.apply(clipped(a_i, clip));
                let forget = if self.input_forget { one - i } else { f.apply(clipped(a_f, clip)) };
                let cand = g.apply(clipped(a_g, clip));
                let o = f.apply(clipped(a_o, clip));
                let da_o = dm[u] * h.apply(c_new) * clipped_derivative(f, a_o, clip);
                let dc_new = dc[u] + dm[u] * o * h.derivative(c_new) + da_o * p(2, j);
                let (di, df) = (dc_new * cand, dc_new * c);
                let (da_i, da_f) = if self.input_forget {
                    ((di - df) * clipped_derivative(f, a_i, clip), zero)
                } else {
                    (di * clipped_derivative(f, a_i, clip), df * clipped_derivative(f, a_f, clip))
                };
                let da_g = dc_new * i * clipped_derivative(g, a_g, clip);
                for (gate, v) in [da_i, da_f, da_g, da_o].into_iter().enumerate() {
                    dgx[gate * n + g4] = v;
                }
                dc_prev[u] = dc_new * forget + da_i * p(0, j) + da_f * p(1, j);
            }
        }
    }
}

/// `∂p_i += Σ_rows ∂a_i ⊙ c`, `∂p_f += Σ_rows ∂a_f ⊙ c`, `∂p_o += Σ_rows ∂a_o ⊙ c'`, into `grad` (`3H`, in the
/// order i, f, o), from the `c` and `c'` the forward cached.
pub(crate) fn accumulate_peephole_grads<T: Real>(hidden: usize, grad: &mut [T], inputs: &ExtraGradInputs<'_, T>) {
    let n = hidden;
    let width = cache_slots(true) * n;
    for (dgx, cache) in inputs.dgx.chunks_exact(4 * n).zip(inputs.cache.chunks_exact(width)) {
        let (c, c_new) = (&cache[5 * n..6 * n], &cache[6 * n..]);
        for j in 0..n {
            grad[j] += dgx[j] * c[j];
            grad[n + j] += dgx[n + j] * c[j];
            grad[2 * n + j] += dgx[3 * n + j] * c_new[j];
        }
    }
}
