//! The int8 product for WebAssembly with SIMD128 (compiled in when the build enables `simd128`, as `web/build.sh`
//! does: WebAssembly has no run-time choice of instructions). `i32x4.dot_i16x8_s` multiplies eight pairs of 16-bit
//! values and adds neighbours into four 32-bit lanes: with the row's four values of a group repeated
//! (`q₀ q₁ q₂ q₃ q₀ q₁ q₂ q₃`) against two columns' four weights, each column's sum lands in two lanes, which
//! are added once at the end of the row. The sums are exact in `i32`, so the results are the portable path's
//! bits.

use std::arch::wasm32::*;

use super::product::{GROUP, PANEL, QUAD, finish_int8};

/// Columns one pass over a panel's groups sums: eight accumulators of two columns.
const BLOCK: usize = 16;

/// One row of an int8 product from the row quantized (`q`, padded to whole groups) and its scale `sx`: the
/// portable `int8_row`'s contract and results.
pub(super) fn int8_row_simd128(q: &[i8], sx: f32, panels: &[i8], scales: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let groups = q.len() / QUAD;
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * groups * GROUP..(p + 1) * groups * GROUP];
        let mut sums = [0i32; PANEL];
        // With `k = 0` there are no groups, and every sum is 0.
        let blocks = if groups == 0 { 0 } else { y_panel.len().div_ceil(BLOCK) };
        for (block, sums) in sums.chunks_exact_mut(BLOCK).enumerate().take(blocks) {
            block_sums(q, &panel[block * BLOCK * QUAD..], groups, sums);
        }
        finish_int8(&sums, sx, &scales[p * PANEL..(p + 1) * PANEL], bias.map(|b| &b[p * PANEL..]), y_panel);
    }
}

/// `Σ_k q_k·w_kj` for the `BLOCK` columns of a panel whose weights start at `weights` (`QUAD` bytes a column in
/// each group, groups `GROUP` bytes apart), over at least one group.
fn block_sums(q: &[i8], weights: &[i8], groups: usize, sums: &mut [i32]) {
    assert!(groups > 0 && q.len() >= groups * QUAD && weights.len() >= (groups - 1) * GROUP + BLOCK * QUAD);
    let mut acc = [i32x4_splat(0); BLOCK / 2];
    for g in 0..groups {
        let quad = i32::from_le_bytes(std::array::from_fn(|t| q[g * QUAD + t] as u8));
        let x = i16x8_extend_low_i8x16(i32x4_splat(quad));
        let at = g * GROUP;
        for (pair, acc) in acc.chunks_exact_mut(2).enumerate() {
            // SAFETY: `at + 16·pair + 16 ≤ (groups − 1)·GROUP + BLOCK·QUAD ≤ weights.len()` (asserted above), and
            // `v128_load` reads 16 bytes at any alignment.
            let w = unsafe { v128_load(weights.as_ptr().add(at + 16 * pair).cast::<v128>()) };
            acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(i16x8_extend_low_i8x16(w), x));
            acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(i16x8_extend_high_i8x16(w), x));
        }
    }
    // Lanes 2c and 2c + 1 of a pair of accumulators hold the two halves of column c's sum.
    for (four, acc) in sums.chunks_exact_mut(4).zip(acc.chunks_exact(2)) {
        let even = i32x4_shuffle::<0, 2, 4, 6>(acc[0], acc[1]);
        let odd = i32x4_shuffle::<1, 3, 5, 7>(acc[0], acc[1]);
        let total = i32x4_add(even, odd);
        four.copy_from_slice(&[
            i32x4_extract_lane::<0>(total),
            i32x4_extract_lane::<1>(total),
            i32x4_extract_lane::<2>(total),
            i32x4_extract_lane::<3>(total),
        ]);
    }
}
