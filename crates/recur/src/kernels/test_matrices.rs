//! Test inputs and the plain reference product shared by the kernels' tests.

/// `len` values in `[-1, 1)` from a fixed hash of the index, different for each `seed`.
pub(crate) fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32) / 500.0 - 1.0).collect()
}

/// The plain reference `C = A·B` for row-major `A` (`m × k`) and `B` (`k × n`), summed in f64.
pub(crate) fn reference_product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        }
    }
    c
}
