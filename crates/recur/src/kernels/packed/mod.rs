//! The per-step recurrent product `C ← C₀ + A·B` with `B` packed once, ahead of the time loop.
//!
//! Every step of a recurrent layer multiplies the running state (`A`, a few dozen rows) by the same recurrent
//! weights (`B`). A general GEMM repacks `B` on every call, which at these shapes costs as much as the product
//! itself. Here `B` (`K × N`) is laid out once as ⌈N/[`NR`]⌉ panels of `K × NR` values, each contiguous and
//! zero-padded, so a step streams each panel from cache once per tile of rows. A tile kernel holds a block of `C`
//! in registers and walks `K`. Chosen at run time (`simd::level`):
//!
//! * AVX-512 (`avx512`): up to 12 rows × two adjacent panels (32 columns) in 24 of the 32 vector registers, two
//!   loads of `B` and 12 broadcasts of `A` for 24 multiply-adds of 16 lanes;
//! * AVX2 (`avx2`): up to 6 rows × one panel in 12 of the 16 vector registers;
//! * portable: any CPU, and `f64`.
//!
//! The panel layout is the same for all three, so packed weights do not depend on the kernel that reads them.

use std::any::{Any, TypeId};
use std::ops::Range;

use rayon::prelude::*;

use super::Real;
use super::simd::SimdLevel;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Columns per packed panel (one 16-lane or two 8-lane vectors of `f32`).
pub const NR: usize = 16;
/// The most rows of `C` any kernel puts in one tile.
pub const MAX_MR: usize = 12;
/// Rows of `B` per pass (see [`packed_product`]).
pub const KC: usize = 256;
/// The most panels any kernel takes side by side.
pub const MAX_PANELS: usize = 2;

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

/// One call of a tile function: `C[..rows][..count·NR] ← start + A[..rows]·[panel₀ … panel_{count−1}]` for
/// `rows ≥ 1` rows of `A` (row stride `lda`, `k` columns) and `1 ≤ count ≤` [`TileKernel::panels`] adjacent panels
/// of `k × NR` values each, the first at `panels[0]` and each next one `stride` values further, written straight
/// into `c` (row stride `ldc`, which must hold `count·NR` values from the start of each of the `rows` rows; a
/// `Start::Bias` holds the `count·NR` values of those columns). The kernel walks the rows in tiles of at most
/// [`TileKernel::rows`] ([`tile_heights`]); one call takes a whole column of tiles, so that its checks and dispatch
/// are paid once a column rather than once a tile.
#[derive(Debug)]
pub struct TileCall<'a, T> {
    /// Steps along `K`.
    pub k: usize,
    /// Rows of `A` and `C`.
    pub rows: usize,
    /// `A`, from its first row.
    pub a: &'a [T],
    /// Values from one row of `A` to the next.
    pub lda: usize,
    /// The panels of `B`, from the first.
    pub panels: &'a [T],
    /// Values from one panel to the next.
    pub stride: usize,
    /// Panels side by side.
    pub count: usize,
    /// What `C` starts from.
    pub start: Start<'a, T>,
    /// `C`, from its first row.
    pub c: &'a mut [T],
    /// Values from one row of `C` to the next.
    pub ldc: usize,
}

/// The tile function of one kernel (see [`TileCall`]).
pub type TileFn<T> = fn(TileCall<'_, T>);

/// A tile kernel and its shape.
#[derive(Clone, Copy, Debug)]
pub struct TileKernel<T> {
    /// The tile function.
    pub run: TileFn<T>,
    /// The most rows in one tile (at most [`MAX_MR`]).
    pub rows: usize,
    /// The most panels one call takes side by side (at most [`MAX_PANELS`]).
    pub panels: usize,
}

impl<T: Real> TileKernel<T> {
    /// The portable kernel, for any [`Real`].
    pub fn portable() -> Self {
        TileKernel { run: tile_portable::<T>, rows: 6, panels: 1 }
    }
}

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
    product_with(tile_kernel::<T>(), (a, lda), m, (b, b.k, b.n), start, (c, ldc));
}

/// [`packed_product`] with the leading `k` rows and `n` columns of `B` alone: `C ← start + A·B[..k][..n]`, for
/// `A` of `k` columns and `C` of `n` (the rest of `B` is not read).
///
/// # Panics
/// As [`packed_product`], and when `k` or `n` exceeds `B`'s (caller bugs, never user input).
pub fn packed_product_leading<T: Real>(
    a: &[T],
    lda: usize,
    m: usize,
    (b, k, n): (&PackedMatrix<T>, usize, usize),
    start: Start<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    assert!(k <= b.k && n <= b.n, "packed_product_leading: more of B than it has");
    product_with(tile_kernel::<T>(), (a, lda), m, (b, k, n), start, (c, ldc));
}

/// [`packed_product`] through a given kernel.
fn product_with<T: Real>(
    kernel: TileKernel<T>,
    (a, lda): (&[T], usize),
    m: usize,
    (b, k, n): (&PackedMatrix<T>, usize, usize),
    start: Start<'_, T>,
    (c, ldc): (&mut [T], usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && a.len() >= (m - 1) * lda + k, "packed_product: A is too short");
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "packed_product: C is too short");
    if let Start::Bias(bias) = start {
        assert_eq!(bias.len(), n, "packed_product: bias length");
    }
    // Blocks of KC rows of B, each a read-modify-write of C, walked inside each group of panels so that its
    // columns of `C` stay in cache from one block to the next. KC = 256 holds a whole `K = 256` in one block (one
    // core: 89–93 GFLOP/s against 84–86 with 128, on a loop-of-FMAs peak of 94; see docs/performance.md).
    panels_times_rows(kernel, (a, lda), 0..m, (b, k, n), start, (c, ldc));
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
    if m < 2 * MAX_MR || m * b.k * b.n < PARALLEL_PRODUCT_WORK || rayon::current_num_threads() < 2 {
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

/// `C[rows] ← start + A[rows]·B` for `A` and `C` with their row strides: every group of panels of `B` against
/// every tile of the rows, a block of [`KC`] rows of `B` at a time.
fn panels_times_rows<T: Real>(
    kernel: TileKernel<T>,
    (a, lda): (&[T], usize),
    rows: Range<usize>,
    (b, k, n): (&PackedMatrix<T>, usize, usize),
    start: Start<'_, T>,
    (c, ldc): (&mut [T], usize),
) {
    // Panels are `b.k` rows long whatever part of them is read.
    let stride = b.k * NR;
    let a = &a[rows.start * lda..];
    let blocks = || (0..k).step_by(KC).map(move |k0| k0..(k0 + KC).min(k));
    let full = n / NR;
    let mut p = 0;
    while p < full {
        let count = kernel.panels.min(full - p);
        let col = p * NR;
        // Full panels always fit: the asserts of `packed_product` put `N` columns in every row of `C`.
        let group_start = match start {
            Start::Bias(bias) => Start::Bias(&bias[col..col + count * NR]),
            other => other,
        };
        for ks in blocks() {
            let panels = &b.panels[p * stride + ks.start * NR..];
            let block_start = if ks.start == 0 { group_start } else { Start::Accumulate };
            let c = &mut c[rows.start * ldc + col..];
            let (k, rows, a) = (ks.len(), rows.len(), &a[ks.start..]);
            (kernel.run)(TileCall { k, rows, a, lda, panels, stride, count, start: block_start, c, ldc });
        }
        p += count;
    }
    if full * NR == n {
        return;
    }
    // The last panel of an `N` that is not a multiple of NR: each tile goes through a buffer, and only its real
    // columns reach `C`.
    let col = full * NR;
    let cols = n - col;
    let row_start = match start {
        Start::Bias(bias) => Start::Bias(&bias[col..]),
        other => other,
    };
    for ks in blocks() {
        let panel = &b.panels[full * stride + ks.start * NR..][..ks.len() * NR];
        let block_start = if ks.start == 0 { row_start } else { Start::Accumulate };
        for (row, height) in tile_heights(rows.len(), kernel.rows) {
            let mut tile = [T::zero(); MAX_MR * NR];
            let a = &a[row * lda + ks.start..];
            let (k, start, out) = (ks.len(), Start::Zero, &mut tile[..]);
            (kernel.run)(TileCall { k, rows: height, a, lda, panels: panel, stride, count: 1, start, c: out, ldc: NR });
            for (r, values) in tile.chunks_exact(NR).take(height).enumerate() {
                finish_row(block_start, &mut c[(rows.start + row + r) * ldc + col..][..cols], values);
            }
        }
    }
}

/// The tiles `rows` rows are cut into, as `(first row, height)`: heights of at most `most`, as even as they go (32
/// rows in tiles of 6 as 4·5 + 2·6 rather than 5·6 + 2, whose last tile has too few accumulators to hide the
/// multiply-adds' latency).
pub fn tile_heights(rows: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = rows.div_ceil(most);
    (0..tiles).map(move |tile| (tile * rows / tiles, (tile + 1) * rows / tiles - tile * rows / tiles))
}

/// The portable tile function, for any [`Real`]: one row at a time, each walking `K` with its `NR` sums in an
/// array the compiler can keep in registers.
pub fn tile_portable<T: Real>(call: TileCall<'_, T>) {
    let TileCall { k, rows, a, lda, panels, stride, count, start, c, ldc } = call;
    for q in 0..count {
        let panel = &panels[q * stride..][..k * NR];
        let start = match start {
            Start::Bias(bias) => Start::Bias(&bias[q * NR..(q + 1) * NR]),
            other => other,
        };
        for r in 0..rows {
            let a_row = &a[r * lda..r * lda + k];
            let mut acc = [T::zero(); NR];
            for (&av, b_row) in a_row.iter().zip(panel.chunks_exact(NR)) {
                for (acc_j, &bj) in acc.iter_mut().zip(b_row) {
                    *acc_j = av.mul_add(bj, *acc_j);
                }
            }
            finish_row(start, &mut c[r * ldc + q * NR..r * ldc + (q + 1) * NR], &acc);
        }
    }
}

/// The `f32` tile kernel for this CPU (`simd::level`): AVX-512, else AVX2 with fused multiply-adds, else
/// the portable one.
pub fn tile_f32_kernel() -> TileKernel<f32> {
    #[cfg(target_arch = "x86_64")]
    match super::simd::level() {
        SimdLevel::Avx512 => return avx512::KERNEL,
        SimdLevel::Avx2 => return avx2::KERNEL,
        SimdLevel::Portable => {}
    }
    TileKernel::portable()
}

/// Whether [`tile_f32_kernel`] is a vector kernel on this CPU.
pub fn has_vector_f32_kernel() -> bool {
    super::simd::level() > SimdLevel::Portable
}

/// The tile kernel for `T`: [`tile_f32_kernel`] for `f32`, the portable one for `f64` (the reference type of the
/// finite-difference checks, where speed does not matter). The type test is decided at compile time.
pub fn tile_kernel<T: Real>() -> TileKernel<T> {
    let f32_kernel: &dyn Any = &tile_f32_kernel();
    f32_kernel.downcast_ref::<TileKernel<T>>().copied().unwrap_or_else(TileKernel::portable)
}

/// Whether [`tile_kernel`] is a vector kernel for `T` on this CPU, fast enough for the large products too.
pub fn has_vector_tile_kernel<T: Real>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>() && has_vector_f32_kernel()
}

/// Every `f32` kernel this CPU can run, whatever `RECUR_SIMD` says, with its name: for tests that compare them.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
pub fn kernels_on_this_cpu() -> Vec<(&'static str, TileKernel<f32>)> {
    let mut out = vec![("portable", TileKernel::portable())];
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = super::simd::detected();
        if cpu >= SimdLevel::Avx2 {
            out.push(("avx2", avx2::KERNEL));
        }
        if cpu >= SimdLevel::Avx512 {
            out.push(("avx512", avx512::KERNEL));
        }
    }
    out
}

/// A [`TileCall`] as raw pointers, for the vector kernels' inner code, which walks them tile by tile: `k` steps,
/// `A` at `a` (stride `lda`), the panels at `panels` (`stride` apart), the bias at `bias` (null without one), `C`
/// at `c` (stride `ldc`).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct RawTile<T> {
    k: usize,
    a: *const T,
    lda: usize,
    panels: *const T,
    stride: usize,
    mode: Mode,
    bias: *const T,
    c: *mut T,
    ldc: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<T> RawTile<T> {
    /// Checks what every vector tile function needs of `call`, as the safety of its `unsafe` block assumes (for a
    /// kernel of at most `most` panels a call), and returns its rows and its pointers.
    ///
    /// # Panics
    /// When a slice is too short for the shapes or `count` is out of `1..=most` (a caller bug).
    fn checked(call: TileCall<'_, T>, most: usize) -> (usize, Self) {
        let TileCall { k, rows, a, lda, panels, stride, count, start, c, ldc } = call;
        assert!(rows >= 1, "tile: rows");
        assert!((1..=most).contains(&count), "tile: panel count");
        assert!(a.len() >= (rows - 1) * lda + k && lda >= k, "tile: A is too short");
        assert!(stride >= k * NR && panels.len() >= (count - 1) * stride + k * NR, "tile: panels are too short");
        assert!(ldc >= count * NR && c.len() >= (rows - 1) * ldc + count * NR, "tile: C is too short");
        let (bias, mode) = match start {
            Start::Zero => (std::ptr::null(), Mode::Zero),
            Start::Accumulate => (std::ptr::null(), Mode::Accumulate),
            Start::Bias(bias) => {
                assert!(bias.len() >= count * NR, "tile: bias is too short");
                (bias.as_ptr(), Mode::Bias)
            }
        };
        let (a, panels, c) = (a.as_ptr(), panels.as_ptr(), c.as_mut_ptr());
        (rows, RawTile { k, a, lda, panels, stride, mode, bias, c, ldc })
    }

    /// The same call from row `row` of `A` and `C` on.
    ///
    /// # Safety
    /// Row `row` must be among the rows the call covers.
    unsafe fn at_row(self, row: usize) -> Self {
        // SAFETY: the caller keeps `row` within the call's rows, whose values are in bounds.
        unsafe { RawTile { a: self.a.add(row * self.lda), c: self.c.add(row * self.ldc), ..self } }
    }
}

/// [`Start`] without its slice, for the vector kernels' inner code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Mode {
    Zero,
    Accumulate,
    Bias,
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
        let shapes = [(1, 1, 1), (5, 3, 7), (6, 16, 16), (7, 33, 17), (13, 64, 48), (32, 256, 1024), (2, 9, 40)];
        for (name, kernel) in kernels_on_this_cpu() {
            // And a `K` of more than one block, and an odd number of panels with a remainder after them.
            for &(m, k, n) in shapes.iter().chain(&[(25, KC + 3, 3 * NR + 5), (12, 2 * KC, 5 * NR)]) {
                let a = values(m * k, 1);
                let b = values(k * n, 2);
                let bias = values(n, 3);
                let want = reference(&a, &b, m, k, n);
                let packed = PackedMatrix::from_rows(&b, k, n);
                let at = format!("{name} ({m},{k},{n})");
                let mut c = vec![f32::NAN; m * n];
                product_with(kernel, (&a, k), m, (&packed, k, n), Start::Zero, (&mut c, n));
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(close(got, w, k), "{at} zero start [{i}]: {got} vs {w}");
                }
                product_with(kernel, (&a, k), m, (&packed, k, n), Start::Accumulate, (&mut c, n));
                for (&got, &w) in c.iter().zip(&want) {
                    assert!(close(got, 2.0 * w, k), "{at} accumulate: {got} vs {}", 2.0 * w);
                }
                product_with(kernel, (&a, k), m, (&packed, k, n), Start::Bias(&bias), (&mut c, n));
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(close(got, w + bias[i % n] as f64, k), "{at} bias: {got}");
                }
            }
        }
    }

    #[test]
    fn the_leading_part_of_b_is_the_product_with_that_part_alone() {
        // Parts ending inside a panel and on its edge, within one block of `K` and past it.
        for (name, kernel) in kernels_on_this_cpu() {
            for &(m, (k, n), (k_part, n_part)) in &[
                (7, (48, 3 * NR), (40, 2 * NR)),
                (13, (KC + 20, 5 * NR + 3), (KC + 1, 2 * NR + 5)),
                (1, (30, 40), (30, 17)),
            ] {
                let (a, b) = (values(m * k, 21), values(k * n, 22));
                let part: Vec<f32> = (0..k_part).flat_map(|row| b[row * n..row * n + n_part].to_vec()).collect();
                let packed = PackedMatrix::from_rows(&b, k, n);
                let mut c = vec![f32::NAN; m * n_part];
                product_with(kernel, (&a, k), m, (&packed, k_part, n_part), Start::Zero, (&mut c, n_part));
                let mut rows_of_a = vec![0.0; m * k_part];
                rows_of_a
                    .chunks_exact_mut(k_part)
                    .zip(a.chunks_exact(k))
                    .for_each(|(r, s)| r.copy_from_slice(&s[..k_part]));
                let want = reference(&rows_of_a, &part, m, k_part, n_part);
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(close(got, w, k_part), "{name} ({m},{k_part},{n_part}) [{i}]: {got} vs {w}");
                }
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
        let k = 37;
        // Panels further apart than one panel's length, so that a kernel that ignores the stride reads wrong ones.
        let stride = k * NR + 5;
        let panels = values(MAX_PANELS * stride, 8);
        let bias = values(MAX_PANELS * NR, 9);
        for (name, kernel) in kernels_on_this_cpu() {
            let a = values((2 * kernel.rows + 1) * k, 7);
            for count in 1..=kernel.panels {
                let ldc = count * NR + 5;
                let old = values((2 * kernel.rows + 2) * ldc, 10);
                for rows in 1..=2 * kernel.rows + 1 {
                    for start in [Start::Zero, Start::Accumulate, Start::Bias(&bias)] {
                        let (mut fast, mut plain) = (old.clone(), old.clone());
                        let call =
                            |c| TileCall { k, rows, a: &a, lda: k, panels: &panels, stride, count, start, c, ldc };
                        (kernel.run)(call(&mut fast));
                        tile_portable(call(&mut plain));
                        for (i, (x, y)) in fast.iter().zip(&plain).enumerate() {
                            let at = format!("{name}: rows={rows} count={count} {start:?} [{i}]");
                            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{at}: {x} vs {y}");
                            if i % ldc >= count * NR || i / ldc >= rows {
                                assert_eq!(x, &old[i], "{at} is outside the tile");
                            }
                        }
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
