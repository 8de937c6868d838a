//! A minimal dense `f32` tensor: a shape and row-major (C order) data. recur's public API speaks in tensors; its
//! kernels speak in slices.

use crate::error::{Error, Result};

/// A dense, row-major `f32` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor from its shape and row-major data.
    ///
    /// Fails when `data.len()` is not the product of `shape`.
    pub fn new(shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Result<Self> {
        let shape = shape.into();
        // Checked: a shape read from a file can have dimensions whose product wraps around to the data's length.
        let Some(expected) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
            return Err(Error::shape("tensor", "dimensions whose product fits in memory", &shape));
        };
        if expected != data.len() {
            return Err(Error::DataLength { shape, expected, found: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Vec<usize>>) -> Self {
        let shape = shape.into();
        let len = shape.iter().product();
        Tensor { shape, data: vec![0.0; len] }
    }

    /// Internal constructor for shapes the library computed itself.
    pub(crate) fn from_parts(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The row-major data.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The row-major data, mutably.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor and returns its data.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(self, shape: impl Into<Vec<usize>>) -> Result<Self> {
        Tensor::new(shape, self.data)
    }

    /// Largest absolute element-wise difference to `other`, or `None` when the shapes differ.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f32> {
        if self.shape != other.shape {
            return None;
        }
        Some(self.data.iter().zip(&other.data).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())))
    }
}

/// Swaps the first two axes of a rank-3 row-major array `(a, b, c)` into `(b, a, c)`.
///
/// This is how batch-first input becomes time-major and back. A large array is copied on two threads, each
/// filling half of the output's rows: this runs before and after a layer's time loop, where the other core would
/// otherwise wait.
pub(crate) fn swap_leading_axes(data: &[f32], a: usize, b: usize, c: usize) -> Vec<f32> {
    // Often a buffer a previous pass handed back: already mapped, no page faults. Every value is written below.
    let mut out = crate::scratch::take_unzeroed(data.len());
    fill_swapped(data, a, b, c, 0..b, &mut out);
    out
}

/// Values from which [`swap_leading_axes`] copies on two threads.
const PARALLEL_SWAP_VALUES: usize = 1 << 18;

/// Rows `rows` of the swapped array (each `a·c` values) into `out`.
fn fill_swapped(data: &[f32], a: usize, b: usize, c: usize, rows: std::ops::Range<usize>, out: &mut [f32]) {
    if out.len() >= PARALLEL_SWAP_VALUES && rows.len() >= 2 && rayon::current_num_threads() > 1 {
        let mid = rows.start + rows.len() / 2;
        let (low, high) = out.split_at_mut((mid - rows.start) * a * c);
        rayon::join(
            || fill_swapped(data, a, b, c, rows.start..mid, low),
            || fill_swapped(data, a, b, c, mid..rows.end, high),
        );
        return;
    }
    if a * c == 0 {
        return;
    }
    for (j, row) in rows.zip(out.chunks_exact_mut(a * c)) {
        for (i, to) in row.chunks_exact_mut(c).enumerate() {
            let src = (i * b + j) * c;
            to.copy_from_slice(&data[src..src + c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        assert!(Tensor::new([2, 3], vec![0.0; 6]).is_ok());
        let err = Tensor::new([2, 3], vec![0.0; 5]).unwrap_err();
        assert!(err.to_string().contains("needs 6 values, found 5"), "{err}");
    }

    #[test]
    fn swap_leading_axes_transposes() {
        // (2, 3, 1): rows [0 1 2] [3 4 5] -> (3, 2, 1): [0 3] [1 4] [2 5]
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(swap_leading_axes(&data, 2, 3, 1), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let back = swap_leading_axes(&swap_leading_axes(&data, 2, 3, 1), 3, 2, 1);
        assert_eq!(back, data);
        assert!(swap_leading_axes(&[], 0, 4, 3).is_empty() && swap_leading_axes(&[], 4, 3, 0).is_empty());
    }

    #[test]
    fn a_large_swap_on_two_threads_is_the_plain_transpose() {
        let (a, b, c) = (33, 50, 200);
        assert!(a * b * c >= PARALLEL_SWAP_VALUES);
        let data: Vec<f32> = (0..a * b * c).map(|v| v as f32).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let got = pool.install(|| swap_leading_axes(&data, a, b, c));
        for j in 0..b {
            for i in 0..a {
                assert_eq!(got[(j * a + i) * c..][..c], data[(i * b + j) * c..][..c], "({j}, {i})");
            }
        }
    }
}
