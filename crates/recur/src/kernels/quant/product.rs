//! `y ← b + x·Wᵀ` for rows of `x`, with `W` a [`StoredMatrix`] laid out once in panels of [`PANEL`] columns, as
//! [`crate::kernels::rowvec`] lays out `f32` weights. The vector kernels take rows of `x` in blocks of up to four,
//! so that each load of the weights feeds every row of a block, but each row keeps sums of its own and
//! gets the same arithmetic in the same order as alone: a row's result never depends on how many rows share the
//! call, so a stream's numbers are the same alone and in a batch, and a whole sequence gives what its steps give
//! one at a time.
//!
//! The arithmetic, the same on every path:
//!
//! - **bf16, f16**: each weight widened to `f32` (exactly), `y_j = b_j + Σ_k x_k·w_kj` accumulated in `f32` in
//!   `k` order, one fused multiply-add a term.
//! - **int8**: the row of `x` quantized on the fly, symmetric with its own scale `s_x = max_k |x_k| / 127` and
//!   `q_k = round(x_k / s_x)` (ties to even); then `y_j = (Σ_k q_k·w_kj)·(s_x·s_j) + b_j`, the sum exact in `i32`
//!   (it cannot overflow below `k = 2³¹ / 127² ≈ 133 000`), then converted to `f32`, multiplied and added with a rounding each. This is
//!   PyTorch's dynamic quantization (activations quantized per call, weights ahead of time), per row of `x`.
//!
//! Compiled for AVX-512 or AVX2 when the CPU has them (chosen at run time, capped by the environment variable
//! `RECUR_SIMD` as recur's other kernels are) and portably otherwise. Every path gives the same bits: the half formats widen
//! exactly and keep the order of the multiply-adds, and integer sums are exact in any order. The int8 product uses
//! AVX-512 VNNI (`vpdpbusd`, unsigned × signed bytes, four terms a 32-bit lane) where the CPU has it, and AVX2's
//! 16-bit multiply-adds (`vpmaddwd`, exact for bytes) otherwise.

use super::{Int8Scale, StoredMatrix, StoredValues};
use crate::kernels::packed::column_panels;

/// Columns per panel.
pub const PANEL: usize = 64;

/// Values of `k` an int8 column holds in each 32-bit group: the four bytes one VNNI lane multiplies and adds.
pub(super) const QUAD: usize = 4;

/// Bytes of one group of `QUAD` rows of an int8 panel.
pub(super) const GROUP: usize = QUAD * PANEL;

/// A [`StoredMatrix`] `A` (`n × k`) laid out as `W = Aᵀ` (`k × n`) in panels of [`PANEL`] columns, columns past `n`
/// zero:
///
/// - f16: panel `p` holds `W[k][p·PANEL + j]` at `p·k·PANEL + k·PANEL + j` (a row of a panel is one contiguous
///   run of 64 values, widened 16 or 8 at a time);
/// - bf16: the same, but for the order of the columns within a row of a panel: in each run of 32 columns,
///   columns `j` and `j + 16` share a 32-bit word, `j` in its low half, so that a vector path widens 16 columns
///   with one shift and the next 16 with one mask (a plain layout takes a conversion and a shift for each 16);
/// - int8: `k` is padded with zeros to `K = 4·⌈k/4⌉`, and panel `p` holds `W[4g + t][p·PANEL + j]` at
///   `p·K·PANEL + g·4·PANEL + 4j + t`: the four values of `k` that one 32-bit lane of a VNNI multiply-add takes,
///   for 64 columns in a row, so one 64-byte load feeds 16 columns.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPanels {
    k: usize,
    n: usize,
    panels: Panels,
}

#[derive(Clone, Debug, PartialEq)]
enum Panels {
    Bf16(Vec<u16>),
    F16(Vec<u16>),
    Int8 {
        /// The values, in groups of `QUAD` rows.
        values: Vec<i8>,
        /// One scale per column of `W` (a per-tensor scale repeated), zero past `n` to a whole panel.
        scales: Vec<f32>,
        /// `128·Σ_k W[k][j]` per column (zero past `n`): what the VNNI path's unsigned `x + 128` adds to a sum.
        offsets: Vec<i32>,
    },
}

/// A way to compute a product: portable, or one of the vector paths for x86-64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// Plain Rust.
    Portable,
    /// AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F and FMA, with AVX-512 VNNI for int8 and F16C for f16 (whose kernel is the 256-bit one but on
    /// Intel's CPUs: [`wide_half_conversion`]).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// WebAssembly's 128-bit vectors, for int8 (compiled in, not chosen at run time).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

impl StoredPanels {
    /// Lays out `a` for [`StoredPanels::product`].
    pub fn new(a: &StoredMatrix) -> Self {
        let (n, k) = (a.rows(), a.cols());
        let panels = match a.values() {
            StoredValues::Bf16(v) => {
                let mut laid = vec![0u16; n.div_ceil(PANEL) * k * PANEL];
                for col in 0..n {
                    let at = col / PANEL * k * PANEL + bf16_position(col % PANEL);
                    for (row, &w) in v[col * k..(col + 1) * k].iter().enumerate() {
                        laid[at + row * PANEL] = w;
                    }
                }
                Panels::Bf16(laid)
            }
            StoredValues::F16(v) => Panels::F16(column_panels(k, n, PANEL, |row, col| v[col * k + row])),
            StoredValues::Int8 { values, scales, per } => {
                let (groups, width) = (k.div_ceil(QUAD), n.div_ceil(PANEL) * PANEL);
                let mut laid = vec![0i8; width * groups * QUAD];
                let mut offsets = vec![0i32; width];
                for col in 0..n {
                    let (p, j) = (col / PANEL, col % PANEL);
                    let column = &values[col * k..(col + 1) * k];
                    for (row, &w) in column.iter().enumerate() {
                        laid[p * groups * GROUP + row / QUAD * GROUP + j * QUAD + row % QUAD] = w;
                    }
                    let sum = column.iter().fold(0i32, |s, &w| s.wrapping_add(i32::from(w)));
                    offsets[col] = sum.wrapping_mul(128);
                }
                let scales = (0..width)
                    .map(|j| if j < n { scales[if *per == Int8Scale::Row { j } else { 0 }] } else { 0.0 })
                    .collect();
                Panels::Int8 { values: laid, scales, offsets }
            }
        };
        StoredPanels { k, n, panels }
    }

    /// `k`: the length of a row of `x`.
    pub fn input_size(&self) -> usize {
        self.k
    }

    /// `n`: the columns of `y` there are.
    pub fn output_size(&self) -> usize {
        self.n
    }

    /// `y[r·y_stride + j] ← b[j] + Σ_k x[r·k + k]·W[k][j]` for the first `columns` columns `j` and `rows` rows
    /// `r` of `x` (row-major, `k` values a row); `b` is zero when `None`. Columns past `columns` are not written.
    ///
    /// # Panics
    /// When a length disagrees or `columns > n` (a caller bug).
    pub fn product(
        &self,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
        y_stride: usize,
        columns: usize,
    ) {
        self.product_on(self.path(), x, rows, bias, y, y_stride, columns);
    }

    /// The fastest path this CPU has for the matrix's format, within [`crate::kernels::simd::level`].
    fn path(&self) -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{SimdLevel, level};
            let level = level();
            if level >= SimdLevel::Avx512 && self.has(Path::Avx512) {
                return Path::Avx512;
            }
            if level >= SimdLevel::Avx2 && self.has(Path::Avx2) {
                return Path::Avx2;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if self.has(Path::Simd128) {
            return Path::Simd128;
        }
        Path::Portable
    }

    /// Whether this CPU has what `path` needs for the matrix's format (beyond the level: VNNI, F16C).
    pub(super) fn has(&self, path: Path) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{SimdLevel, detected};
            use std::arch::is_x86_feature_detected as has;
            match path {
                Path::Portable => true,
                // F16C for every format: the bf16 kernel shares its body with the f16 one, which a function built
                // without F16C could not inline (every CPU with AVX2 has F16C).
                Path::Avx2 => detected() >= SimdLevel::Avx2 && has!("f16c"),
                Path::Avx512 => match self.panels {
                    Panels::Int8 { .. } => detected() >= SimdLevel::Avx512 && has!("avx512vnni"),
                    Panels::F16(_) => detected() >= SimdLevel::Avx512 && has!("f16c"),
                    Panels::Bf16(_) => detected() >= SimdLevel::Avx512,
                },
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if path == Path::Simd128 {
            return matches!(self.panels, Panels::Int8 { .. });
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            path == Path::Portable
        }
    }

    /// [`StoredPanels::product`] on `path`, which the CPU must have ([`StoredPanels::has`]; asserted).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn product_on(
        &self,
        path: Path,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
        y_stride: usize,
        columns: usize,
    ) {
        let k = self.k;
        assert_eq!(x.len(), rows * k, "StoredPanels::product: x length");
        assert!(columns <= self.n && columns <= y_stride, "StoredPanels::product: columns");
        assert!(rows == 0 || y.len() >= (rows - 1) * y_stride + columns, "StoredPanels::product: y length");
        if let Some(b) = bias {
            assert!(b.len() >= columns, "StoredPanels::product: bias length");
        }
        assert!(self.has(path), "StoredPanels::product: {path:?} on this CPU");
        if rows == 0 || columns == 0 {
            return;
        }
        let block = Block { x, k, bias, y, y_stride, columns };
        match &self.panels {
            Panels::Bf16(panels) | Panels::F16(panels) => {
                let f16 = matches!(self.panels, Panels::F16(_));
                // The 256-bit f16 kernel on the AVX-512 path but where the wide conversion is fast: an AVX-512 CPU
                // with F16C (`has` checked it) has all the 256-bit path needs.
                #[cfg(target_arch = "x86_64")]
                let path = if f16 && path == Path::Avx512 && !wide_half_conversion() { Path::Avx2 } else { path };
                in_blocks(rows, block_on(path), &mut HalfProduct { block, panels, f16, path });
            }
            Panels::Int8 { values, scales, offsets } => QUANTIZED_ROWS.with_borrow_mut(|q| {
                // Room for a block of rows quantized, each padded with zeros to whole groups (which meet the zero
                // rows of the panels).
                q.clear();
                q.resize(BLOCK * k.div_ceil(QUAD) * QUAD, 0);
                in_blocks(rows, block_on(path), &mut Int8Product { block, path, q, panels: values, scales, offsets });
            }),
        }
    }
}

/// The most rows of `x` a kernel takes in one pass over the panels: each load of the weights feeds every row of
/// a block. Four rows keep 16 sums in AVX-512 registers, half of them.
pub(crate) const BLOCK: usize = 4;

/// Rows a block of the AVX2 kernels: their sums of a part of a panel fill 8 of the 16 registers, which leaves room
/// for the weights and the rows of `x`.
#[cfg(target_arch = "x86_64")]
pub(crate) const AVX2_BLOCK: usize = 2;

/// A product over blocks of rows: [`in_blocks`] hands it `R` rows at a time.
pub(crate) trait RowBlocks {
    /// Rows `first..first + R` of the product.
    fn rows<const R: usize>(&mut self, first: usize);
}

/// Runs `product` over `rows` rows, `block ≤ BLOCK` at a time and the rows left in one smaller block.
pub(crate) fn in_blocks(rows: usize, block: usize, product: &mut impl RowBlocks) {
    let mut first = 0;
    while first < rows {
        let count = block.min(rows - first);
        match count {
            1 => product.rows::<1>(first),
            2 => product.rows::<2>(first),
            3 => product.rows::<3>(first),
            4 => product.rows::<4>(first),
            _ => unreachable!("in_blocks: blocks of {block} rows"),
        }
        first += count;
    }
}

/// Rows a block on `path`: the vector kernels read a panel's weights once a block; the portable one takes a row
/// at a time.
fn block_on(path: Path) -> usize {
    match path {
        Path::Portable => 1,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Path::Simd128 => 1,
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => AVX2_BLOCK,
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => BLOCK,
    }
}

/// The operands of a product that its blocks of rows share.
struct Block<'a> {
    x: &'a [f32],
    k: usize,
    bias: Option<&'a [f32]>,
    y: &'a mut [f32],
    y_stride: usize,
    columns: usize,
}

impl Block<'_> {
    /// Rows `first..first + R` of `x`, one after another, and the `columns` values of those rows of `y`.
    fn rows<const R: usize>(&mut self, first: usize) -> (&[f32], [&mut [f32]; R]) {
        let x = &self.x[first * self.k..(first + R) * self.k];
        let mut rows = self.y[first * self.y_stride..].chunks_mut(self.y_stride);
        (x, std::array::from_fn(|_| &mut rows.next().expect("y row")[..self.columns]))
    }
}

/// A bf16 or f16 product on `path`, which the CPU has ([`StoredPanels::product_on`] asserts it first).
struct HalfProduct<'a> {
    block: Block<'a>,
    panels: &'a [u16],
    f16: bool,
    path: Path,
}

impl RowBlocks for HalfProduct<'_> {
    fn rows<const R: usize>(&mut self, first: usize) {
        let (panels, bias, k) = (self.panels, self.block.bias, self.block.k);
        let (x, y) = self.block.rows::<R>(first);
        match self.path {
            Path::Portable => {
                for (r, y) in y.into_iter().enumerate() {
                    let x = &x[r * k..(r + 1) * k];
                    if self.f16 {
                        widened_row(x, panels, super::f16_to_f32, |j| j, bias, y);
                    } else {
                        widened_row(x, panels, super::bf16_to_f32, bf16_position, bias, y);
                    }
                }
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Path::Simd128 => unreachable!("`has` allows SIMD128 for int8 only"),
            // SAFETY: the CPU has AVX2, FMA and F16C (the path says so), all the functions need.
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => unsafe {
                if self.f16 {
                    super::x86::f16_rows_avx2::<R>(x, panels, bias, y)
                } else {
                    super::x86::bf16_rows_avx2::<R>(x, panels, bias, y)
                }
            },
            // SAFETY: the CPU has AVX-512F and FMA (the path says so), all the functions need.
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => unsafe {
                if self.f16 {
                    super::x86::f16_rows_avx512::<R>(x, panels, bias, y)
                } else {
                    super::x86::bf16_rows_avx512::<R>(x, panels, bias, y)
                }
            },
        }
    }
}

/// An int8 product on `path`, which the CPU has ([`StoredPanels::product_on`] asserts it first).
struct Int8Product<'a> {
    block: Block<'a>,
    path: Path,
    /// Room for [`BLOCK`] rows quantized, each padded with zeros to whole groups.
    q: &'a mut [i8],
    panels: &'a [i8],
    scales: &'a [f32],
    offsets: &'a [i32],
}

impl RowBlocks for Int8Product<'_> {
    fn rows<const R: usize>(&mut self, first: usize) {
        let (k, bias, path) = (self.block.k, self.block.bias, self.path);
        let (panels, scales, offsets) = (self.panels, self.scales, self.offsets);
        let padded = self.q.len() / BLOCK;
        let q = &mut self.q[..R * padded];
        let (x, y) = self.block.rows::<R>(first);
        let sx: [f32; R] = std::array::from_fn(|r| {
            let (x, q) = (&x[r * k..(r + 1) * k], &mut q[r * padded..r * padded + k]);
            match path {
                Path::Portable => quantize_portable(x, q),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Path::Simd128 => quantize_portable(x, q),
                // SAFETY: the CPU has AVX-512F (the path says so), all the function needs.
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => unsafe { super::x86::quantize_avx512(x, q) },
                // SAFETY: the CPU has AVX2 (the path says so), all the function needs.
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => unsafe { super::x86::quantize_avx2(x, q) },
            }
        });
        match path {
            Path::Portable => {
                for (r, y) in y.into_iter().enumerate() {
                    int8_row(&q[r * padded..(r + 1) * padded], sx[r], panels, scales, bias, y);
                }
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Path::Simd128 => {
                for (r, y) in y.into_iter().enumerate() {
                    super::wasm::int8_row_simd128(&q[r * padded..(r + 1) * padded], sx[r], panels, scales, bias, y);
                }
            }
            // SAFETY: the CPU has AVX-512F and AVX-512 VNNI (the path says so), all the function needs.
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => unsafe { super::x86::int8_rows_vnni::<R>(q, sx, panels, scales, offsets, bias, y) },
            // SAFETY: the CPU has AVX2 (the path says so), all the function needs.
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => unsafe { super::x86::int8_rows_avx2::<R>(q, sx, panels, scales, bias, y) },
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = offsets; // only the VNNI path needs them
    }
}

/// Where column `j` of a panel sits in a row of a bf16 panel: in each run of 32 columns, columns `j` and `j + 16`
/// share a 32-bit word (`j` in its low half), so that a vector path widens 16 columns with one shift left
/// and the next 16 with one mask, where a plain layout would take a conversion and a shift for every 16.
pub(super) fn bf16_position(j: usize) -> usize {
    j / 32 * 32 + j % 16 * 2 + j % 32 / 16
}

/// Whether the f16 product converts 16 halves an instruction (`vcvtph2ps` to a 512-bit register) rather than 8.
/// On an Intel CPU both widths convert one register a cycle, so the wide one converts twice as much, but on an AMD
/// EPYC (Zen 4) the wide conversion is much slower: there the 256-bit kernel took 3.0 µs for the one-row product
/// of `k = 128, n = 1024` and the 512-bit one 5.0 µs.
#[cfg(target_arch = "x86_64")]
fn wide_half_conversion() -> bool {
    // Asked once: `cpuid` can cost microseconds, in a virtual machine more than the product itself.
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(crate::kernels::simd::cpu_is_intel)
}

/// One row of a bf16 or f16 product: `y_j = b_j + Σ_k x_k·widen(w_kj)`, in `k` order, with column `j` of a panel
/// at `position(j)` of each of its rows.
fn widened_row(
    x: &[f32],
    panels: &[u16],
    widen: impl Fn(u16) -> f32,
    position: impl Fn(usize) -> usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let k = x.len();
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let mut acc = [0.0f32; PANEL];
        if let Some(b) = bias {
            for (j, &b) in b[p * PANEL..p * PANEL + y_panel.len()].iter().enumerate() {
                acc[position(j)] = b;
            }
        }
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            for (a, &w) in acc.iter_mut().zip(row) {
                *a = xk.mul_add(widen(w), *a);
            }
        }
        for (j, out) in y_panel.iter_mut().enumerate() {
            *out = acc[position(j)];
        }
    }
}

/// `x`'s scale and its values quantized to `[−127, 127]` into `q`: `s_x = max|x| / 127`, `q = round(x / s_x)`
/// (ties to even), all zero with a scale of 0 when `x` is. Values of `x` that are NaN quantize to 0 (the maximum
/// passes over them); an infinite value gives a NaN scale and zeros, so that the product is NaN, as an `f32`
/// product would be. Vectorised where the CPU allows, with the same results.
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{SimdLevel, level};
        match level() {
            // SAFETY: the CPU has AVX-512F (the level says so), all the function needs.
            SimdLevel::Avx512 => return unsafe { super::x86::quantize_avx512(x, q) },
            // SAFETY: the CPU has AVX2 (the level says so), all the function needs.
            SimdLevel::Avx2 => return unsafe { super::x86::quantize_avx2(x, q) },
            SimdLevel::Portable => {}
        }
    }
    quantize_portable(x, q)
}

/// [`quantize_row`] in plain Rust: the definition the vector paths match.
pub(super) fn quantize_portable(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let Some(scale) = row_scale(max, q) else { return if max.is_finite() { 0.0 } else { f32::NAN } };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = quantize_value(v, scale);
    }
    scale
}

/// The scale of a row whose largest magnitude is `max`, or `None` after zeroing `q` when the row has no usable
/// scale (all zeros, or an infinite value).
#[inline(always)]
pub(super) fn row_scale(max: f32, q: &mut [i8]) -> Option<f32> {
    let scale = max / 127.0;
    if scale == 0.0 || !scale.is_finite() {
        q.fill(0);
        return None;
    }
    Some(scale)
}

/// `round(v / scale)` in `[−127, 127]`, ties to even; 0 for a NaN.
#[inline(always)]
pub(super) fn quantize_value(v: f32, scale: f32) -> i8 {
    (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// One row of an int8 product from the row quantized (`q`, padded to whole groups) and its scale `sx`.
fn int8_row(q: &[i8], sx: f32, panels: &[i8], scales: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let groups = q.len() / QUAD;
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut sums = [0i32; PANEL];
        for (quad, group) in q.chunks_exact(QUAD).zip(panel.chunks_exact(GROUP)) {
            for (sum, w) in sums.iter_mut().zip(group.chunks_exact(QUAD)) {
                let dot = (0..QUAD).map(|t| i32::from(quad[t]) * i32::from(w[t])).sum::<i32>();
                *sum = sum.wrapping_add(dot);
            }
        }
        finish_int8(&sums, sx, &scales[p * PANEL..(p + 1) * PANEL], bias.map(|b| &b[p * PANEL..]), y_panel);
    }
}

/// `y_j = sum_j·(sx·s_j) + b_j` for the columns of one panel `y` has.
#[inline(always)]
pub(super) fn finish_int8(sums: &[i32; PANEL], sx: f32, scales: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (len, scales) = (y.len(), &scales[..y.len()]);
    match bias {
        Some(b) => {
            for (((out, &sum), &s), &b) in y.iter_mut().zip(sums).zip(scales).zip(&b[..len]) {
                *out = sum as f32 * (sx * s) + b;
            }
        }
        None => {
            for ((out, &sum), &s) in y.iter_mut().zip(sums).zip(scales) {
                *out = sum as f32 * (sx * s) + 0.0;
            }
        }
    }
}

thread_local! {
    /// A block of rows of `x` quantized, kept from one product to the next so that a step allocates nothing.
    static QUANTIZED_ROWS: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::super::{Int8Scale, Scheme};
    use super::*;

    /// `b + x·Aᵀ` in f64 from the values `a` stands for.
    fn reference(x: &[f32], rows: usize, a: &StoredMatrix, b: &[f32]) -> Vec<f64> {
        let (n, k, w) = (a.rows(), a.cols(), a.dequantize());
        (0..rows)
            .flat_map(|r| {
                let w = &w;
                (0..n)
                    .map(move |j| b[j] as f64 + (0..k).map(|p| x[r * k + p] as f64 * w[j * k + p] as f64).sum::<f64>())
            })
            .collect()
    }

    #[test]
    fn every_scheme_matches_its_dequantized_product() {
        for (k, n, rows) in [(1, 1, 1), (7, 33, 2), (32, 256, 3), (130, 65, 1), (0, 3, 2)] {
            let a: Vec<f32> = (0..k * n).map(|i| ((i * 11 % 17) as f32 - 8.0) / 8.0).collect();
            let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.25).collect();
            for scheme in Scheme::ALL {
                let m = StoredMatrix::quantize(&a, n, k, scheme);
                let mut y = vec![f32::NAN; rows * n];
                StoredPanels::new(&m).product(&x, rows, Some(&b), &mut y, n, n);
                // int8 also quantizes x: half a step of x's scale on each term.
                let tol = if let Scheme::Int8(_) = scheme { 0.5 / 127.0 * k as f64 + 1e-5 } else { 1e-5 };
                for (got, want) in y.iter().zip(reference(&x, rows, &m, &b)) {
                    assert!(
                        (*got as f64 - want).abs() <= tol * want.abs().max(1.0),
                        "{scheme} k={k} n={n}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_row_is_the_same_alone_and_among_others_and_leading_columns_stay_put() {
        let (k, n) = (40, 100);
        let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.13).cos()).collect();
        let x: Vec<f32> = (0..3 * k).map(|i| (i as f32 * 0.9).sin()).collect();
        for scheme in Scheme::ALL {
            let p = StoredPanels::new(&StoredMatrix::quantize(&a, n, k, scheme));
            let mut all = vec![0.0; 3 * n];
            p.product(&x, 3, None, &mut all, n, n);
            let mut one = vec![0.0; n];
            p.product(&x[k..2 * k], 1, None, &mut one, n, n);
            assert_eq!(one, all[n..2 * n], "{scheme}");
            let mut leading = vec![-1.0; n + 5];
            p.product(&x[k..2 * k], 1, None, &mut leading, n + 5, 70);
            assert_eq!(leading[..70], one[..70], "{scheme}");
            assert!(leading[70..].iter().all(|&v| v == -1.0));
        }
        let _ = Int8Scale::Row;
    }

    /// Every path this CPU has for `p`'s format, the portable one first, whatever `RECUR_SIMD` chose.
    fn paths(p: &StoredPanels) -> Vec<Path> {
        #[cfg(target_arch = "x86_64")]
        let vector = [Path::Avx2, Path::Avx512];
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let vector = [Path::Simd128];
        #[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
        let vector: [Path; 0] = [];
        std::iter::once(Path::Portable).chain(vector.into_iter().filter(|&path| p.has(path))).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn every_path_gives_the_portable_bits() {
        let mut checked = std::collections::HashSet::new();
        for k in [0, 1, 3, 5, 130] {
            for n in [1, 17, 64, 65, 256] {
                let rows = 3;
                let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
                let mut x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.71).cos() * 2.0).collect();
                // A row of zeros, and a row whose values fall on ties of its quantization grid.
                if k > 0 {
                    x[k..2 * k].fill(0.0);
                    for (i, v) in x[2 * k..].iter_mut().enumerate() {
                        *v = [127.0, 0.5, -2.5, 3.5, -0.0][i % 5];
                    }
                }
                let b: Vec<f32> = (0..n + 3).map(|i| (i as f32 * 0.3).sin()).collect();
                for scheme in Scheme::ALL {
                    let p = StoredPanels::new(&StoredMatrix::quantize(&a, n, k, scheme));
                    for columns in [n, n / 2, n.saturating_sub(1)] {
                        for bias in [Some(&b[..]), None] {
                            let stride = columns + 5;
                            let run = |path| {
                                let mut y = vec![-7.0f32; rows * stride];
                                p.product_on(path, &x, rows, bias, &mut y, stride, columns);
                                y
                            };
                            let want = run(Path::Portable);
                            for (r, row) in want.chunks(stride).enumerate() {
                                assert!(row[columns..].iter().all(|&v| v == -7.0), "{scheme} row {r}: past columns");
                            }
                            for path in paths(&p) {
                                checked.insert(format!("{scheme} {path:?}"));
                                let got = run(path);
                                assert_eq!(bits(&got), bits(&want), "{scheme} {path:?} k={k} n={n} columns={columns}");
                            }
                        }
                    }
                }
            }
        }
        eprintln!("paths checked: {checked:?}");
    }

    #[test]
    fn rows_in_blocks_give_each_row_its_own_bits() {
        for (k, n) in [(0, 9), (1, 1), (5, 17), (7, 64), (130, 65), (64, 200)] {
            let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.53).sin() * 1.5).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            for rows in 1..=9 {
                let mut x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.71).cos() * (1 + i % 3) as f32).collect();
                // A row of zeros, a row on ties of its quantization grid and a row with a NaN among the others.
                for (r, row) in x.chunks_mut(k.max(1)).enumerate().take(rows) {
                    match r % 4 {
                        1 => row.fill(0.0),
                        2 => row.iter_mut().enumerate().for_each(|(i, v)| *v = [127.0, 0.5, -2.5, 3.5, -0.0][i % 5]),
                        3 if r > 4 => row[0] = f32::NAN,
                        _ => {}
                    }
                }
                for scheme in Scheme::ALL {
                    let p = StoredPanels::new(&StoredMatrix::quantize(&a, n, k, scheme));
                    for path in paths(&p) {
                        for (columns, stride) in [(n, n), (n, n + 3), (n / 2, n), (n.saturating_sub(1), 2 * n + 1)] {
                            for bias in [Some(&b[..]), None] {
                                let mut all = vec![-7.0f32; rows * stride];
                                p.product_on(path, &x, rows, bias, &mut all, stride, columns);
                                for r in 0..rows {
                                    let one = |path| {
                                        let mut one = vec![-7.0f32; stride];
                                        p.product_on(path, &x[r * k..(r + 1) * k], 1, bias, &mut one, stride, columns);
                                        bits(&one)
                                    };
                                    let want = one(path);
                                    assert_eq!(want, one(Path::Portable), "{scheme} {path:?} k={k} n={n} alone");
                                    assert_eq!(
                                        bits(&all[r * stride..(r + 1) * stride]),
                                        want,
                                        "{scheme} {path:?} k={k} n={n} rows={rows} row {r} columns={columns}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The 512-bit f16 kernel, which the dispatch leaves out on some CPUs, against the portable one.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_f16_kernel_gives_the_portable_bits() {
        use crate::kernels::simd::{SimdLevel, detected};
        if detected() < SimdLevel::Avx512 || !std::arch::is_x86_feature_detected!("f16c") {
            return;
        }
        for (k, n) in [(0, 17), (1, 1), (3, 64), (5, 65), (130, 256)] {
            let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
            let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.71).cos() * 2.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
            let p = StoredPanels::new(&StoredMatrix::quantize(&a, n, k, Scheme::F16));
            let Panels::F16(panels) = &p.panels else { unreachable!() };
            // Three rows: `x`, `x` negated and `x` halved.
            let three: Vec<f32> = [1.0, -1.0, 0.5].iter().flat_map(|&c| x.iter().map(move |v| c * v)).collect();
            for columns in [n, n / 2] {
                for bias in [Some(&b[..]), None] {
                    let mut want = vec![-7.0f32; 3 * columns];
                    for r in 0..3 {
                        let (x, y) = (&three[r * k..(r + 1) * k], &mut want[r * columns..(r + 1) * columns]);
                        widened_row(x, panels, super::super::f16_to_f32, |j| j, bias, y);
                    }
                    let mut got = vec![-7.0f32; columns];
                    // SAFETY: the CPU has AVX-512F, FMA and F16C (checked above).
                    unsafe { super::super::x86::f16_rows_avx512::<1>(&x, panels, bias, [&mut got]) };
                    assert_eq!(bits(&got), bits(&want[..columns]), "k={k} n={n} columns={columns}");
                    let mut got = vec![-7.0f32; 3 * columns];
                    let (y0, rest) = got.split_at_mut(columns);
                    let (y1, y2) = rest.split_at_mut(columns);
                    // SAFETY: as above.
                    unsafe { super::super::x86::f16_rows_avx512::<3>(&three, panels, bias, [y0, y1, y2]) };
                    assert_eq!(bits(&got), bits(&want), "three rows, k={k} n={n} columns={columns}");
                }
            }
        }
    }

    #[test]
    fn the_vector_quantizations_give_the_portable_bits() {
        let specials = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -3.5, 1e-40, -1e-42, 127.0, 63.5, f32::NAN, 3.0e38, -1.0];
        let mut cases: Vec<Vec<f32>> =
            (0..40).map(|len| (0..len).map(|i| (i as f32 * 1.3).sin() * 9.0).collect()).collect();
        for len in [1, 7, 8, 9, 16, 17, 33] {
            cases.push((0..len).map(|i| specials[i % specials.len()]).collect());
            cases.push((0..len).map(|i| specials[(i * 5 + 3) % specials.len()] * 0.25).collect());
            // Ties of the grid: max 127 makes the scale 1.
            cases.push((0..len).map(|i| if i == 0 { 127.0 } else { i as f32 - 0.5 }).collect());
            // Denormal rows, whose scale is coarse.
            cases.push((0..len).map(|i| f32::from_bits(1 + (i as u32 * 37) % 300)).collect());
            cases.push((0..len).map(|i| if i == len / 2 { f32::INFINITY } else { 1.0 }).collect());
            cases.push(vec![0.0; len]);
        }
        for x in &cases {
            let mut want = vec![5i8; x.len() + 2];
            let ws = quantize_portable(x, &mut want);
            let mut got = vec![5i8; x.len() + 2];
            let gs = quantize_row(x, &mut got);
            assert_eq!((gs.to_bits(), &got), (ws.to_bits(), &want), "{x:?}");
            #[cfg(target_arch = "x86_64")]
            {
                use crate::kernels::simd::{SimdLevel, detected};
                type Quantize = unsafe fn(&[f32], &mut [i8]) -> f32;
                let mut paths: Vec<(&str, Quantize)> = Vec::new();
                if detected() >= SimdLevel::Avx2 {
                    paths.push(("avx2", super::super::x86::quantize_avx2));
                }
                if detected() >= SimdLevel::Avx512 {
                    paths.push(("avx512", super::super::x86::quantize_avx512));
                }
                for (name, path) in paths {
                    for extra in [0, 2] {
                        let mut got = vec![5i8; x.len() + extra];
                        // SAFETY: each path was added only when the CPU has its instructions.
                        let gs = unsafe { path(x, &mut got) };
                        let mut want = vec![5i8; x.len() + extra];
                        let ws = quantize_portable(x, &mut want);
                        assert_eq!((gs.to_bits(), &got), (ws.to_bits(), &want), "{name} {x:?}");
                    }
                }
            }
        }
    }
}
