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
use crate::scratch;
use rayon::prelude::*;

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

    /// Copies group `g`'s matrix, row-major `len × dim` in `block`, to its place in `data`.
    pub fn scatter<T: Copy>(&self, data: &mut [T], g: usize, block: &[T]) {
        if self.dim == 0 {
            return;
        }
        let start = self.start(g);
        for (i, row) in block.chunks_exact(self.dim).enumerate() {
            let at = start + i * self.row_stride;
            data[at..at + self.dim].copy_from_slice(row);
        }
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
    let n = groups.queries * groups.keys;
    if n == 0 {
        return;
    }
    let one = |(g, block): (usize, &mut [T])| {
        gemm(q.view(g), k.view(g).t(), T::zero(), MatMut::new(&mut *block, groups.queries, groups.keys));
        if scale != T::one() {
            block.iter_mut().for_each(|s| *s *= scale);
        }
    };
    if in_parallel(groups, q.layout.dim) {
        scores.par_chunks_mut(n).enumerate().for_each(one);
    } else {
        scores.chunks_mut(n).enumerate().for_each(one);
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
    let Groups { count, queries, keys } = groups;
    let (n, dim) = (queries * keys, q.layout.dim);
    if n == 0 || dim == 0 {
        return;
    }
    let scaled = |ds: &mut [T]| {
        if scale != T::one() {
            ds.iter_mut().for_each(|s| *s *= scale);
        }
    };
    if in_parallel(groups, dim) {
        // Each group's gradients go to blocks of their own, then to their places in the layouts.
        let mut dq_blocks = scratch::take_unzeroed(count * queries * dim);
        let mut dk_blocks = scratch::take_unzeroed(count * keys * dim);
        dscores
            .par_chunks_mut(n)
            .zip(dq_blocks.par_chunks_mut(queries * dim))
            .zip(dk_blocks.par_chunks_mut(keys * dim))
            .enumerate()
            .for_each(|(g, ((ds, dq), dk))| {
                scaled(&mut *ds);
                let ds = MatRef::new(ds, queries, keys);
                gemm(ds, k.view(g), T::zero(), MatMut::new(dq, queries, dim));
                gemm(ds.t(), q.view(g), T::zero(), MatMut::new(dk, keys, dim));
            });
        grads.scatter(Qkv::Query, &dq_blocks);
        grads.scatter(Qkv::Key, &dk_blocks);
        scratch::give(dq_blocks);
        scratch::give(dk_blocks);
        return;
    }
    for (g, ds) in dscores.chunks_mut(n).enumerate() {
        scaled(&mut *ds);
        let ds = MatRef::new(ds, queries, keys);
        let (dq, layout) = grads.target(Qkv::Query);
        gemm(ds, k.view(g), T::zero(), layout.view_mut(dq, g));
        let (dk, layout) = grads.target(Qkv::Key);
        gemm(ds.t(), q.view(g), T::zero(), layout.view_mut(dk, g));
    }
}

/// Multiply-adds (or, for the softmax, values times a nominal cost) from which a pass spreads its groups over
/// Rayon's threads: below, the split costs more than it saves.
const PARALLEL_WORK: usize = 1 << 20;

/// Whether a pass over `groups` with products of inner size `dim` is worth spreading over threads.
fn in_parallel(groups: Groups, dim: usize) -> bool {
    let work = groups.count.saturating_mul(groups.queries).saturating_mul(groups.keys).saturating_mul(dim);
    worth_threads(groups.count, work)
}

/// Whether `parts` independent parts holding `work` multiply-adds in all are worth spreading over threads.
pub(crate) fn worth_threads(parts: usize, work: usize) -> bool {
    parts > 1 && work >= PARALLEL_WORK && rayon::current_num_threads() > 1
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
    let block = (groups.queries * groups.keys).max(1);
    // An exponential costs about as much as a 16-wide multiply-add.
    if in_parallel(groups, 16) {
        scores
            .par_chunks_mut(block)
            .for_each(|scores| simd::vectorised::<T, _>(SoftmaxRows { scores, keys: groups.keys }));
    } else {
        simd::vectorised::<T, _>(SoftmaxRows { scores, keys: groups.keys });
    }
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
    let max = lanes_max(row);
    for s in row.iter_mut() {
        let e = (*s - max).act_exp();
        *s = if *s == T::neg_infinity() { T::zero() } else { e };
    }
    let inv = T::one() / lanes_sum(row.iter().copied());
    row.iter_mut().for_each(|p| *p *= inv);
}

/// Independent partial results a reduction keeps, so that it runs as vector lanes rather than one chain of
/// dependent additions (the order is fixed, so every path gives the same sum).
const LANES: usize = 8;

/// `Σ values`, in [`LANES`] partial sums added at the end.
#[inline(always)]
fn lanes_sum<T: Real>(values: impl Iterator<Item = T>) -> T {
    let mut acc = [T::zero(); LANES];
    for (i, v) in values.enumerate() {
        acc[i % LANES] += v;
    }
    acc.iter().fold(T::zero(), |a, &b| a + b)
}

/// `max row`, in [`LANES`] partial maxima.
#[inline(always)]
fn lanes_max<T: Real>(row: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = if v > *a { v } else { *a };
    }
    acc.iter().fold(T::neg_infinity(), |m, &v| if v > m { v } else { m })
}

/// The backward of the softmax, in place: `∂L/∂sⱼ = pⱼ (∂L/∂pⱼ − Σₖ pₖ ∂L/∂pₖ)` for every row.
pub(crate) fn softmax_backward<T: Real>(keys: usize, probs: &[T], dprobs: &mut [T]) {
    if keys == 0 {
        return;
    }
    simd::vectorised::<T, _>(SoftmaxBackwardRows { keys, probs, dprobs });
}

/// [`softmax_backward`]'s rows, compiled for the CPU's vector width.
struct SoftmaxBackwardRows<'a, T> {
    keys: usize,
    probs: &'a [T],
    dprobs: &'a mut [T],
}

impl<T: Real> Vectorised for SoftmaxBackwardRows<'_, T> {
    #[inline(always)]
    fn run(self) {
        for (p, dp) in self.probs.chunks_exact(self.keys).zip(self.dprobs.chunks_exact_mut(self.keys)) {
            let dot = lanes_sum(p.iter().zip(dp.iter()).map(|(&p, &d)| p * d));
            p.iter().zip(dp.iter_mut()).for_each(|(&p, d)| *d = p * (*d - dot));
        }
    }
}

/// `out_g = P_g V_g` for every group, written through `out`'s layout.
pub(crate) fn weighted_sum<T: Real>(
    groups: Groups,
    probs: &[T],
    v: Heads<'_, T>,
    (out, layout): (&mut [T], HeadLayout),
) {
    let (queries, dim) = (groups.queries, layout.dim);
    if queries * dim == 0 {
        return;
    }
    if in_parallel(groups, dim) {
        let mut blocks = scratch::take_unzeroed(groups.count * queries * dim);
        blocks.par_chunks_mut(queries * dim).enumerate().for_each(|(g, block)| {
            gemm(groups.block(probs, g), v.view(g), T::zero(), MatMut::new(block, queries, dim));
        });
        for (g, block) in blocks.chunks(queries * dim).enumerate() {
            layout.scatter(out, g, block);
        }
        scratch::give(blocks);
        return;
    }
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
    let Groups { count, queries, keys } = groups;
    let (n, dim) = (queries * keys, v.layout.dim);
    if n == 0 || dim == 0 {
        return;
    }
    if in_parallel(groups, dim) {
        let mut dv_blocks = scratch::take_unzeroed(count * keys * dim);
        dprobs.par_chunks_mut(n).zip(dv_blocks.par_chunks_mut(keys * dim)).enumerate().for_each(|(g, (dp, dv))| {
            gemm(dout.view(g), v.view(g).t(), T::one(), MatMut::new(dp, queries, keys));
            gemm(groups.block(probs, g).t(), dout.view(g), T::zero(), MatMut::new(dv, keys, dim));
        });
        grads.scatter(Qkv::Value, &dv_blocks);
        scratch::give(dv_blocks);
        return;
    }
    for g in 0..count {
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

impl<T: Copy> QkvGrads<'_, T> {
    /// Copies every group's block of `blocks` (group-major, each `len × dim` of `which`'s layout) to its place.
    fn scatter(&mut self, which: Qkv, blocks: &[T]) {
        let (data, layout) = self.target(which);
        let size = layout.len * layout.dim;
        if size == 0 {
            return;
        }
        for (g, block) in blocks.chunks_exact(size).enumerate() {
            layout.scatter(data, g, block);
        }
    }

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
    use crate::attention::mask::MaskDims;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let mut row = [1000.0f64, 1001.0, -1e9];
        softmax_row(&mut row);
        let e = (-1.0f64).exp();
        assert!((row[0] - e / (1.0 + e)).abs() < 1e-15 && row[2] == 0.0);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    /// Scores, softmax, weighted sum and their backward, on a pool of `threads` threads.
    fn pass(threads: usize, data: &[Vec<f64>; 3]) -> Vec<Vec<f64>> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (batch, heads, len, dim) = (4, 2, 64, 32);
            let groups = Groups { count: batch * heads, queries: len, keys: len };
            assert_eq!(in_parallel(groups, dim), threads > 1, "the case is large enough to split");
            let order = RowOrder::TimeMajor { batch };
            let layouts = [0, 1, 2].map(|i| HeadLayout::new(order, len, heads, dim, 3 * heads * dim, i * heads * dim));
            let packed = &data[0];
            let view = |i: usize| Heads { data: &packed[..], layout: layouts[i] };
            let mut probs = vec![0.0; groups.scores_len()];
            dot_scores(groups, view(0), view(1), 0.3, &mut probs);
            let mask =
                CheckedMask::new(Default::default(), MaskDims { batch, heads, queries: len, keys: len }).unwrap();
            masked_softmax(groups, &mask, &mut probs).unwrap();
            let out_layout = HeadLayout::new(order, len, heads, dim, heads * dim, 0);
            let mut out = vec![0.0; batch * len * heads * dim];
            weighted_sum(groups, &probs, view(2), (&mut out, out_layout));
            let mut dprobs = data[1][..groups.scores_len()].to_vec();
            let mut d_packed = vec![0.0; packed.len()];
            let mut grads = QkvGrads { buffers: QkvBuffers::Packed(&mut d_packed), layouts };
            let dout = Heads { data: &data[2][..out.len()], layout: out_layout };
            weighted_sum_backward(groups, (&probs, view(2)), dout, &mut dprobs, &mut grads);
            softmax_backward(len, &probs, &mut dprobs);
            dot_scores_backward(groups, (view(0), view(1)), 0.3, &mut dprobs, &mut grads);
            vec![probs, out, d_packed]
        })
    }

    #[test]
    fn groups_spread_over_threads_give_the_numbers_of_one_thread() {
        let mut seed = 1u64;
        let mut random = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect()
        };
        let data = [random(4 * 64 * 3 * 64), random(8 * 64 * 64), random(4 * 64 * 64)];
        let (one, two) = (pass(1, &data), pass(2, &data));
        for (a, b) in one.iter().zip(&two) {
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-12 * x.abs().max(1.0)));
        }
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
