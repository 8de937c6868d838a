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

/// A panel's 64 sums in four registers, starting from its bias `b` (the panel's `cols ≤ 64` values), or zero.
/// Callable without `unsafe` only from code built for AVX-512F itself.
#[target_feature(enable = "avx512f")]
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

/// [`panel_start_avx512`] in eight 8-lane registers.
#[target_feature(enable = "avx2")]
fn panel_start_avx2(bias: Option<&[f32]>) -> [__m256; 8] {
    let mut start = [0.0f32; PANEL];
    if let Some(b) = bias {
        start[..b.len()].copy_from_slice(b);
    }
    // SAFETY: `start` holds PANEL = 64 values, and this reads the 8 from `8c`.
    std::array::from_fn(|c| unsafe { _mm256_loadu_ps(start.as_ptr().add(8 * c)) })
}

/// [`panel_store_avx512`] from eight 8-lane registers.
#[target_feature(enable = "avx2")]
fn panel_store_avx2(acc: [__m256; 8], y: &mut [f32]) {
    let mut out = [0.0f32; PANEL];
    for (c, acc) in acc.into_iter().enumerate() {
        // SAFETY: `out` holds PANEL = 64 values, and this writes the 8 from `8c`.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), acc) };
    }
    y.copy_from_slice(&out[..y.len()]);
}

/// One row of an f16 product, `y_j = b_j + Σ_k x_k·w_kj` in `k` order, a panel's 64 sums in four registers and
/// each weight widened exactly in a register (`vcvtph2ps`).
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn f16_row_avx512(x: &[f32], panels: &[u16], bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let cols = y_panel.len();
        let mut acc = panel_start_avx512(bias.map(|b| &b[p * PANEL..p * PANEL + cols]));
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            let xv = _mm512_set1_ps(xk);
            for (c, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `row` holds PANEL = 64 values, and this reads the 16 from `16c`.
                let h = unsafe { _mm256_loadu_si256(row.as_ptr().add(16 * c).cast()) };
                *acc = _mm512_fmadd_ps(xv, _mm512_cvtph_ps(h), *acc);
            }
        }
        panel_store_avx512(acc, y_panel);
    }
}

/// [`f16_row_avx512`] in eight 8-lane registers.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_row_avx2(x: &[f32], panels: &[u16], bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let cols = y_panel.len();
        let mut acc = panel_start_avx2(bias.map(|b| &b[p * PANEL..p * PANEL + cols]));
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            let xv = _mm256_set1_ps(xk);
            for (c, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `row` holds PANEL = 64 values, and this reads the 8 from `8c`.
                let h = unsafe { _mm_loadu_si128(row.as_ptr().add(8 * c).cast()) };
                *acc = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(h), *acc);
            }
        }
        panel_store_avx2(acc, y_panel);
    }
}

/// One row of a bf16 product, `y_j = b_j + Σ_k x_k·w_kj` in `k` order, a panel's 64 sums in four registers. In
/// the panels' order of columns ([`super::product::bf16_position`]) each 64-byte load holds 32 columns, two to a
/// 32-bit lane: a shift left by 16 widens the first 16 exactly, and clearing the low halves the next 16.
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn bf16_row_avx512(x: &[f32], panels: &[u16], bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    let upper = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let cols = y_panel.len();
        let mut acc = panel_start_avx512(bias.map(|b| &b[p * PANEL..p * PANEL + cols]));
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            let xv = _mm512_set1_ps(xk);
            for half in 0..2 {
                // SAFETY: `row` holds PANEL = 64 values, and this reads the 32 from `32·half`.
                let w = unsafe { _mm512_loadu_si512(row.as_ptr().add(32 * half).cast()) };
                let low = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w));
                let high = _mm512_castsi512_ps(_mm512_and_si512(w, upper));
                acc[2 * half] = _mm512_fmadd_ps(xv, low, acc[2 * half]);
                acc[2 * half + 1] = _mm512_fmadd_ps(xv, high, acc[2 * half + 1]);
            }
        }
        panel_store_avx512(acc, y_panel);
    }
}

/// [`bf16_row_avx512`] in eight 8-lane registers: a 32-byte load holds 8 columns and the 8 that are 16 further.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn bf16_row_avx2(x: &[f32], panels: &[u16], bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    let upper = _mm256_set1_epi32(0xffff_0000_u32 as i32);
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let cols = y_panel.len();
        let mut acc = panel_start_avx2(bias.map(|b| &b[p * PANEL..p * PANEL + cols]));
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            let xv = _mm256_set1_ps(xk);
            for half in 0..2 {
                for c in 0..2 {
                    // SAFETY: `row` holds PANEL = 64 values, and this reads the 16 from `32·half + 16c`.
                    let w = unsafe { _mm256_loadu_si256(row.as_ptr().add(32 * half + 16 * c).cast()) };
                    let low = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w));
                    let high = _mm256_castsi256_ps(_mm256_and_si256(w, upper));
                    // Columns `32·half + 8c + i` and those 16 further.
                    acc[4 * half + c] = _mm256_fmadd_ps(xv, low, acc[4 * half + c]);
                    acc[4 * half + 2 + c] = _mm256_fmadd_ps(xv, high, acc[4 * half + 2 + c]);
                }
            }
        }
        panel_store_avx2(acc, y_panel);
    }
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

/// One row of an int8 product with AVX-512 VNNI: `vpdpbusd` multiplies unsigned bytes by signed ones, so the row
/// goes in as `q + 128` (the sign bit of each byte flipped) and each column's `128·Σ_k w_kj` (`offsets`) comes off
/// the sums afterwards, all in wrapping `i32` arithmetic, which makes the result the exact `Σ_k q_k·w_kj`. Each
/// panel's 64 sums are in `4·SETS` registers.
///
/// `q` is the row quantized and padded to whole groups, `sx` its scale; `scales` and `offsets` are padded to
/// whole panels.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn int8_row_vnni(
    q: &mut [i8],
    sx: f32,
    panels: &[i8],
    scales: &[f32],
    offsets: &[i32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let groups = q.len() / QUAD;
    // Flip the bytes once for the whole row, and back at the end: the buffer is the caller's.
    q.iter_mut().for_each(|v| *v ^= i8::MIN);
    let row: &[i8] = q;
    // A group of the row as the 32-bit lane `vpdpbusd` takes: four bytes, the first lowest.
    let quad = |bytes: &[i8]| i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]].map(|b| b as u8));
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut acc = [[_mm512_setzero_si512(); 4]; SETS];
        let (mut runs, mut x_runs) = (panel.chunks_exact(SETS * GROUP), row.chunks_exact(SETS * QUAD));
        for (run, x_run) in runs.by_ref().zip(x_runs.by_ref()) {
            for (set, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_epi32(quad(&x_run[set * QUAD..]));
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `run` holds SETS·GROUP bytes, and this reads the 64 from `set·GROUP + 64c`.
                    let w = unsafe { _mm512_loadu_si512(run.as_ptr().add(set * GROUP + 64 * c).cast()) };
                    *acc = _mm512_dpbusd_epi32(*acc, xv, w);
                }
            }
        }
        for (group, x_quad) in runs.remainder().chunks_exact(GROUP).zip(x_runs.remainder().chunks_exact(QUAD)) {
            let xv = _mm512_set1_epi32(quad(x_quad));
            for (c, acc) in acc[0].iter_mut().enumerate() {
                // SAFETY: `group` holds GROUP = 256 bytes, and this reads the 64 from `64c`.
                let w = unsafe { _mm512_loadu_si512(group.as_ptr().add(64 * c).cast()) };
                *acc = _mm512_dpbusd_epi32(*acc, xv, w);
            }
        }
        let sums: [__m512i; 4] =
            std::array::from_fn(|c| acc[1..].iter().fold(acc[0][c], |sum, set| _mm512_add_epi32(sum, set[c])));
        let cols = y_panel.len();
        let (scales, offsets) = (&scales[p * PANEL..(p + 1) * PANEL], &offsets[p * PANEL..(p + 1) * PANEL]);
        let bias = bias.map(|b| &b[p * PANEL..p * PANEL + cols]);
        let sxv = _mm512_set1_ps(sx);
        for (c, sum) in sums.into_iter().enumerate() {
            let lanes = lanes16(cols, c);
            if lanes == 0 {
                break;
            }
            // SAFETY: `scales` and `offsets` hold PANEL = 64 values, and these read the 16 from `16c`.
            let (s, offset) = unsafe {
                (_mm512_loadu_ps(scales.as_ptr().add(16 * c)), _mm512_loadu_si512(offsets.as_ptr().add(16 * c).cast()))
            };
            let sum = _mm512_sub_epi32(sum, offset);
            let b = match bias {
                // SAFETY: lanes are set only for columns `16c + i < cols = b.len()`, so `16c` is within `b`, and
                // a masked load reads only the lanes set.
                Some(b) => unsafe { _mm512_maskz_loadu_ps(lanes, b.as_ptr().add(16 * c)) },
                None => _mm512_setzero_ps(),
            };
            let out = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(sxv, s)), b);
            // SAFETY: as for the bias, with `y_panel` of `cols` values.
            unsafe { _mm512_mask_storeu_ps(y_panel.as_mut_ptr().add(16 * c), lanes, out) };
        }
    }
    q.iter_mut().for_each(|v| *v ^= i8::MIN);
}

/// One row of an int8 product with AVX2: the bytes widened to `i16` and multiplied in pairs into `i32`
/// (`vpmaddwd`: products of bytes cannot saturate it), so each 32-bit lane holds half of a column's four terms
/// of a group, the two halves added at the end. A panel is walked in two halves of 32 columns, whose 64 partial
/// sums fill eight registers.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn int8_row_avx2(
    q: &[i8],
    sx: f32,
    panels: &[i8],
    scales: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let groups = q.len() / QUAD;
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut sums = [0i32; PANEL];
        for half in 0..2 {
            let mut acc = [_mm256_setzero_si256(); 8];
            for (quad, group) in q.chunks_exact(QUAD).zip(panel.chunks_exact(GROUP)) {
                let quad = i32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]].map(|b| b as u8));
                let xv = _mm256_cvtepi8_epi16(_mm_set1_epi32(quad));
                let half = &group[half * GROUP / 2..(half + 1) * GROUP / 2];
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `half` holds GROUP / 2 = 128 bytes, and this reads the 16 from `16c`.
                    let w = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(half.as_ptr().add(16 * c).cast()) });
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xv, w));
                }
            }
            let mut partial = [0i32; 64];
            for (c, acc) in acc.into_iter().enumerate() {
                // SAFETY: `partial` holds 64 values, and this writes the 8 from `8c`.
                unsafe { _mm256_storeu_si256(partial.as_mut_ptr().add(8 * c).cast(), acc) };
            }
            for (sum, pair) in sums[half * PANEL / 2..(half + 1) * PANEL / 2].iter_mut().zip(partial.chunks_exact(2)) {
                *sum = pair[0].wrapping_add(pair[1]);
            }
        }
        finish_int8(&sums, sx, &scales[p * PANEL..(p + 1) * PANEL], bias.map(|b| &b[p * PANEL..]), y_panel);
    }
}
