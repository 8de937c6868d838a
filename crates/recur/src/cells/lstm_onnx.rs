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
//! and `c'`, from which their gradients are summed after the time loop. The passes run in blocks of units like
//! PyTorch's (see [`blocks`](super::blocks)), each activation matched once a block.

use super::activation::{Activation, activate, clip_block, derivative_block};
use super::blocks::{BLOCK, InBlocks, UnitBlocks, lanes, load, store};
use crate::driver::{ExtraGradInputs, GateBackward, GatePass};
use crate::kernels::Real;
use crate::kernels::simd;

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
        let GatePass { gx, gh, c_prev, h_next, c_next, cache, .. } = pass;
        let cache = if cache.is_empty() { None } else { Some(cache) };
        let h_next = if project { None } else { Some(h_next) };
        let rows = ForwardRows { options: *self, hidden, peephole, gx, gh, c_prev, c_next, cache, h_next };
        simd::vectorised::<T, _>(InBlocks(rows));
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
        let GateBackward { cache, c_prev, c_next, dc, dgx, dc_prev, .. } = pass;
        let rows = BackwardRows { options: *self, hidden, peephole, cache, dm, dc, c_prev, c_next, dgx, dc_prev };
        simd::vectorised::<T, _>(InBlocks(rows));
    }
}

/// A block of the peepholes `p_i`, `p_f`, `p_o` of units `j..j + w`, zeros without them.
#[inline(always)]
fn peephole_blocks<T: Real>(peephole: Option<&[T]>, n: usize, j: usize, w: usize) -> [[T; BLOCK]; 3] {
    match peephole {
        Some(p) => [load(p, j, w), load(p, n + j, w), load(p, 2 * n + j, w)],
        None => [[T::zero(); BLOCK]; 3],
    }
}

/// The forward pass in blocks of units.
struct ForwardRows<'a, T> {
    options: LstmOnnx<T>,
    hidden: usize,
    peephole: Option<&'a [T]>,
    gx: &'a [T],
    gh: &'a [T],
    c_prev: &'a [T],
    c_next: &'a mut [T],
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
        let LstmOnnx { activations: [f, g, h], clip, input_forget } = self.options;
        let width = cache_slots(self.peephole.is_some()) * n;
        let (g4, u, k) = (row * 4 * n + j, row * n + j, row * width + j);
        let pre = |gate: usize| {
            let (x, r) = (load(self.gx, gate * n + g4, w), load(self.gh, gate * n + g4, w));
            lanes(|l| x[l] + r[l])
        };
        let c = load(self.c_prev, u, w);
        let [p_i, p_f, p_o] = peephole_blocks(self.peephole, n, j, w);
        let (x_i, x_f, a_g, x_o) = (pre(0), pre(1), pre(2), pre(3));
        let a_i = lanes(|l| x_i[l] + p_i[l] * c[l]);
        let a_f = lanes(|l| x_f[l] + p_f[l] * c[l]);
        let i = activate(f, &clip_block(&a_i, clip));
        let forget = if input_forget { lanes(|l| T::one() - i[l]) } else { activate(f, &clip_block(&a_f, clip)) };
        let cand = activate(g, &clip_block(&a_g, clip));
        let c_new = lanes(|l| forget[l] * c[l] + i[l] * cand[l]);
        let a_o = lanes(|l| x_o[l] + p_o[l] * c_new[l]);
        let o = activate(f, &clip_block(&a_o, clip));
        let out = activate(h, &c_new);
        let m = lanes(|l| o[l] * out[l]);
        store(self.c_next, u, w, &c_new);
        if let Some(h_next) = self.h_next.as_deref_mut() {
            store(h_next, u, w, &m);
        }
        if let Some(cache) = self.cache.as_deref_mut() {
            for (slot, v) in [a_i, a_f, a_g, a_o, m].iter().enumerate() {
                store(cache, k + slot * n, w, v);
            }
            if self.peephole.is_some() {
                store(cache, k + 5 * n, w, &c);
                store(cache, k + 6 * n, w, &c_new);
            }
        }
    }
}

/// The backward pass in blocks of units.
struct BackwardRows<'a, T> {
    options: LstmOnnx<T>,
    hidden: usize,
    peephole: Option<&'a [T]>,
    cache: &'a [T],
    dm: &'a [T],
    dc: &'a [T],
    c_prev: &'a [T],
    c_next: &'a [T],
    dgx: &'a mut [T],
    dc_prev: &'a mut [T],
}

impl<T: Real> UnitBlocks for BackwardRows<'_, T> {
    fn shape(&self) -> (usize, usize) {
        (self.dc_prev.len() / self.hidden, self.hidden)
    }

    #[inline(always)]
    fn block(&mut self, row: usize, j: usize, w: usize) {
        let n = self.hidden;
        let LstmOnnx { activations: [f, g, h], clip, input_forget } = self.options;
        let one = T::one();
        let width = cache_slots(self.peephole.is_some()) * n;
        let (g4, u, k) = (row * 4 * n + j, row * n + j, row * width + j);
        let (a_i, a_f) = (load(self.cache, k, w), load(self.cache, k + n, w));
        let (a_g, a_o) = (load(self.cache, k + 2 * n, w), load(self.cache, k + 3 * n, w));
        let (c, c_new, dm, dc) =
            (load(self.c_prev, u, w), load(self.c_next, u, w), load(self.dm, u, w), load(self.dc, u, w));
        let [p_i, p_f, p_o] = peephole_blocks(self.peephole, n, j, w);
        let i = activate(f, &clip_block(&a_i, clip));
        let forget = if input_forget { lanes(|l| one - i[l]) } else { activate(f, &clip_block(&a_f, clip)) };
        let cand = activate(g, &clip_block(&a_g, clip));
        let o = activate(f, &clip_block(&a_o, clip));
        let out = activate(h, &c_new);
        let df_i = derivative_block(f, &a_i, clip);
        let (dg_g, df_o) = (derivative_block(g, &a_g, clip), derivative_block(f, &a_o, clip));
        let dh_c = derivative_block(h, &c_new, None);
        let da_o = lanes(|l| dm[l] * out[l] * df_o[l]);
        let dc_new = lanes(|l| dc[l] + dm[l] * o[l] * dh_c[l] + da_o[l] * p_o[l]);
        let (da_i, da_f) = if input_forget {
            (lanes(|l| (dc_new[l] * cand[l] - dc_new[l] * c[l]) * df_i[l]), [T::zero(); BLOCK])
        } else {
            let df_f = derivative_block(f, &a_f, clip);
            (lanes(|l| dc_new[l] * cand[l] * df_i[l]), lanes(|l| dc_new[l] * c[l] * df_f[l]))
        };
        let da_g = lanes(|l| dc_new[l] * i[l] * dg_g[l]);
        for (gate, v) in [da_i, da_f, da_g, da_o].iter().enumerate() {
            store(self.dgx, gate * n + g4, w, v);
        }
        store(self.dc_prev, u, w, &lanes(|l| dc_new[l] * forget[l] + da_i[l] * p_i[l] + da_f[l] * p_f[l]));
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
