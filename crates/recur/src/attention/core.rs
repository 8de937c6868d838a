//! The steps every attention shares, forward and backward, over groups of queries and keys (one group per batch
//! element and head): dot-product scores, the masked softmax, and the weighted sum of the values.
//!
//! Queries, keys and values stay where the projections wrote them: a [`HeadLayout`] says where a group's matrix
//! sits in a row-major buffer (batch-first or time-major rows, a head's columns, a packed `q | k | v` buffer), so
//! no head is copied out. Scores and probabilities are one contiguous `queries × keys` block per group.

use super::mask::CheckedMask;
use crate::error::Result;
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::kernels::simd::{self, Vectorised};

/// Where group `g = b·heads + h`'s `len × dim` matrix sits in a row-major buffer: element `(i, c)` is at
/// `b·batch_stride + i·row_stride + offset + h·dim + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadLayout {
    pub heads: usize,
    pub len: usize,
    pub dim: usize,
    pub offset: usize,
    pub batch_stride: usize,
    pub row_stride: usize,
}

/// How a buffer's rows are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowOrder {
    /// Row `b·len + i`.
    BatchFirst,
    /// Row `i·batch + b`.
    TimeMajor { batch: usize },
}

impl HeadLayout {
    /// `heads` heads of `dim` columns each, starting at column `offset` of rows `width` wide.
    pub fn new(order: RowOrder, len: usize, heads: usize, dim: usize, width: usize, offset: usize) -> Self {
        let (batch_stride, row_stride) = match order {
            RowOrder::BatchFirst => (len * width, width),
            RowOrder::TimeMajor { batch } => (width, batch * width),
        };
        HeadLayout { heads, len, dim, offset, batch_stride, row_stride }
    }

    fn start(&self, g: usize) -> usize {
        (g / self.heads) * self.batch_stride + self.offset + (g % self.heads) * self.dim
    }

    /// Group `g`'s matrix in `data`.
    pub fn view<'a, T>(&self, data: &'a [T], g: usize) -> MatRef<'a, T> {
        if self.len == 0 || self.dim == 0 {
            return MatRef::new(&data[..0], self.len, self.dim);
        }
        MatRef::strided(&data[self.start(g)..], self.len, self.dim, self.row_stride, 1)
    }

    /// Group `g`'s matrix in `data`, mutably.
    pub fn view_mut<'a, T>(&self, data: &'a mut [T], g: usize) -> MatMut<'a, T> {
        if self.len == 0 || self.dim == 0 {
            return MatMut::new(&mut data[..0], self.len, self.dim);
        }
        let start = self.start(g);
        MatMut::strided(&mut data[start..], self.len, self.dim, self.row_stride, 1)
    }
}

/// A matrix of a group: its buffer and layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads<'a, T> {
    pub data: &'a [T],
    pub layout: HeadLayout,
}

impl<'a, T> Heads<'a, T> {
    fn view(&self, g: usize) -> MatRef<'a, T> {
        self.layout.view(self.data, g)
    }
}

/// The number of groups and the size of each group's score block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Groups {
    pub count: usize,
    pub queries: usize,
    pub keys: usize,
}

impl Groups {
    /// Values in all groups' score blocks.
    pub fn scores_len(&self) -> usize {
        self.count * self.queries * self.keys
    }

    fn block<'s, T>(&self, scores: &'s [T], g: usize) -> MatRef<'s, T> {
        let n = self.queries * self.keys;
        MatRef::new(&scores[g * n..(g + 1) * n], self.queries, self.keys)
    }

    fn block_mut<'s, T>(&self, scores: &'s mut [T], g: usize) -> MatMut<'s, T> {
        let n = self.queries * self.keys;
        MatMut::new(&mut scores[g * n..(g + 1) * n], self.queries, self.keys)
    }
}

/// `scores_g = scale · Q_g K_gᵀ` for every group.
pub(crate) fn dot_scores<T: Real>(groups: Groups, q: Heads<'_, T>, k: Heads<'_, T>, scale: T, scores: &mut [T]) {
    for g in 0..groups.count {
        gemm(q.view(g), k.view(g).t(), T::zero(), groups.block_mut(scores, g));
    }
    if scale != T::one() {
        scores.iter_mut().for_each(|s| *s *= scale);
    }
}

/// The backward of [`dot_scores`]: from `∂L/∂scores`, `∂L/∂Q_g = scale · dS_g K_g` and
/// `∂L/∂K_g = scale · dS_gᵀ Q_g`, written (not added) into `dq` and `dk` through their layouts.
///
/// `dscores` is scaled in place.
pub(crate) fn dot_scores_backward<T: Real>(
    groups: Groups,
    (q, k): (Heads<'_, T>, Heads<'_, T>),
    scale: T,
    dscores: &mut [T],
    grads: &mut QkvGrads<'_, T>,
) {
    if scale != T::one() {
        dscores.iter_mut().for_each(|s| *s *= scale);
    }
    for g in 0..groups.count {
        let ds = groups.block(dscores, g);
        let (dq, layout) = grads.target(Qkv::Query);
        gemm(ds, k.view(g), T::zero(), layout.view_mut(dq, g));
        let (dk, layout) = grads.target(Qkv::Key);
        gemm(ds.t(), q.view(g), T::zero(), layout.view_mut(dk, g));
    }
}

/// Masks every row of scores and replaces it with its softmax, `pⱼ = e^{sⱼ − m} / Σₖ e^{sₖ − m}` with
/// `m = maxⱼ sⱼ` (stable for any scores). A masked score becomes a probability of exactly 0.
///
/// Fails when a row has no key left to attend to.
pub(crate) fn masked_softmax<T: Real>(groups: Groups, mask: &CheckedMask<'_>, scores: &mut [T]) -> Result<()> {
    if groups.keys == 0 {
        return Ok(());
    }
    if !mask.is_empty() {
        for (r, row) in scores.chunks_exact_mut(groups.keys).enumerate() {
            let (g, i) = (r / groups.queries, r % groups.queries);
            if !mask.apply(g, i, row) {
                return Err(mask.no_key_error(g, i));
            }
        }
    }
    simd::vectorised::<T, _>(SoftmaxRows { scores, keys: groups.keys });
    Ok(())
}

/// Every row of scores replaced by its softmax, compiled for the CPU's vector width.
struct SoftmaxRows<'a, T> {
    scores: &'a mut [T],
    keys: usize,
}

impl<T: Real> Vectorised for SoftmaxRows<'_, T> {
    #[inline(always)]
    fn run(self) {
        for row in self.scores.chunks_exact_mut(self.keys) {
            softmax_row(row);
        }
    }
}

/// A row's softmax in place; a masked score (`-inf`) becomes exactly 0 (the vector `exp` clamps its argument, so
/// it would give a tiny positive number).
#[inline(always)]
fn softmax_row<T: Real>(row: &mut [T]) {
    let max = row.iter().copied().fold(T::neg_infinity(), T::max);
    let mut sum = T::zero();
    for s in row.iter_mut() {
        let e = (*s - max).act_exp();
        *s = if *s == T::neg_infinity() { T::zero() } else { e };
        sum += *s;
    }
    let inv = T::one() / sum;
    row.iter_mut().for_each(|p| *p *= inv);
}

/// The backward of the softmax, in place: `∂L/∂sⱼ = pⱼ (∂L/∂pⱼ − Σₖ pₖ ∂L/∂pₖ)` for every row.
pub(crate) fn softmax_backward<T: Real>(keys: usize, probs: &[T], dprobs: &mut [T]) {
    if keys == 0 {
        return;
    }
    for (p, dp) in probs.chunks_exact(keys).zip(dprobs.chunks_exact_mut(keys)) {
        let dot = p.iter().zip(dp.iter()).fold(T::zero(), |acc, (&p, &d)| acc + p * d);
        p.iter().zip(dp.iter_mut()).for_each(|(&p, d)| *d = p * (*d - dot));
    }
}

/// `out_g = P_g V_g` for every group, written through `out`'s layout.
pub(crate) fn weighted_sum<T: Real>(
    groups: Groups,
    probs: &[T],
    v: Heads<'_, T>,
    (out, layout): (&mut [T], HeadLayout),
) {
    for g in 0..groups.count {
        gemm(groups.block(probs, g), v.view(g), T::zero(), layout.view_mut(out, g));
    }
}

/// The backward of [`weighted_sum`]: `∂L/∂P_g += dOut_g V_gᵀ` (onto what `dprobs` holds, e.g. the gradient of the
/// returned weights) and `∂L/∂V_g = P_gᵀ dOut_g`, written into the value gradient.
pub(crate) fn weighted_sum_backward<T: Real>(
    groups: Groups,
    (probs, v): (&[T], Heads<'_, T>),
    dout: Heads<'_, T>,
    dprobs: &mut [T],
    grads: &mut QkvGrads<'_, T>,
) {
    for g in 0..groups.count {
        gemm(dout.view(g), v.view(g).t(), T::one(), groups.block_mut(dprobs, g));
        let (dv, layout) = grads.target(Qkv::Value);
        gemm(groups.block(probs, g).t(), dout.view(g), T::zero(), layout.view_mut(dv, g));
    }
}

/// Query, key or value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qkv {
    Query,
    Key,
    Value,
}

/// Where the gradients of the queries, keys and values go: one packed buffer (self-attention's `q | k | v`
/// projection) or three buffers, each with the layout of what it is the gradient of.
#[derive(Debug)]
pub(crate) enum QkvBuffers<'a, T> {
    Packed(&'a mut [T]),
    Split([&'a mut [T]; 3]),
}

/// Gradient buffers with their layouts.
#[derive(Debug)]
pub(crate) struct QkvGrads<'a, T> {
    pub buffers: QkvBuffers<'a, T>,
    pub layouts: [HeadLayout; 3],
}

impl<T> QkvGrads<'_, T> {
    fn target(&mut self, which: Qkv) -> (&mut [T], HeadLayout) {
        let i = which as usize;
        let data = match &mut self.buffers {
            QkvBuffers::Packed(data) => &mut **data,
            QkvBuffers::Split(buffers) => &mut *buffers[i],
        };
        (data, self.layouts[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let mut row = [1000.0f64, 1001.0, -1e9];
        softmax_row(&mut row);
        let e = (-1.0f64).exp();
        assert!((row[0] - e / (1.0 + e)).abs() < 1e-15 && row[2] == 0.0);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn layouts_find_a_head_in_time_major_and_packed_buffers() {
        // 2 batch elements, 3 steps, 2 heads of 2 columns, packed q|k|v rows of 12; the key block starts at 4.
        let data: Vec<f32> = (0..2 * 3 * 12).map(|v| v as f32).collect();
        let layout = HeadLayout::new(RowOrder::TimeMajor { batch: 2 }, 3, 2, 2, 12, 4);
        let m = layout.view(&data, 3); // batch 1, head 1
        let mut got = vec![0.0f32; 6];
        gemm(m, MatRef::new(&[1.0, 0.0, 0.0, 1.0], 2, 2), 0.0, MatMut::new(&mut got, 3, 2));
        // Step i of batch 1 is row 2i + 1; head 1 of the key block is columns 6 and 7.
        assert_eq!(got, [18.0, 19.0, 42.0, 43.0, 66.0, 67.0]);
        let first = HeadLayout::new(RowOrder::BatchFirst, 3, 2, 2, 12, 0);
        assert_eq!(first.start(3), 36 + 2);
    }
}
