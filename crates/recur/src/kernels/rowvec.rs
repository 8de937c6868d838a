//! The one-row product of a stream step, `y ← b + x·W`, with `W` stored as `K × N` row-major (the transpose of
//! a PyTorch weight). At batch 1 the general product kernels spend most of a step on dispatch and on dot
//! products over short rows; here the row `x` scales whole rows of `W` into `y` (no horizontal sums), four rows at
//! a time, compiled for AVX2 and FMA when the CPU has them (checked at run time) and portably otherwise.

/// `y ← b + x·W` for `x` of `k` values, `W` row-major `k × n` (`w.len() == k·n`), `y` of `n` values; `b` is zero
/// when `None`.
///
/// # Panics
/// When the lengths disagree (a caller bug, never user input).
pub fn row_times(x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let n = y.len();
    assert_eq!(w.len(), x.len() * n, "row_times: weight size");
    match bias {
        Some(b) => y.copy_from_slice(b),
        None => y.fill(0.0),
    }
    if n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above), which is all the function requires.
        unsafe { accumulate_avx2_fma(x, w, y) };
        return;
    }
    accumulate(x, w, y, |a, b, c| a * b + c);
}

/// `y += x·W`, four rows of `W` per pass over `y`.
#[inline(always)]
fn accumulate(x: &[f32], w: &[f32], y: &mut [f32], fma: impl Fn(f32, f32, f32) -> f32) {
    let n = y.len();
    let mut rows = x.chunks_exact(4).zip(w.chunks_exact(4 * n));
    for (xs, block) in &mut rows {
        let (w0, rest) = block.split_at(n);
        let (w1, rest) = rest.split_at(n);
        let (w2, w3) = rest.split_at(n);
        for ((((y, &a), &b), &c), &d) in y.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
            *y = fma(xs[3], d, fma(xs[2], c, fma(xs[1], b, fma(xs[0], a, *y))));
        }
    }
    let done = x.len() / 4 * 4;
    for (&xk, row) in x[done..].iter().zip(w[done * n..].chunks_exact(n)) {
        for (y, &wv) in y.iter_mut().zip(row) {
            *y = fma(xk, wv, *y);
        }
    }
}

/// [`accumulate`] compiled for AVX2 with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2_fma(x: &[f32], w: &[f32], y: &mut [f32]) {
    accumulate(x, w, y, f32::mul_add);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain reference: `y[j] = b[j] + Σ_k x[k]·W[k][j]`, in f64.
    fn reference(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
        let n = b.len();
        (0..n).map(|j| b[j] as f64 + (0..x.len()).map(|k| x[k] as f64 * w[k * n + j] as f64).sum::<f64>()).collect()
    }

    #[test]
    fn matches_a_plain_reference_for_every_remainder() {
        for (k, n) in [(1, 1), (3, 5), (4, 8), (7, 33), (32, 256), (96, 256), (130, 17)] {
            let x: Vec<f32> = (0..k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 11 % 17) as f32 - 8.0) / 8.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.25).collect();
            let mut y = vec![f32::NAN; n];
            row_times(&x, &w, Some(&b), &mut y);
            for (got, want) in y.iter().zip(reference(&x, &w, &b)) {
                assert!((*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "k={k} n={n}: {got} vs {want}");
            }
            let mut y0 = vec![f32::NAN; n];
            row_times(&x, &w, None, &mut y0);
            let zeros = vec![0.0; n];
            for (got, want) in y0.iter().zip(reference(&x, &w, &zeros)) {
                assert!((*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn portable_and_vector_paths_agree() {
        let (k, n) = (37, 70);
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.3).sin()).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).cos()).collect();
        let mut fast = vec![0.0; n];
        row_times(&x, &w, None, &mut fast);
        let mut plain = vec![0.0; n];
        accumulate(&x, &w, &mut plain, |a, b, c| a * b + c);
        for (a, b) in fast.iter().zip(&plain) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
