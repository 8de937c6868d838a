//! The one-row product of a stream step, `y ← b + x·W`, with `W` (`K × N`, the transpose of a PyTorch weight)
//! packed once into panels of [`PANEL`] columns. At batch 1 a step is bound by reading the weights: each panel
//! is read front to back exactly once, its [`PANEL`] sums held in vector registers (four of AVX-512, eight of
//! AVX2) while `x` is walked, so the loop is one contiguous stream of loads and multiply-adds, and `y` is written
//! once. Compiled for AVX-512 or AVX2 with FMA when the CPU has them (chosen at run time) and portably otherwise;
//! every `y[j]` is `b[j]` plus its terms in row order, in every case.

use super::packed::column_panels;
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
