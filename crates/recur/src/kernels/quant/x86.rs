//! The x86-64 paths of [`super::product`], each the arithmetic of its portable path to the bit (the module
//! documentation there says why that holds). Every function takes safe slices and indexes them checked or within
//! bounds it has just established; what it needs from the caller is only the CPU features it is compiled for.

use std::arch::x86_64::*;

use super::product::{GROUP, PANEL, QUAD, finish_int8, quantize_value, row_scale};

/// Groups of `k` the VNNI loop has in flight, each into its own four registers of sums so that consecutive
/// multiply-adds do not wait for each other. On an AMD EPYC (Zen 4) 2 and 4 measured the same.
const SETS: usize = 2;

/// The lanes of the `c`-th 16-lane vector of a panel that hold one of its first `len` columns.
#[inline(always)]
fn lanes16(len: usize, c: usize) -> __mmask16 {
    let lanes = len.saturating_sub(16 * c).min(16);
    ((1u32 << lanes) - 1) as __mmask16
}

/// `[f(0), …, f(N − 1)]`: `std::array::from_fn` for the kernels, which keeps the calls of `f` in the kernel's own
/// code. The standard library's `from_fn` is built without the vector features, so a closure it calls may stay a
/// call, with its vectors passed through memory.
#[inline(always)]
fn each<T: Copy, const N: usize>(mut f: impl FnMut(usize) -> T) -> [T; N] {
    const { assert!(N > 0) };
    let first = f(0);
    let mut out = [first; N];
    for (c, out) in out.iter_mut().enumerate().skip(1) {
        *out = f(c);
    }
    out
}

/// The values of `bias` at `span`, if there is a bias: a panel's or a part's share of it.
#[inline(always)]
fn share(bias: Option<&[f32]>, span: std::ops::Range<usize>) -> Option<&[f32]> {
    match bias {
        Some(b) => Some(&b[span]),
        None => None,
    }
}

/// A panel's 64 sums in four registers, starting from its bias `b` (the panel's `cols ≤ 64` values), or zero.
/// Callable without `unsafe` only from code built for AVX-512F itself.
#[target_feature(enable = "avx512f")]
#[inline]
fn panel_start_avx512(bias: Option<&[f32]>) -> [__m512; 4] {
    let mut acc = [_mm512_setzero_ps(); 4];
    if let Some(b) = bias {
        for (c, acc) in acc.iter_mut().enumerate() {
            let lanes = lanes16(b.len(), c);
            if lanes != 0 {
                // SAFETY: lanes are set only for columns `16c + i < b.len()`, so `16c` is within `b`, and a masked
                // load reads only the lanes set.
                *acc = unsafe { _mm512_maskz_loadu_ps(lanes, b.as_ptr().add(16 * c)) };
            }
        }
    }
    acc
}

/// Writes a panel's 64 sums to `y` (its `cols ≤ 64` columns), the others dropped.
#[target_feature(enable = "avx512f")]
#[inline]
fn panel_store_avx512(acc: [__m512; 4], y: &mut [f32]) {
    for (c, acc) in acc.into_iter().enumerate() {
        let lanes = lanes16(y.len(), c);
        if lanes != 0 {
            // SAFETY: lanes are set only for columns `16c + i < y.len()`, so `16c` is within `y`, and a masked
            // store writes only the lanes set.
            unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(16 * c), lanes, acc) };
        }
    }
}

/// [`panel_start_avx512`] in `N` 8-lane registers: the sums of `8N ≤ 64` columns from their bias `b` (`cols ≤ 8N`
/// values), or zero.
#[target_feature(enable = "avx2")]
#[inline]
fn part_start_avx2<const N: usize>(bias: Option<&[f32]>) -> [__m256; N] {
    const { assert!(N <= 8) };
    let mut start = [0.0f32; PANEL];
    if let Some(b) = bias {
        start[..b.len()].copy_from_slice(b);
    }
    // SAFETY: `start` holds PANEL = 64 ≥ 8N values, and this reads the 8 from `8c`.
    each(|c| unsafe { _mm256_loadu_ps(start.as_ptr().add(8 * c)) })
}

/// [`panel_store_avx512`] from `N` 8-lane registers: writes the sums of `8N ≤ 64` columns to `y` (its `cols ≤ 8N`
/// columns), the others dropped.
#[target_feature(enable = "avx2")]
#[inline]
fn part_store_avx2<const N: usize>(acc: [__m256; N], y: &mut [f32]) {
    const { assert!(N <= 8) };
    let mut out = [0.0f32; PANEL];
    for (c, acc) in acc.into_iter().enumerate() {
        // SAFETY: `out` holds PANEL = 64 ≥ 8N values, and this writes the 8 from `8c`.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), acc) };
    }
    y.copy_from_slice(&out[..y.len()]);
}

/// `R` rows of an f16 or bf16 product, `y_j = b_j + Σ_k x_k·w_kj` in `k` order: `x` holds the `R` rows one after
/// another and `y` their outputs, all of one length (the columns written). Each row keeps a panel's 64 sums in
/// four registers of its own, and each row of a panel is loaded and widened (`widen`) once for all `R` rows, so
/// a row gets the same multiply-adds in the same order as it would alone, and the weights are read once a block
/// of rows rather than once a row. With `R = 4` the sums fill 16 of the 32 registers.
#[target_feature(enable = "avx512f,fma")]
fn widened_rows_avx512<const R: usize, W>(
    x: &[f32],
    panels: &[W],
    bias: Option<&[f32]>,
    mut y: [&mut [f32]; R],
    widen: impl Fn(&[W; PANEL]) -> [__m512; 4],
) {
    let k = x.len() / R;
    let xs: [&[f32]; R] = each(|r| &x[r * k..(r + 1) * k]);
    let cols = y.first().map_or(0, |y| y.len());
    for p in 0..cols.div_ceil(PANEL) {
        let (panel, _) = panels[p * k * PANEL..(p + 1) * k * PANEL].as_chunks::<PANEL>();
        let span = p * PANEL..cols.min((p + 1) * PANEL);
        let mut acc = [panel_start_avx512(share(bias, span.clone())); R];
        for (i, row) in (0..k).zip(panel) {
            let w = widen(row);
            for (acc, x) in acc.iter_mut().zip(&xs) {
                let xv = _mm512_set1_ps(x[i]);
                for (acc, w) in acc.iter_mut().zip(w) {
                    *acc = _mm512_fmadd_ps(xv, w, *acc);
                }
            }
        }
        for (acc, y) in acc.into_iter().zip(&mut y) {
            panel_store_avx512(acc, &mut y[span.clone()]);
        }
    }
}

/// `R` rows of an f16 product ([`widened_rows_avx512`]), each weight widened exactly in a register
/// (`vcvtph2ps`).
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn f16_rows_avx512<const R: usize>(
    x: &[f32],
    panels: &[u16],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    widened_rows_avx512(x, panels, bias, y, |row| {
        // SAFETY: `row` holds PANEL = 64 values, and this reads the 16 from `16c`.
        each(|c| _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(row.as_ptr().add(16 * c).cast()) }))
    })
}

/// `R` rows of a bf16 product ([`widened_rows_avx512`]). In the panels' order of columns
/// ([`super::product::bf16_position`]) each 64-byte load holds 32 columns, two to a 32-bit lane: a shift left by
/// 16 widens the first 16 exactly, and clearing the low halves the next 16.
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn bf16_rows_avx512<const R: usize>(
    x: &[f32],
    panels: &[u16],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    let upper = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    widened_rows_avx512(x, panels, bias, y, |row| {
        // SAFETY: `row` holds PANEL = 64 values, and this reads the 32 from `32·half`.
        let [first, second] = each(|half| unsafe { _mm512_loadu_si512(row.as_ptr().add(32 * half).cast()) });
        let low = |w| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w));
        let high = |w| _mm512_castsi512_ps(_mm512_and_si512(w, upper));
        [low(first), high(first), low(second), high(second)]
    })
}

/// [`widened_rows_avx2`] with the part width `R` rows take: one row alone the whole panel (`N = 8`), several its
/// halves (`N = 4`).
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_avx2<const R: usize, W>(
    x: &[f32],
    panels: &[W],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
    widen: impl Fn(&[W; 32]) -> [__m256; 4],
) {
    if R == 1 {
        widened_rows_avx2::<R, 8, W>(x, panels, bias, y, widen);
    } else {
        widened_rows_avx2::<R, 4, W>(x, panels, bias, y, widen);
    }
}

/// [`widened_rows_avx512`] in 8-lane registers, `8N` columns of a panel at a time: each row keeps `N` registers
/// of sums, and `widen` gives the 32 columns of a run of a panel's row in four registers, in order. One row alone
/// takes the whole panel (`N = 8`); several take it in halves (`N = 4`), so that their sums fit the 16 registers.
#[target_feature(enable = "avx2,fma,f16c")]
fn widened_rows_avx2<const R: usize, const N: usize, W>(
    x: &[f32],
    panels: &[W],
    bias: Option<&[f32]>,
    mut y: [&mut [f32]; R],
    widen: impl Fn(&[W; 32]) -> [__m256; 4],
) {
    // Parts of whole runs of 32 columns.
    const { assert!(N == 4 || N == 8) };
    let k = x.len() / R;
    let xs: [&[f32]; R] = each(|r| &x[r * k..(r + 1) * k]);
    let cols = y.first().map_or(0, |y| y.len());
    for p in 0..cols.div_ceil(PANEL) {
        let (panel, _) = panels[p * k * PANEL..(p + 1) * k * PANEL].as_chunks::<PANEL>();
        for part in (p * PANEL..cols.min((p + 1) * PANEL)).step_by(8 * N) {
            let span = part..cols.min(part + 8 * N);
            let mut acc = [part_start_avx2::<N>(share(bias, span.clone())); R];
            let runs = part % PANEL / 32..part % PANEL / 32 + N / 4;
            for (i, row) in (0..k).zip(panel) {
                // A run's weights widened and used at once, so that only four registers hold weights.
                let xv: [__m256; R] = each(|r| _mm256_set1_ps(xs[r][i]));
                for (run, w) in row[32 * runs.start..32 * runs.end].as_chunks().0.iter().enumerate() {
                    let w = widen(w);
                    for (acc, &xv) in acc.iter_mut().zip(&xv) {
                        for (acc, w) in acc[4 * run..4 * run + 4].iter_mut().zip(w) {
                            *acc = _mm256_fmadd_ps(xv, w, *acc);
                        }
                    }
                }
            }
            for (acc, y) in acc.into_iter().zip(&mut y) {
                part_store_avx2(acc, &mut y[span.clone()]);
            }
        }
    }
}

/// `R` rows of an f16 product in 8-lane registers ([`rows_avx2`]), each weight widened exactly
/// (`vcvtph2ps`).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_rows_avx2<const R: usize>(
    x: &[f32],
    panels: &[u16],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    let widen = |run: &[u16; 32]| {
        // SAFETY: `run` holds 32 values, and this reads the 8 from `8c`.
        each(|c| _mm256_cvtph_ps(unsafe { _mm_loadu_si128(run.as_ptr().add(8 * c).cast()) }))
    };
    rows_avx2(x, panels, bias, y, widen);
}

/// `R` rows of a bf16 product in 8-lane registers ([`rows_avx2`]): a 32-byte load holds 8 columns and the
/// 8 that are 16 further.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C (which the kernel shares with [`f16_rows_avx2`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn bf16_rows_avx2<const R: usize>(
    x: &[f32],
    panels: &[u16],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    let upper = _mm256_set1_epi32(0xffff_0000_u32 as i32);
    let widen = |run: &[u16; 32]| {
        // SAFETY: `run` holds 32 values, and this reads the 16 from `16c`.
        let [first, second] = each(|c| unsafe { _mm256_loadu_si256(run.as_ptr().add(16 * c).cast()) });
        let low = |w| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w));
        let high = |w| _mm256_castsi256_ps(_mm256_and_si256(w, upper));
        // Columns 0–7, 8–15, 16–23 and 24–31 of the run.
        [low(first), low(second), high(first), high(second)]
    };
    rows_avx2(x, panels, bias, y, widen);
}

/// `R` rows of an `f32` product ([`widened_rows_avx512`] with nothing to widen): the rows of a stream step's
/// batch, each with the multiply-adds [`crate::kernels::rowvec::row_times`] gives it alone.
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn f32_rows_avx512<const R: usize>(
    x: &[f32],
    panels: &[f32],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    widened_rows_avx512(x, panels, bias, y, |row| {
        // SAFETY: `row` holds PANEL = 64 values, and this reads the 16 from `16c`.
        each(|c| unsafe { _mm512_loadu_ps(row.as_ptr().add(16 * c)) })
    })
}

/// `R` rows of an `f32` product in 8-lane registers ([`rows_avx2`] with nothing to widen).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C (the kernel's body is shared with the half formats').
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_rows_avx2<const R: usize>(
    x: &[f32],
    panels: &[f32],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    let load = |run: &[f32; 32]| {
        // SAFETY: `run` holds 32 values, and this reads the 8 from `8c`.
        each(|c| unsafe { _mm256_loadu_ps(run.as_ptr().add(8 * c)) })
    };
    rows_avx2(x, panels, bias, y, load);
}

/// [`super::product::quantize_portable`] 16 values at a time: the maximum is exact in any order, and each value is
/// the same IEEE division followed by a conversion that rounds to nearest, ties to even (explicitly, whatever
/// the rounding mode), with NaNs set to 0 and the clamp in integers.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn quantize_avx512(x: &[f32], q: &mut [i8]) -> f32 {
    let mut most = _mm512_setzero_ps();
    for chunk in x.chunks(16) {
        // SAFETY: the lanes set are the chunk's values; a masked load reads only those.
        let v = unsafe { _mm512_maskz_loadu_ps(lanes16(chunk.len(), 0), chunk.as_ptr()) };
        // `max` returns its second operand when either is NaN, so a NaN of `x` leaves the maximum as it was.
        most = _mm512_max_ps(_mm512_abs_ps(v), most);
    }
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds 16 values.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), most) };
    let max = lanes.iter().fold(0.0f32, |m, &v| m.max(v));
    let Some(scale) = row_scale(max, q) else { return if max.is_finite() { 0.0 } else { f32::NAN } };
    let len = x.len().min(q.len());
    let (x, q) = (&x[..len], &mut q[..len]);
    let (sv, low, high) = (_mm512_set1_ps(scale), _mm512_set1_epi32(-127), _mm512_set1_epi32(127));
    for c in 0..len.div_ceil(16) {
        let lanes = lanes16(len, c);
        // SAFETY: the lanes set are values `16c + i < len` of `x`; a masked load reads only those.
        let v = unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr().add(16 * c)) };
        let d = _mm512_div_ps(v, sv);
        let rounded = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(d);
        let numbers = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(d, d);
        let clamped = _mm512_min_epi32(_mm512_max_epi32(_mm512_maskz_mov_epi32(numbers, rounded), low), high);
        // SAFETY: as for the load, into `q` of `len` values; a masked store writes only the lanes set.
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(q.as_mut_ptr().add(16 * c).cast(), lanes, clamped) };
    }
    scale
}

/// [`quantize_avx512`] 8 values at a time, the rest one by one as the portable path does them.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_avx2(x: &[f32], q: &mut [i8]) -> f32 {
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut most = _mm256_setzero_ps();
    let whole = x.len() / 8 * 8;
    for chunk in x[..whole].chunks_exact(8) {
        // SAFETY: `chunk` holds 8 values.
        let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        // `max` returns its second operand when either is NaN, so a NaN of `x` leaves the maximum as it was.
        most = _mm256_max_ps(_mm256_and_ps(v, magnitude), most);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 values.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), most) };
    let max = lanes.iter().chain(&x[whole..]).fold(0.0f32, |m, &v| m.max(v.abs()));
    let Some(scale) = row_scale(max, q) else { return if max.is_finite() { 0.0 } else { f32::NAN } };
    let len = x.len().min(q.len());
    let (x, q) = (&x[..len], &mut q[..len]);
    let whole = len / 8 * 8;
    let (sv, low, high) = (_mm256_set1_ps(scale), _mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    for (chunk, out) in x[..whole].chunks_exact(8).zip(q[..whole].chunks_exact_mut(8)) {
        // SAFETY: `chunk` holds 8 values.
        let d = _mm256_div_ps(unsafe { _mm256_loadu_ps(chunk.as_ptr()) }, sv);
        let rounded = _mm256_cvtps_epi32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(d));
        let numbers = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(d, d));
        let clamped = _mm256_min_epi32(_mm256_max_epi32(_mm256_and_si256(rounded, numbers), low), high);
        // In range already, so the packs saturate nothing: bytes 0–3 of each 128-bit half are its four values.
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(clamped, clamped), _mm256_setzero_si256());
        out[..4].copy_from_slice(&_mm256_cvtsi256_si32(bytes).to_le_bytes().map(|b| b as i8));
        out[4..].copy_from_slice(&_mm256_extract_epi32::<4>(bytes).to_le_bytes().map(|b| b as i8));
    }
    for (q, &v) in q[whole..].iter_mut().zip(&x[whole..]) {
        *q = quantize_value(v, scale);
    }
    scale
}

/// `R` rows of an int8 product with AVX-512 VNNI: `vpdpbusd` multiplies unsigned bytes by signed ones, so a row
/// goes in as `q + 128` (the sign bit of each byte flipped) and each column's `128·Σ_k w_kj` (`offsets`) comes off
/// the sums afterwards, all in wrapping `i32` arithmetic, which makes each row's result the exact `Σ_k q_k·w_kj`.
/// Each row keeps a panel's 64 sums in registers of its own, and each load of a panel's weights feeds all `R`
/// rows, so the weights are read once a block of rows rather than once a row; the sums being exact, a row's
/// result is what it is alone.
///
/// `q` holds the `R` rows quantized, one after another, each padded to whole groups; `sx` are their scales and
/// `y` their outputs, all of one length (the columns written); `scales` and `offsets` are padded to whole panels.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn int8_rows_vnni<const R: usize>(
    q: &mut [i8],
    sx: [f32; R],
    panels: &[i8],
    scales: &[f32],
    offsets: &[i32],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    // Flip the bytes once for the whole block, and back at the end: the buffer is the caller's.
    q.iter_mut().for_each(|v| *v ^= i8::MIN);
    // One row alone has too few sums to hide the latency of the multiply-adds: it takes SETS groups at a time, each
    // into registers of its own. Several rows have enough in flight with one set.
    if R == 1 {
        vnni_sums::<R, SETS>(q, sx, panels, scales, offsets, bias, y);
    } else {
        vnni_sums::<R, 1>(q, sx, panels, scales, offsets, bias, y);
    }
    q.iter_mut().for_each(|v| *v ^= i8::MIN);
}

/// [`int8_rows_vnni`] on the flipped rows, with `S` groups of `k` in flight, each into `4·R` registers of sums of
/// its own (`S = 1` for several rows: 16 sums for 4 rows, of 32 registers).
#[target_feature(enable = "avx512f,avx512vnni")]
fn vnni_sums<const R: usize, const S: usize>(
    q: &[i8],
    sx: [f32; R],
    panels: &[i8],
    scales: &[f32],
    offsets: &[i32],
    bias: Option<&[f32]>,
    mut y: [&mut [f32]; R],
) {
    let groups = q.len() / R / QUAD;
    // Each row as the 32-bit lanes `vpdpbusd` takes: a group's four bytes, the first lowest.
    let quads: [&[[i8; QUAD]]; R] = each(|r| &q[r * groups * QUAD..(r + 1) * groups * QUAD].as_chunks().0[..groups]);
    let quad = |r: usize, g: usize| _mm512_set1_epi32(i32::from_le_bytes(quads[r][g].map(|b| b as u8)));
    let cols = y.first().map_or(0, |y| y.len());
    for p in 0..cols.div_ceil(PANEL) {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut acc = [[[_mm512_setzero_si512(); 4]; R]; S];
        let mut runs = panel.chunks_exact(S * GROUP);
        for (i, run) in runs.by_ref().enumerate() {
            for (set, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `run` holds S·GROUP bytes, and this reads the 64 from `set·GROUP + 64c`.
                let w: [__m512i; 4] =
                    each(|c| unsafe { _mm512_loadu_si512(run.as_ptr().add(set * GROUP + 64 * c).cast()) });
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xv = quad(r, i * S + set);
                    for (acc, w) in acc.iter_mut().zip(w) {
                        *acc = _mm512_dpbusd_epi32(*acc, xv, w);
                    }
                }
            }
        }
        let done = panel.len() / (S * GROUP) * S;
        for (g, group) in (done..).zip(runs.remainder().chunks_exact(GROUP)) {
            // SAFETY: `group` holds GROUP = 256 bytes, and this reads the 64 from `64c`.
            let w: [__m512i; 4] = each(|c| unsafe { _mm512_loadu_si512(group.as_ptr().add(64 * c).cast()) });
            for (r, acc) in acc[0].iter_mut().enumerate() {
                let xv = quad(r, g);
                for (acc, w) in acc.iter_mut().zip(w) {
                    *acc = _mm512_dpbusd_epi32(*acc, xv, w);
                }
            }
        }
        // `y_j = (sum_j − offset_j)·(sx·s_j) + b_j`: `finish_int8`'s arithmetic, 16 columns a register. Written out
        // here rather than called: a call would pass the sums through memory for every panel.
        let span = p * PANEL..cols.min((p + 1) * PANEL);
        let (scales, offsets) = (&scales[p * PANEL..(p + 1) * PANEL], &offsets[p * PANEL..(p + 1) * PANEL]);
        let bias = share(bias, span.clone());
        for c in 0..4 {
            let lanes = lanes16(span.len(), c);
            if lanes == 0 {
                break;
            }
            // SAFETY: `scales` and `offsets` hold PANEL = 64 values, and these read the 16 from `16c`.
            let (s, offset) = unsafe {
                (_mm512_loadu_ps(scales.as_ptr().add(16 * c)), _mm512_loadu_si512(offsets.as_ptr().add(16 * c).cast()))
            };
            let b = match bias {
                // SAFETY: lanes are set only for columns `16c + i < span.len() = b.len()`, so `16c` is within `b`,
                // and a masked load reads only the lanes set.
                Some(b) => unsafe { _mm512_maskz_loadu_ps(lanes, b.as_ptr().add(16 * c)) },
                None => _mm512_setzero_ps(),
            };
            for (r, y) in y.iter_mut().enumerate() {
                let sum = acc[1..].iter().fold(acc[0][r][c], |sum, set| _mm512_add_epi32(sum, set[r][c]));
                let scale = _mm512_mul_ps(_mm512_set1_ps(sx[r]), s);
                let out = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, offset)), scale), b);
                let y = &mut y[span.clone()];
                // SAFETY: as for the bias, with `y` of `span.len()` values.
                unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(16 * c), lanes, out) };
            }
        }
    }
}

/// `R` rows of an int8 product with AVX2: the bytes widened to `i16` and multiplied in pairs into `i32`
/// (`vpmaddwd`: products of bytes cannot saturate it), so each 32-bit lane holds half of a column's four terms
/// of a group, the two halves added at the end. A panel is walked in parts of `4N` columns, whose partial sums
/// fill `N` registers a row: one row alone takes halves of 32 columns (`N = 8`), several rows quarters (`N = 4`),
/// so that their sums fit the 16 registers. Each load of the weights feeds all `R` rows, and the sums are exact,
/// so a row's result is what it is alone.
///
/// `q` holds the `R` rows quantized, one after another, each padded to whole groups; `sx` are their scales and
/// `y` their outputs, all of one length (the columns written).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn int8_rows_avx2<const R: usize>(
    q: &[i8],
    sx: [f32; R],
    panels: &[i8],
    scales: &[f32],
    bias: Option<&[f32]>,
    y: [&mut [f32]; R],
) {
    if R == 1 {
        int8_parts_avx2::<R, 8>(q, sx, panels, scales, bias, y);
    } else {
        int8_parts_avx2::<R, 4>(q, sx, panels, scales, bias, y);
    }
}

/// [`int8_rows_avx2`] in parts of `4N` columns.
#[target_feature(enable = "avx2")]
fn int8_parts_avx2<const R: usize, const N: usize>(
    q: &[i8],
    sx: [f32; R],
    panels: &[i8],
    scales: &[f32],
    bias: Option<&[f32]>,
    mut y: [&mut [f32]; R],
) {
    // Parts of whole 16-byte loads that divide a panel, their partial sums within 64 values.
    const { assert!(N <= 8 && PANEL.is_multiple_of(4 * N)) };
    let groups = q.len() / R / QUAD;
    let quads: [&[[i8; QUAD]]; R] = each(|r| &q[r * groups * QUAD..(r + 1) * groups * QUAD].as_chunks().0[..groups]);
    // A group of a row as four `i16`, repeated: what `vpmaddwd` multiplies a column's four weights by.
    let quad =
        |r: usize, g: usize| _mm256_cvtepi8_epi16(_mm_set1_epi32(i32::from_le_bytes(quads[r][g].map(|b| b as u8))));
    let cols = y.first().map_or(0, |y| y.len());
    for p in 0..cols.div_ceil(PANEL) {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut sums = [[0i32; PANEL]; R];
        for part in (0..PANEL).step_by(4 * N) {
            let mut acc = [[_mm256_setzero_si256(); N]; R];
            for (g, group) in (0..groups).zip(panel.chunks_exact(GROUP)) {
                let part = &group[part * QUAD..(part + 4 * N) * QUAD];
                // Each load of weights used at once, so that only one register holds weights.
                let xv: [__m256i; R] = each(|r| quad(r, g));
                for c in 0..N {
                    // SAFETY: `part` holds 4N·QUAD = 16N bytes, and this reads the 16 from `16c`.
                    let w = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(part.as_ptr().add(16 * c).cast()) });
                    for (acc, &xv) in acc.iter_mut().zip(&xv) {
                        acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(xv, w));
                    }
                }
            }
            for (acc, sums) in acc.into_iter().zip(&mut sums) {
                let mut partial = [0i32; 64];
                for (c, acc) in acc.into_iter().enumerate() {
                    // SAFETY: `partial` holds 64 ≥ 8N values, and this writes the 8 from `8c`.
                    unsafe { _mm256_storeu_si256(partial.as_mut_ptr().add(8 * c).cast(), acc) };
                }
                for (sum, pair) in sums[part..part + 4 * N].iter_mut().zip(partial.chunks_exact(2)) {
                    *sum = pair[0].wrapping_add(pair[1]);
                }
            }
        }
        let span = p * PANEL..cols.min((p + 1) * PANEL);
        for ((sums, sx), y) in sums.iter().zip(sx).zip(&mut y) {
            finish_int8(sums, sx, &scales[p * PANEL..(p + 1) * PANEL], share(bias, span.clone()), &mut y[span.clone()]);
        }
    }
}
