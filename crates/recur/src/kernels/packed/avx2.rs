//! The AVX2 tile kernel: up to 6 rows × one panel of 16 columns, the block in 12 of the 16 `ymm` registers.

use std::arch::x86_64::*;

use super::{Mode, NR, RawTile, TileCall, TileKernel, tile_heights};

/// Rows per tile: 12 accumulators, two loads of `B` and a broadcast of `A` fit the 16 registers.
const MR: usize = 6;

/// The kernel, for a CPU with AVX2 and FMA (only [`super::tile_f32_kernel`] hands it out, after checking).
pub(super) const KERNEL: TileKernel<f32> = TileKernel { run: tiles_checked, rows: MR, panels: 1 };

/// The safe face of [`tiles`].
///
/// # Panics
/// When the CPU lacks AVX2 or FMA, or a slice is too short for the shapes (caller bugs).
fn tiles_checked(call: TileCall<'_, f32>) {
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
    let (rows, raw) = RawTile::checked(call, 1);
    // SAFETY: the CPU has AVX2 and FMA (asserted above); `RawTile::checked` guarantees that rows `0..rows` of `A`
    // (`k` values each, stride `lda`), `k·NR` values of the panel, `NR` values of the bias (when there is one) and
    // `NR` values at the start of each of the `rows` rows of `C` (stride `ldc`) are in bounds, and each tile reads
    // and writes only its own rows among them.
    unsafe { tiles(rows, raw) }
}

/// [`tile`] over `rows` rows, in the tiles of [`tile_heights`].
///
/// # Safety
/// As [`tile`], for `rows` rows of `A` and `C`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles(rows: usize, raw: RawTile<f32>) {
    for (row, height) in tile_heights(rows, MR) {
        // SAFETY: `row + height ≤ rows`, so the tile's rows are among those the caller guarantees.
        unsafe {
            let args = raw.at_row(row);
            match height {
                1 => tile::<1>(args),
                2 => tile::<2>(args),
                3 => tile::<3>(args),
                4 => tile::<4>(args),
                5 => tile::<5>(args),
                _ => tile::<6>(args),
            }
        }
    }
}

/// `C[..R][..16] ← start + A[..R]·panel`, the `R × 16` block held in `2R` vector registers while `k` is walked,
/// then combined with what `mode` says (`Zero`: nothing, `Accumulate`: `C`'s old values, `Bias`: the 16 values at
/// `bias` on every row) and stored.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `a` must point at `R` rows of `k` readable values with stride `lda`, `panel` at
/// `k·NR` readable values, `bias` (with `Bias`) at 16, and `c` at `R` rows of 16 writable values with stride `ldc`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(raw: RawTile<f32>) {
    let RawTile { k, a, lda, panels: panel, mode, bias, c, ldc, .. } = raw;
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
    // SAFETY: row `r < R` of `C` holds 16 values at `c + r·ldc`, and `bias` 16 when `mode` is `Bias`.
    unsafe {
        let base = match mode {
            Mode::Bias => [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))],
            _ => [_mm256_setzero_ps(); 2],
        };
        for (r, acc_r) in acc.iter().enumerate() {
            let out = c.add(r * ldc);
            let (lo, hi) = match mode {
                Mode::Accumulate => (_mm256_loadu_ps(out), _mm256_loadu_ps(out.add(8))),
                _ => (base[0], base[1]),
            };
            _mm256_storeu_ps(out, _mm256_add_ps(lo, acc_r[0]));
            _mm256_storeu_ps(out.add(8), _mm256_add_ps(hi, acc_r[1]));
        }
    }
}
