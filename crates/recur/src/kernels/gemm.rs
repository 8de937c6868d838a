//! Dense matrix products, `C ← A·B + β·C`, on strided views of `f32` (or `f64`) slices.
//!
//! recur's large products (the input projection of all time steps, the input gradients and the weight gradients
//! after the time loop) go through [`gemm()`]. It wraps the `gemm` crate, which detects the CPU's vector units at
//! run time. Measured against `matrixmultiply` on recur's shapes (AMD EPYC Zen 3, AVX2): equal or faster on the
//! large products. The per-step recurrent product does not come here: the crate packs its right operand on every
//! call, so steps use [`super::packed`], whose weights are packed once per pass.

use super::Real;

/// A read-only strided view of a row-major or transposed matrix inside a slice.
#[derive(Debug)]
pub struct MatRef<'a, T = f32> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MatRef<'_, T> {}

impl<'a, T> MatRef<'a, T> {
    /// A `rows × cols` row-major matrix stored contiguously in `data`.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols` (a caller bug, never user input).
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A `rows × cols` matrix whose element `(r, c)` is `data[r * row_stride + c * col_stride]`.
    ///
    /// # Panics
    /// When the view reaches past the end of `data` (a caller bug, never user input).
    pub fn strided(data: &'a [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        assert!(span(rows, cols, row_stride, col_stride) <= data.len(), "matrix view out of bounds");
        MatRef { data, rows, cols, row_stride, col_stride }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A mutable strided view of a matrix inside a slice.
#[derive(Debug)]
pub struct MatMut<'a, T = f32> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A `rows × cols` row-major matrix stored contiguously in `data`.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols` (a caller bug).
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A `rows × cols` matrix whose element `(r, c)` is `data[r * row_stride + c * col_stride]`.
    ///
    /// # Panics
    /// When the view reaches past the end of `data` (a caller bug).
    pub fn strided(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        assert!(span(rows, cols, row_stride, col_stride) <= data.len(), "matrix view out of bounds");
        MatMut { data, rows, cols, row_stride, col_stride }
    }
}

/// Number of elements a strided view touches, counted from its first element.
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * row_stride + (cols - 1) * col_stride + 1 }
}

/// `C ← A·B + β·C`.
///
/// With `beta == 0.0` the old contents of `C` are ignored (even NaN), as BLAS does.
///
/// # Panics
/// When the inner dimensions or the output shape disagree (a caller bug, never user input).
pub fn gemm<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!((c.rows, c.cols), (a.rows, b.cols), "gemm: output shape differs");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            for col in 0..n {
                let v = &mut c.data[r * c.row_stride + col * c.col_stride];
                *v = if beta == T::zero() { T::zero() } else { beta * *v };
            }
        }
        return;
    }
    // Threads pay off only on products large enough to split.
    let parallelism = if m >= 16 && m * n * k >= PARALLEL_WORK && rayon::current_num_threads() > 1 {
        ::gemm::Parallelism::Rayon(0)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: the asserts in the view constructors guarantee that every index `r * row_stride + c * col_stride`
    // of each view lies inside its slice, the shapes agree (asserted above), and `c` is borrowed mutably so it
    // cannot alias `a` or `b`. Strides fit in isize because they index within allocated slices. The crate computes
    // `dst ← α·dst + β·lhs·rhs`, reading `dst` only when `read_dst` is set, so our β is its α.
    unsafe {
        ::gemm::gemm::<T>(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            c.col_stride as isize,
            c.row_stride as isize,
            beta != T::zero(),
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            beta,
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Multiply-adds (`m·n·k`) from which a product is split across threads.
const PARALLEL_WORK: usize = 1 << 20;

/// Fills each of the `rows` rows of the row-major `out` (`rows × bias.len()`) with `bias`, or with zeros when
/// there is no bias. A product accumulated with `β = 1` onto it then adds the bias for free.
pub fn broadcast_rows<T: Real>(out: &mut [T], bias: Option<&[T]>, width: usize) {
    match bias {
        Some(bias) if width > 0 => out.chunks_exact_mut(width).for_each(|row| row.copy_from_slice(bias)),
        _ => out.fill(T::zero()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_matrices::{reference_product, values};
    use super::*;

    /// The reference product, rounded to f32.
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        reference_product(a, b, m, k, n).into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matches_reference_plain_and_transposed() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (1, 64, 256)] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let want = reference(&a, &b, m, k, n);
            let mut c = vec![f32::NAN; m * n];
            gemm(MatRef::new(&a, m, k), MatRef::new(&b, k, n), 0.0, MatMut::new(&mut c, m, n));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
            // B stored transposed (n × k), as recurrent weights are.
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut c2 = vec![1.0; m * n];
            gemm(MatRef::new(&a, m, k), MatRef::new(&bt, n, k).t(), 1.0, MatMut::new(&mut c2, m, n));
            for (x, y) in c2.iter().zip(&want) {
                assert!((x - (y + 1.0)).abs() < 1e-4, "{x} vs {}", y + 1.0);
            }
        }
    }

    #[test]
    fn empty_inner_dimension_scales_output() {
        let mut c = vec![2.0; 4];
        gemm(MatRef::new(&[], 2, 0), MatRef::new(&[], 0, 2), 0.5, MatMut::new(&mut c, 2, 2));
        assert_eq!(c, vec![1.0; 4]);
    }
}
