//! The per-step recurrent product `C ← C₀ + A·B` with `B` packed once, ahead of the time loop.
//!
//! Every step of a recurrent layer multiplies the running state (`A`, a few dozen rows) by the same recurrent
//! weights (`B`). A general GEMM repacks `B` on every call, which at these shapes costs as much as the product
//! itself. Here `B` (`K × N`) is laid out once as ⌈N/[`NR`]⌉ panels of `K × NR` values, each contiguous and
//! zero-padded, so a step streams each panel from cache exactly once and reuses it for every block of [`MR`] rows.
//! The tile kernel holds an `MR × NR` block of `C` in registers (12 AVX2 vectors for `f32`, chosen at run time)
//! and walks `K`; a portable version serves other CPUs and `f64`.

use std::ops::Range;

use rayon::prelude::*;

use crate::real::Real;

/// Columns per packed panel (two 8-lane vectors of `f32`).
pub const NR: usize = 16;
/// Rows of `C` per tile.
pub const MR: usize = 6;
/// Rows of `B` per pass (see [`packed_product`]).
pub const KC: usize = 256;
/// Values in one `MR × NR` tile.
pub const TILE: usize = MR * NR;

/// A `K × N` matrix `B`, packed into column panels for [`packed_product`].
#[derive(Clone, Debug, PartialEq)]
pub struct PackedMatrix<T> {
    k: usize,
    n: usize,
    /// Panel `p` holds `B[κ][p·NR + j]` at `p·K·NR + κ·NR + j`; columns past `N` are zero.
    panels: Vec<T>,
}

impl<T: Real> PackedMatrix<T> {
    /// Packs `B = Wᵀ` for a row-major `W` of `n × k` values, as PyTorch stores a weight (`out × in`): the forward
    /// product `h·W_hhᵀ` reads the weight this way.
    ///
    /// # Panics
    /// When `w.len() != n·k` (a caller bug, never user input).
    pub fn from_transposed(w: &[T], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "PackedMatrix::from_transposed: weight size");
        Self::pack(k, n, |row, col| w[col * k + row])
    }

    /// Packs a row-major `B` of `k × n` values: the backward product `dg·W_hh` reads the weight this way.
    ///
    /// # Panics
    /// When `b.len() != k·n` (a caller bug, never user input).
    pub fn from_rows(b: &[T], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "PackedMatrix::from_rows: matrix size");
        Self::pack(k, n, |row, col| b[row * n + col])
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> T + Sync) -> Self {
        PackedMatrix { k, n, panels: column_panels(k, n, NR, at) }
    }

    /// Rows of `B` (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B`.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// Values of a packed matrix from which [`column_panels`] packs on all threads (256 KB of `f32`).
const PARALLEL_PACK_VALUES: usize = 1 << 16;

/// The `k × n` matrix whose element `(row, col)` is `at(row, col)`, laid out as ⌈n/width⌉ panels of `k × width`
/// values (panel `p` holds column `p·width + j` of row `κ` at `p·k·width + κ·width + j`), columns past `n` zero.
pub(crate) fn column_panels<T: Copy + Send + num_traits::Zero>(
    k: usize,
    n: usize,
    width: usize,
    at: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let mut panels = vec![T::zero(); n.div_ceil(width) * k * width];
    if k == 0 {
        return panels;
    }
    let fill = |(p, panel): (usize, &mut [T])| {
        for (row, values) in panel.chunks_exact_mut(width).enumerate() {
            for (j, v) in values.iter_mut().enumerate().take(n.saturating_sub(p * width)) {
                *v = at(row, p * width + j);
            }
        }
    };
    // A training pass packs its recurrent weights anew (they changed at the last update), before a time loop that
    // nothing else runs beside: a large matrix is packed on all threads.
    if panels.len() >= PARALLEL_PACK_VALUES {
        panels.par_chunks_exact_mut(k * width).enumerate().for_each(fill);
    } else {
        panels.chunks_exact_mut(k * width).enumerate().for_each(fill);
    }
    panels
}

/// `out ← start + sums` for one row of a tile (`out.len()` values; a bias already starts at `out`'s column).
fn finish_row<T: Real>(start: Start<'_, T>, out: &mut [T], sums: &[T]) {
    match start {
        Start::Zero => out.copy_from_slice(&sums[..out.len()]),
        Start::Accumulate => out.iter_mut().zip(sums).for_each(|(o, &v)| *o += v),
        Start::Bias(bias) => out.iter_mut().zip(sums).zip(bias).for_each(|((o, &v), &b)| *o = b + v),
    }
}

/// What `C` starts from before `A·B` is added.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a, T> {
    /// `C ← A·B` (old contents ignored, even NaN).
    Zero,
    /// `C ← C + A·B`.
    Accumulate,
    /// `C ← 1·biasᵀ + A·B`: the same `N` values start every row.
    Bias(&'a [T]),
}

/// The tile kernel of one element type: `C[..rows][..NR] ← start + A[..rows]·panel` for `rows ≥ 1` rows of `A`
/// (row stride `lda`, `k` columns) and one `k × NR` panel, written straight into `c` (row stride `ldc`, which
/// must hold `NR` values from the start of each of the `rows` rows; a `Start::Bias` holds the panel's `NR` values).
/// A vector kernel walks the rows in tiles of at most [`MR`] ([`tile_heights`]); one call takes a whole column of
/// tiles, so that its checks and dispatch are paid once a panel rather than once a tile.
pub type TileKernel<T> =
    fn(k: usize, a: &[T], lda: usize, rows: usize, panel: &[T], start: Start<'_, T>, c: &mut [T], ldc: usize);

/// `C ← start + A·B` for `A` of `m` rows (row-major, row stride `lda`, `B.k()` columns) and `C` of `m` rows (row
/// stride `ldc`, `B.n()` columns).
///
/// # Panics
/// When a slice is too short for the shapes, or a bias has the wrong length (caller bugs, never user input).
pub fn packed_product<T: Real>(
    a: &[T],
    lda: usize,
    m: usize,
    b: &PackedMatrix<T>,
    start: Start<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && a.len() >= (m - 1) * lda + k, "packed_product: A is too short");
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "packed_product: C is too short");
    if let Start::Bias(bias) = start {
        assert_eq!(bias.len(), n, "packed_product: bias length");
    }
    let kernel = T::tile_kernel();
    // Blocks of KC rows of B, each pass a read-modify-write of C. 256 rather than 128: a whole `K = 256` in one
    // pass (one core, alternating builds: 84–86 GFLOP/s with 128, 89–93 with 256, on a loop-of-FMAs peak of 94).
    // Fewer passes still win alone (2048, one pass for every shape here: 1–6% faster in a loop of products) but
    // changed nothing end to end (paired calls in one process, within 1%), so the block stays at 256.
    // (Built for the per-step shapes, a few dozen rows; it also makes the input projections whose `K` fits one
    // block, a few hundred rows, where it matches the gemm crate: see `CellWeights::input_projection`.)
    for k0 in (0..k).step_by(KC) {
        let start = if k0 == 0 { start } else { Start::Accumulate };
        panels_times_rows(kernel, a, lda, 0..m, b, k0..(k0 + KC).min(k), start, c, ldc);
    }
}

/// [`packed_product`] with the rows of `A` and `C` cut in two halves run on two threads, when there are enough
/// of them to pay for the hand-off (the same values, bit for bit: rows are independent).
///
/// # Panics
/// As [`packed_product`].
pub fn packed_product_on_threads<T: Real>(
    a: &[T],
    lda: usize,
    m: usize,
    b: &PackedMatrix<T>,
    start: Start<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    if m < 4 * MR || m * b.k * b.n < PARALLEL_PRODUCT_WORK || rayon::current_num_threads() < 2 {
        return packed_product(a, lda, m, b, start, c, ldc);
    }
    let half = m / 2;
    let (a0, a1) = a.split_at(half * lda);
    let (c0, c1) = c.split_at_mut(half * ldc);
    rayon::join(
        || packed_product_on_threads(a0, lda, half, b, start, c0, ldc),
        || packed_product_on_threads(a1, lda, m - half, b, start, c1, ldc),
    );
}

/// Multiply-adds (`m·k·n`) from which [`packed_product_on_threads`] splits its rows.
const PARALLEL_PRODUCT_WORK: usize = 1 << 22;

/// `C[rows] ← start + A[rows, ks]·B[ks, ..]`: every panel of `B` against every tile of the rows.
#[allow(clippy::too_many_arguments)]
fn panels_times_rows<T: Real>(
    kernel: TileKernel<T>,
    a: &[T],
    lda: usize,
    rows: Range<usize>,
    b: &PackedMatrix<T>,
    ks: Range<usize>,
    start: Start<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    let (k, n) = (b.k, b.n);
    for (p, panel) in b.panels.chunks_exact(k * NR).enumerate() {
        let col = p * NR;
        let cols = NR.min(n - col);
        let panel = &panel[ks.start * NR..ks.end * NR];
        // A full panel always fits: the asserts of `packed_product` put `N` columns in every row of `C`.
        if cols == NR {
            let tile_start = match start {
                Start::Bias(bias) => Start::Bias(&bias[col..col + NR]),
                other => other,
            };
            let a = &a[rows.start * lda + ks.start..];
            kernel(ks.len(), a, lda, rows.len(), panel, tile_start, &mut c[rows.start * ldc + col..], ldc);
            continue;
        }
        // The last panel of an `N` that is not a multiple of NR: each tile goes through a buffer, and only its
        // `cols` real columns reach `C`.
        let row_start = match start {
            Start::Bias(bias) => Start::Bias(&bias[col..]),
            other => other,
        };
        for (row, height) in tile_heights(rows.len()) {
            let row = rows.start + row;
            let mut tile = [T::zero(); TILE];
            kernel(ks.len(), &a[row * lda + ks.start..], lda, height, panel, Start::Zero, &mut tile, NR);
            for (r, values) in tile.chunks_exact(NR).take(height).enumerate() {
                finish_row(row_start, &mut c[(row + r) * ldc + col..][..cols], values);
            }
        }
    }
}

/// The tiles `rows` rows are cut into, as `(first row, height)`: heights of at most [`MR`], as even as they go (32
/// rows as 4·5 + 2·6 rather than 5·6 + 2, whose last tile has too few accumulators to hide the multiply-adds'
/// latency).
pub fn tile_heights(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = rows.div_ceil(MR);
    (0..tiles).map(move |tile| (tile * rows / tiles, (tile + 1) * rows / tiles - tile * rows / tiles))
}

/// The portable tile kernel, for any [`Real`]: the same loop order as the vector one, so the compiler can keep
/// the tile in registers.
#[allow(clippy::too_many_arguments)]
pub fn tile_portable<T: Real>(
    k: usize,
    a: &[T],
    lda: usize,
    rows: usize,
    panel: &[T],
    start: Start<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    let panel = &panel[..k * NR];
    for r in 0..rows {
        let a_row = &a[r * lda..r * lda + k];
        let mut acc = [T::zero(); NR];
        for (&av, b_row) in a_row.iter().zip(panel.chunks_exact(NR)) {
            for (acc_j, &bj) in acc.iter_mut().zip(b_row) {
                *acc_j = av.mul_add(bj, *acc_j);
            }
        }
        finish_row(start, &mut c[r * ldc..r * ldc + NR], &acc);
    }
}

/// The `f32` tile kernel for this CPU: AVX2 with fused multiply-adds when it has them, else the portable one.
pub fn tile_f32_kernel() -> TileKernel<f32> {
    #[cfg(target_arch = "x86_64")]
    if has_vector_f32_kernel() {
        return tile_f32_avx2;
    }
    tile_portable::<f32>
}

/// Whether [`tile_f32_kernel`] is a vector kernel on this CPU.
pub fn has_vector_f32_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return true;
    }
    false
}

/// [`tile_f32_kernel`]'s AVX2 kernel behind its safe signature.
///
/// # Panics
/// When the CPU lacks AVX2 or FMA (only [`tile_f32_kernel`] hands it out, after checking), or a slice is too short.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn tile_f32_avx2(
    k: usize,
    a: &[f32],
    lda: usize,
    rows: usize,
    panel: &[f32],
    start: Start<'_, f32>,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
    assert!(rows >= 1, "tile_f32: rows");
    assert!(a.len() >= (rows - 1) * lda + k && lda >= k, "tile_f32: A is too short");
    assert!(panel.len() >= k * NR, "tile_f32: panel is too short");
    assert!(ldc >= NR && c.len() >= (rows - 1) * ldc + NR, "tile_f32: C is too short");
    let bias = match start {
        Start::Bias(bias) => {
            assert!(bias.len() >= NR, "tile_f32: bias is too short");
            bias.as_ptr()
        }
        _ => std::ptr::null(),
    };
    let mode = match start {
        Start::Zero => avx2::ZERO,
        Start::Accumulate => avx2::ACCUMULATE,
        Start::Bias(_) => avx2::BIAS,
    };
    let (a, panel, c) = (a.as_ptr(), panel.as_ptr(), c.as_mut_ptr());
    // SAFETY: the CPU has AVX2 and FMA (asserted above); the asserts guarantee that rows `0..rows` of `A` (`k`
    // values each, stride `lda`), `k·NR` values of the panel, `NR` values of the bias (when there is one) and
    // `NR` values at the start of each of the `rows` rows of `C` (stride `ldc`) are in bounds, and each tile reads
    // and writes only its own rows among them.
    unsafe { avx2::tiles(k, a, lda, rows, panel, mode, bias, c, ldc) }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::NR;
    use std::arch::x86_64::*;

    pub(super) const ZERO: u8 = 0;
    pub(super) const ACCUMULATE: u8 = 1;
    pub(super) const BIAS: u8 = 2;

    /// [`tile`] over `rows` rows, in the tiles of [`super::tile_heights`].
    ///
    /// # Safety
    /// As [`tile`], for `rows` rows of `A` and `C`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tiles(
        k: usize,
        a: *const f32,
        lda: usize,
        rows: usize,
        panel: *const f32,
        mode: u8,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        for (row, height) in super::tile_heights(rows) {
            // SAFETY: `row + height ≤ rows`, so the tile's rows are among those the caller guarantees.
            unsafe {
                let (a, c) = (a.add(row * lda), c.add(row * ldc));
                match height {
                    1 => tile::<1>(k, a, lda, panel, mode, bias, c, ldc),
                    2 => tile::<2>(k, a, lda, panel, mode, bias, c, ldc),
                    3 => tile::<3>(k, a, lda, panel, mode, bias, c, ldc),
                    4 => tile::<4>(k, a, lda, panel, mode, bias, c, ldc),
                    5 => tile::<5>(k, a, lda, panel, mode, bias, c, ldc),
                    _ => tile::<6>(k, a, lda, panel, mode, bias, c, ldc),
                }
            }
        }
    }

    /// `C[..R][..16] ← start + A[..R]·panel`, the `R × 16` block held in `2R` vector registers while `k` is
    /// walked, then combined with what `mode` says (`ZERO`: nothing, `ACCUMULATE`: `C`'s old values, `BIAS`: the
    /// 16 values at `bias` on every row) and stored.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `a` must point at `R` rows of `k` readable values with stride `lda`,
    /// `panel` at `k·NR` readable values, `bias` (with `BIAS`) at 16, and `c` at `R` rows of 16 writable values
    /// with stride `ldc`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const R: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        panel: *const f32,
        mode: u8,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in 0..k {
            // SAFETY: `p < k`, so `panel + p·NR + 16` and `a + r·lda + p` stay inside what the caller guarantees.
            unsafe {
                let b0 = _mm256_loadu_ps(panel.add(p * NR));
                let b1 = _mm256_loadu_ps(panel.add(p * NR + 8));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.add(r * lda + p));
                    acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
                }
            }
        }
        // SAFETY: row `r < R` of `C` holds 16 values at `c + r·ldc`, and `bias` 16 when `mode` is `BIAS`.
        unsafe {
            let base = match mode {
                BIAS => [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))],
                _ => [_mm256_setzero_ps(); 2],
            };
            for (r, acc_r) in acc.iter().enumerate() {
                let out = c.add(r * ldc);
                let (lo, hi) = match mode {
                    ACCUMULATE => (_mm256_loadu_ps(out), _mm256_loadu_ps(out.add(8))),
                    _ => (base[0], base[1]),
                };
                _mm256_storeu_ps(out, _mm256_add_ps(lo, acc_r[0]));
                _mm256_storeu_ps(out.add(8), _mm256_add_ps(hi, acc_r[1]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_matrices::{reference_product as reference, values};
    use super::*;

    fn close(got: f32, want: f64, k: usize) -> bool {
        (got as f64 - want).abs() <= 1e-6 * (k as f64).sqrt() * want.abs().max(1.0) * 4.0
    }

    #[test]
    fn matches_a_plain_reference_for_every_shape_remainder() {
        for &(m, k, n) in &[(1, 1, 1), (5, 3, 7), (6, 16, 16), (7, 33, 17), (13, 64, 48), (32, 256, 1024), (2, 9, 40)] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let bias = values(n, 3);
            let want = reference(&a, &b, m, k, n);
            let packed = PackedMatrix::from_rows(&b, k, n);
            let mut c = vec![f32::NAN; m * n];
            packed_product(&a, k, m, &packed, Start::Zero, &mut c, n);
            for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                assert!(close(got, w, k), "({m},{k},{n}) zero start [{i}]: {got} vs {w}");
            }
            packed_product(&a, k, m, &packed, Start::Accumulate, &mut c, n);
            for (&got, &w) in c.iter().zip(&want) {
                assert!(close(got, 2.0 * w, k), "({m},{k},{n}) accumulate: {got} vs {}", 2.0 * w);
            }
            packed_product(&a, k, m, &packed, Start::Bias(&bias), &mut c, n);
            for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                assert!(close(got, w + bias[i % n] as f64, k), "({m},{k},{n}) bias: {got}");
            }
        }
    }

    #[test]
    fn rows_on_two_threads_equal_one_thread_bit_for_bit() {
        let (m, k, n) = (101, 256, 200);
        assert!(m * k * n >= PARALLEL_PRODUCT_WORK);
        let (a, b, bias) = (values(m * k, 11), PackedMatrix::from_rows(&values(k * n, 12), k, n), values(n, 13));
        let mut one = vec![0.0f32; m * n];
        packed_product(&a, k, m, &b, Start::Bias(&bias), &mut one, n);
        let mut two = vec![f32::NAN; m * n];
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| packed_product_on_threads(&a, k, m, &b, Start::Bias(&bias), &mut two, n));
        assert!(one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn transposed_packing_is_the_transpose() {
        let (n, k) = (21, 10);
        let w = values(n * k, 4);
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        assert_eq!(PackedMatrix::from_transposed(&w, n, k), PackedMatrix::from_rows(&wt, k, n));
    }

    #[test]
    fn strided_rows_leave_the_gaps_alone() {
        let (m, k, n, lda, ldc) = (9, 12, 20, 15, 23);
        let a = values(m * lda, 5);
        let b = values(k * n, 6);
        let dense_a: Vec<f32> = (0..m).flat_map(|r| a[r * lda..r * lda + k].to_vec()).collect();
        let want = reference(&dense_a, &b, m, k, n);
        let mut c = vec![-7.0f32; m * ldc];
        packed_product(&a, lda, m, &PackedMatrix::from_rows(&b, k, n), Start::Zero, &mut c, ldc);
        for r in 0..m {
            for j in 0..ldc {
                let got = c[r * ldc + j];
                if j < n {
                    assert!(close(got, want[r * n + j], k));
                } else {
                    assert_eq!(got, -7.0, "row {r} column {j} is outside C");
                }
            }
        }
    }

    #[test]
    fn vector_and_portable_kernels_agree() {
        let (k, ldc) = (37, 21);
        let a = values((2 * MR + 1) * k, 7);
        let panel = values(k * NR, 8);
        let bias = values(NR, 9);
        let old = values((2 * MR + 2) * ldc, 10);
        for rows in 1..=2 * MR + 1 {
            for start in [Start::Zero, Start::Accumulate, Start::Bias(&bias)] {
                let (mut fast, mut plain) = (old.clone(), old.clone());
                tile_f32_kernel()(k, &a, k, rows, &panel, start, &mut fast, ldc);
                tile_portable(k, &a, k, rows, &panel, start, &mut plain, ldc);
                for (i, (x, y)) in fast.iter().zip(&plain).enumerate() {
                    assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "rows={rows} {start:?} [{i}]: {x} vs {y}");
                    if i % ldc >= NR || i / ldc >= rows {
                        assert_eq!(x, &old[i], "rows={rows} {start:?}: [{i}] is outside the tile");
                    }
                }
            }
        }
    }

    #[test]
    fn f64_goes_through_the_portable_kernel() {
        let (m, k, n) = (4, 5, 18);
        let a: Vec<f64> = values(m * k, 9).into_iter().map(f64::from).collect();
        let b: Vec<f64> = values(k * n, 10).into_iter().map(f64::from).collect();
        let mut c = vec![0.0f64; m * n];
        packed_product(&a, k, m, &PackedMatrix::from_rows(&b, k, n), Start::Zero, &mut c, n);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-12);
            }
        }
    }
}
