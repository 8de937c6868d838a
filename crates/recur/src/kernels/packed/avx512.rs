//! The AVX-512 tile kernel: up to 12 rows × two adjacent panels (32 columns), the block in 24 of the 32 `zmm`
//! registers. Each step along `K` loads one vector from each panel and broadcasts one value of each row of `A`:
//! 14 loads for 24 multiply-adds of 16 lanes, where a one-panel tile would need one load per multiply-add and be
//! bound by the loads.

use std::arch::x86_64::*;

use super::{MAX_MR, Mode, NR, RawTile, TileCall, TileKernel, tile_heights};

/// Steps along `K` (cache lines of each panel) that the tile prefetches ahead. The panels come from L2 and the
/// hottest instruction of the loop was the load of `B`; prefetching 8 lines ahead made the `B32 H256` LSTM forward
/// 9–14% faster in place (alternating runs; 16 lines ahead did no better).
const PREFETCH: usize = 8;

/// Rows per tile: `2·MR` accumulators, two vectors of `B` and a broadcast of `A` within the 32 registers.
const MR: usize = MAX_MR;

/// The kernel, for a CPU with AVX-512F, AVX2 and FMA (only [`super::tile_f32_kernel`] hands it out, after
/// checking).
pub(super) const KERNEL: TileKernel<f32> = TileKernel { run: tiles_checked, rows: MR, panels: 2 };

/// The safe face of [`tiles`].
///
/// # Panics
/// When the CPU lacks AVX-512F, or a slice is too short for the shapes (caller bugs).
fn tiles_checked(call: TileCall<'_, f32>) {
    assert!(std::arch::is_x86_feature_detected!("avx512f"));
    let count = call.count;
    let (rows, raw) = RawTile::checked(call, 2);
    // SAFETY: the CPU has AVX-512F (asserted above); `RawTile::checked` guarantees that rows `0..rows` of `A` (`k`
    // values each, stride `lda`), `k·NR` values of each of the `count` panels (`stride` apart), `count·NR` values
    // of the bias (when there is one) and `count·NR` values at the start of each of the `rows` rows of `C` (stride
    // `ldc`) are in bounds, and each tile reads and writes only its own rows among them.
    unsafe {
        match count {
            1 => tiles::<1>(rows, raw),
            _ => tiles::<2>(rows, raw),
        }
    }
}

/// [`tile`] over `rows` rows, in the tiles of [`tile_heights`].
///
/// # Safety
/// As [`tile`], for `rows` rows of `A` and `C`.
#[target_feature(enable = "avx512f")]
unsafe fn tiles<const P: usize>(rows: usize, raw: RawTile<f32>) {
    for (row, height) in tile_heights(rows, MR) {
        // SAFETY: `row + height ≤ rows`, so the tile's rows are among those the caller guarantees.
        unsafe {
            let args = raw.at_row(row);
            match height {
                1 => tile::<1, P>(args),
                2 => tile::<2, P>(args),
                3 => tile::<3, P>(args),
                4 => tile::<4, P>(args),
                5 => tile::<5, P>(args),
                6 => tile::<6, P>(args),
                7 => tile::<7, P>(args),
                8 => tile::<8, P>(args),
                9 => tile::<9, P>(args),
                10 => tile::<10, P>(args),
                11 => tile::<11, P>(args),
                _ => tile::<12, P>(args),
            }
        }
    }
}

/// `C[..R][..16·P] ← start + A[..R]·[panel₀ … panel_{P−1}]`, the `R × 16P` block held in `R·P` vector registers
/// while `k` is walked, then combined with what `mode` says (`Zero`: nothing, `Accumulate`: `C`'s old values,
/// `Bias`: the `16·P` values at `bias` on every row) and stored.
///
/// # Safety
/// The CPU must have AVX-512F; `a` must point at `R` rows of `k` readable values with stride `lda`, `panels` at
/// `P` panels of `k·NR` readable values `stride` apart, `bias` (with `Bias`) at `16·P`, and `c` at `R` rows of
/// `16·P` writable values with stride `ldc`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize, const P: usize>(raw: RawTile<f32>) {
    let RawTile { k, a, lda, panels, stride, mode, bias, c, ldc } = raw;
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    for p in 0..k {
        // SAFETY: `p < k`, so `panels + q·stride + p·NR + 16` for `q < P` and `a + r·lda + p` for `r < R` stay
        // inside what the caller guarantees.
        unsafe {
            let mut b = [_mm512_setzero_ps(); P];
            for (q, bq) in b.iter_mut().enumerate() {
                let at = panels.add(q * stride + p * NR);
                // A prefetch never faults: past the panel's end it only fetches a line that is not needed.
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH * NR) as *const i8);
                *bq = _mm512_loadu_ps(at);
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                for (acc_rq, &bq) in acc_r.iter_mut().zip(&b) {
                    *acc_rq = _mm512_fmadd_ps(av, bq, *acc_rq);
                }
            }
        }
    }
    // SAFETY: row `r < R` of `C` holds `16·P` values at `c + r·ldc`, and `bias` `16·P` when `mode` is `Bias`.
    unsafe {
        let mut base = [_mm512_setzero_ps(); P];
        if mode == Mode::Bias {
            for (q, v) in base.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(bias.add(q * NR));
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let out = c.add(r * ldc);
            for (q, (&sum, &b)) in acc_r.iter().zip(&base).enumerate() {
                let old = if mode == Mode::Accumulate { _mm512_loadu_ps(out.add(q * NR)) } else { b };
                _mm512_storeu_ps(out.add(q * NR), _mm512_add_ps(old, sum));
            }
        }
    }
}
