//! The one-row product of a stream step, `y ← b + x·W`, with `W` (`K × N`, the transpose of a PyTorch weight)
//! packed once into panels of [`PANEL`] columns. At batch 1 a step is bound by reading the weights: each panel
//! is read front to back exactly once, its [`PANEL`] sums held in vector registers (four of AVX-512, eight of
//! AVX2) while `x` is walked, so the loop is one contiguous stream of loads and multiply-adds, and `y` is written
//! once. Compiled for AVX-512 or AVX2 with FMA when the CPU has them (chosen at run time) and portably otherwise;
//! every `y[j]` is `b[j]` plus its terms in row order, in every case.
//!
//! A batch of streams steps through [`rows_times`], which takes the rows in blocks, each load of the weights
//! feeding every row of a block (the kernels of [`super::quant`]'s stored formats, with nothing to widen), and
//! gives each row the arithmetic [`row_times`] gives it alone.

use super::packed::column_panels;
#[cfg(target_arch = "x86_64")]
use super::quant::product::{AVX2_BLOCK, BLOCK};
use super::quant::product::{RowBlocks, in_blocks};
#[cfg(target_arch = "x86_64")]
use super::quant::x86::{f32_rows_avx2, f32_rows_avx512};
#[cfg(target_arch = "x86_64")]
use super::simd::SimdLevel;

/// Columns per panel: eight 8-lane vectors of sums.
pub const PANEL: usize = 64;

/// Rows of a panel the AVX-512 path prefetches ahead, where it prefetches ([`super::simd::software_prefetch`]): on
/// an Intel Xeon, whose stream step reads its weights from L2, 8 rows ahead made `lstm stream B1 I128 H256 L2`
/// 19–24% faster (4 ahead: 10%, 16: no better than 8; alternating runs).
const PREFETCH_ROWS: usize = 8;

/// A `K × N` matrix packed for [`row_times`]: panel `p` holds `W[k][p·PANEL + j]` at `p·K·PANEL + k·PANEL + j`,
/// columns past `N` zero.
#[derive(Clone, Debug, PartialEq)]
pub struct RowPanels {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl RowPanels {
    /// Packs `W = Aᵀ` for a row-major `A` of `n × k` values (a PyTorch weight, `out × in`).
    ///
    /// # Panics
    /// When `a.len() != n·k` (a caller bug).
    pub fn from_transposed(a: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(a.len(), n * k, "RowPanels::from_transposed: weight size");
        RowPanels { k, n, panels: column_panels(k, n, PANEL, |row, col| a[col * k + row]) }
    }
}

/// `y ← b + x·W` for `x` of `k` values and `y` of `n` (the sizes `W` was packed with); `b` is zero when `None`.
///
/// # Panics
/// When the lengths disagree (a caller bug, never user input).
pub fn row_times(x: &[f32], w: &RowPanels, bias: Option<&[f32]>, y: &mut [f32]) {
    assert_eq!(x.len(), w.k, "row_times: x length");
    assert_eq!(y.len(), w.n, "row_times: y length");
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n, "row_times: bias length");
    }
    #[cfg(target_arch = "x86_64")]
    match super::simd::level() {
        // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (the level says so), which is all the function requires.
        SimdLevel::Avx512 => return unsafe { panels_avx512(x, w, bias, y, super::simd::software_prefetch()) },
        // SAFETY: the CPU supports AVX2 and FMA (the level says so), which is all the function requires.
        SimdLevel::Avx2 => return unsafe { panels_avx2_fma(x, w, bias, y) },
        SimdLevel::Portable => {}
    }
    panels(x, w, bias, y, |a, b, c| a * b + c);
}

/// `Y ← 1·bᵀ + X·W` for the `rows` rows of `x` (row-major, `k` values a row) into the rows of `y` (`y_stride`
/// values apart, `n` written in each): a batch of streams' step in one pass over the weights.
///
/// Each row gets exactly the arithmetic [`row_times`] gives it alone (its sums start from `b` and take the terms in
/// row order, one multiply-add each, on the same path), so a stream's numbers do not depend on the streams beside
/// it. The vector paths take the rows in blocks (four on AVX-512, two on AVX2) with sums of their own, each load
/// of the weights feeding every row of the block: the weights are read once a block rather than once a row.
///
/// # Panics
/// When the lengths disagree (a caller bug, never user input).
pub fn rows_times(x: &[f32], rows: usize, w: &RowPanels, bias: Option<&[f32]>, y: &mut [f32], y_stride: usize) {
    let (k, n) = (w.k, w.n);
    assert_eq!(x.len(), rows * k, "rows_times: x length");
    assert!(y_stride >= n && (rows == 0 || y.len() >= (rows - 1) * y_stride + n), "rows_times: y length");
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "rows_times: bias length");
    }
    if rows <= 1 || k == 0 || n == 0 {
        for (x, y) in x.chunks_exact(k.max(1)).zip(y.chunks_mut(y_stride)).take(rows) {
            row_times(&x[..k], w, bias, &mut y[..n]);
        }
        return;
    }
    let path = Path::here();
    let mut product = RowsProduct { x, k, w, bias, y, y_stride, path };
    in_blocks(rows, path.block(), &mut product);
}

/// The way [`rows_times`] takes its blocks of rows, by the CPU's vector level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// A row at a time, as [`row_times`].
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Path {
    /// The path [`row_times`] takes on this CPU.
    fn here() -> Path {
        #[cfg(target_arch = "x86_64")]
        match super::simd::level() {
            SimdLevel::Avx512 => return Path::Avx512,
            // The blocks' kernel shares its body with the half formats', which needs F16C (every AVX2 CPU has it).
            SimdLevel::Avx2 if std::arch::is_x86_feature_detected!("f16c") => return Path::Avx2,
            _ => {}
        }
        Path::Portable
    }

    /// Rows a block.
    fn block(self) -> usize {
        match self {
            Path::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => AVX2_BLOCK,
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => BLOCK,
        }
    }
}

/// The operands of [`rows_times`], handed out a block of rows at a time.
struct RowsProduct<'a> {
    x: &'a [f32],
    k: usize,
    w: &'a RowPanels,
    bias: Option<&'a [f32]>,
    y: &'a mut [f32],
    y_stride: usize,
    path: Path,
}

impl RowBlocks for RowsProduct<'_> {
    fn rows<const R: usize>(&mut self, first: usize) {
        let (k, n, w, bias) = (self.k, self.w.n, self.w, self.bias);
        let x = &self.x[first * k..(first + R) * k];
        let mut rows = self.y[first * self.y_stride..].chunks_mut(self.y_stride);
        let y: [&mut [f32]; R] = std::array::from_fn(|_| &mut rows.next().expect("a row of y")[..n]);
        match self.path {
            Path::Portable => {
                for (x, y) in x.chunks_exact(k).zip(y) {
                    row_times(x, w, bias, y);
                }
            }
            // SAFETY: the CPU has AVX2, FMA and F16C (`Path::here` checked), all the kernel needs.
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => unsafe { f32_rows_avx2::<R>(x, &w.panels, bias, y) },
            // SAFETY: the CPU has AVX-512F and FMA (`Path::here` checked), all the kernel needs.
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => unsafe { f32_rows_avx512::<R>(x, &w.panels, bias, y) },
        }
    }
}

/// `y ← b + x·W`, a panel at a time.
#[inline(always)]
fn panels(x: &[f32], w: &RowPanels, bias: Option<&[f32]>, y: &mut [f32], fma: impl Fn(f32, f32, f32) -> f32) {
    panels_prefetching(x, w, bias, y, fma, |_| {});
}

/// [`panels`], calling `prefetch` with each row of a panel's values before they are read, [`PREFETCH_ROWS`] rows
/// ahead (past the end of the weights too: a prefetch only names an address).
#[inline(always)]
fn panels_prefetching(
    x: &[f32],
    w: &RowPanels,
    bias: Option<&[f32]>,
    y: &mut [f32],
    fma: impl Fn(f32, f32, f32) -> f32,
    prefetch: impl Fn(*const f32),
) {
    let (k, n) = (w.k, w.n);
    if k == 0 {
        match bias {
            Some(b) => y.copy_from_slice(b),
            None => y.fill(0.0),
        }
        return;
    }
    for (p, panel) in w.panels.chunks_exact(k * PANEL).enumerate() {
        let col = p * PANEL;
        let cols = PANEL.min(n - col);
        let mut acc = [0.0f32; PANEL];
        if let Some(b) = bias {
            acc[..cols].copy_from_slice(&b[col..col + cols]);
        }
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            prefetch(row.as_ptr().wrapping_add(PREFETCH_ROWS * PANEL));
            for (a, &wv) in acc.iter_mut().zip(row) {
                *a = fma(xk, wv, *a);
            }
        }
        y[col..col + cols].copy_from_slice(&acc[..cols]);
    }
}

/// [`panels`] compiled for AVX2 with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panels_avx2_fma(x: &[f32], w: &RowPanels, bias: Option<&[f32]>, y: &mut [f32]) {
    panels(x, w, bias, y, f32::mul_add);
}

/// [`panels`] compiled for AVX-512: the 64 sums of a panel in four 16-lane registers, prefetching
/// [`PREFETCH_ROWS`] ahead when `prefetch` ([`super::simd::software_prefetch`]).
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn panels_avx512(x: &[f32], w: &RowPanels, bias: Option<&[f32]>, y: &mut [f32], prefetch: bool) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    if !prefetch {
        return panels(x, w, bias, y, f32::mul_add);
    }
    let prefetch = |at: *const f32| {
        for line in 0..PANEL / 16 {
            // A prefetch reads nothing the program sees and never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(16 * line) as *const i8);
        }
    };
    panels_prefetching(x, w, bias, y, f32::mul_add, prefetch);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain reference: `y[j] = b[j] + Σ_k x[k]·A[j][k]` for `A` (`n × k`), in f64.
    fn reference(x: &[f32], a: &[f32], b: &[f32]) -> Vec<f64> {
        let (n, k) = (b.len(), x.len());
        (0..n).map(|j| b[j] as f64 + (0..k).map(|p| x[p] as f64 * a[j * k + p] as f64).sum::<f64>()).collect()
    }

    #[test]
    fn matches_a_plain_reference_for_every_remainder() {
        for (k, n) in [(1, 1), (3, 5), (4, 8), (7, 33), (32, 256), (96, 256), (130, 17), (5, 64), (9, 129), (0, 3)] {
            let x: Vec<f32> = (0..k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
            let a: Vec<f32> = (0..k * n).map(|i| ((i * 11 % 17) as f32 - 8.0) / 8.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.25).collect();
            let w = RowPanels::from_transposed(&a, n, k);
            let mut y = vec![f32::NAN; n];
            row_times(&x, &w, Some(&b), &mut y);
            for (got, want) in y.iter().zip(reference(&x, &a, &b)) {
                assert!((*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "k={k} n={n}: {got} vs {want}");
            }
            let mut y0 = vec![f32::NAN; n];
            row_times(&x, &w, None, &mut y0);
            for (got, want) in y0.iter().zip(reference(&x, &a, &vec![0.0; n])) {
                assert!((*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn portable_and_vector_paths_agree_bit_for_bit() {
        let (k, n) = (37, 70);
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.3).sin()).collect();
        let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).cos()).collect();
        let w = RowPanels::from_transposed(&a, n, k);
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.2).cos()).collect();
        let mut plain = vec![0.0; n];
        panels(&x, &w, Some(&b), &mut plain, f32::mul_add);
        let mut fast = vec![0.0; n];
        row_times(&x, &w, Some(&b), &mut fast);
        assert_eq!(fast, plain);
        // Every vector path this CPU has, whatever `RECUR_SIMD` chose.
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::detected;
            type Path = unsafe fn(&[f32], &RowPanels, Option<&[f32]>, &mut [f32]);
            let mut paths: Vec<(&str, Path)> = Vec::new();
            if detected() >= SimdLevel::Avx2 {
                paths.push(("avx2", panels_avx2_fma));
            }
            if detected() >= SimdLevel::Avx512 {
                // SAFETY (of the calls below): as for the path itself.
                paths.push(("avx512, prefetching", |x, w, b, y| unsafe { panels_avx512(x, w, b, y, true) }));
                paths.push(("avx512", |x, w, b, y| unsafe { panels_avx512(x, w, b, y, false) }));
            }
            for (name, path) in paths {
                let mut y = vec![f32::NAN; n];
                // SAFETY: each path was added only when the CPU has its instructions.
                unsafe { path(&x, &w, Some(&b), &mut y) };
                assert_eq!(y, plain, "{name}");
            }
        }
    }

    #[test]
    fn rows_in_blocks_give_each_row_its_own_bits() {
        // Every count of rows up to two blocks and a remainder, with widths past one panel and not a multiple of
        // a vector, on every path this CPU has.
        for (k, n) in [(37, 70), (64, 256), (3, 5), (130, 129)] {
            let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.21).cos()).collect();
            let w = RowPanels::from_transposed(&a, n, k);
            for rows in 1..=9 {
                let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.11).cos()).collect();
                let alone: Vec<f32> = x
                    .chunks_exact(k)
                    .flat_map(|x| {
                        let mut y = vec![0.0; n];
                        row_times(x, &w, Some(&b), &mut y);
                        y
                    })
                    .collect();
                let stride = n + 3;
                let mut paths = vec![Path::Portable];
                #[cfg(target_arch = "x86_64")]
                {
                    use crate::kernels::simd::detected;
                    if detected() >= SimdLevel::Avx2 && std::arch::is_x86_feature_detected!("f16c") {
                        paths.push(Path::Avx2);
                    }
                    if detected() >= SimdLevel::Avx512 {
                        paths.push(Path::Avx512);
                    }
                }
                for path in paths {
                    let mut y = vec![f32::NAN; rows * stride];
                    let mut product =
                        RowsProduct { x: &x, k, w: &w, bias: Some(&b), y: &mut y, y_stride: stride, path };
                    in_blocks(rows, path.block(), &mut product);
                    for (r, row) in y.chunks(stride).enumerate() {
                        assert_eq!(&row[..n], &alone[r * n..(r + 1) * n], "{path:?}, k={k} n={n}, row {r} of {rows}");
                        assert!(row[n..].iter().all(|v| v.is_nan()), "{path:?}: wrote past the columns");
                    }
                }
                let mut y = vec![f32::NAN; rows * stride];
                rows_times(&x, rows, &w, Some(&b), &mut y, stride);
                for (r, row) in y.chunks(stride).enumerate() {
                    assert_eq!(&row[..n], &alone[r * n..(r + 1) * n], "rows_times, k={k} n={n}, row {r}");
                }
            }
        }
    }

    #[test]
    fn a_column_does_not_depend_on_the_others() {
        // The columns of a stream step split across two cores must come out as they do together.
        let (k, n) = (40, 100);
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.9).sin()).collect();
        let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.13).cos()).collect();
        let mut whole = vec![0.0; n];
        row_times(&x, &RowPanels::from_transposed(&a, n, k), None, &mut whole);
        let mut part = vec![0.0; 30];
        row_times(&x, &RowPanels::from_transposed(&a[70 * k..], 30, k), None, &mut part);
        assert_eq!(part, whole[70..]);
    }
}
