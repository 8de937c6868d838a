//! Mean squared error, PyTorch's `nn.MSELoss` with mean reduction, and its gradient.

use super::{RowMask, check_same_len};
use crate::error::Result;
use crate::kernels::Real;

/// Mean squared error between an input `x` and a target `y` of the same length, PyTorch's `nn.MSELoss()`:
///
/// `L = Σᵢ (xᵢ − yᵢ)² / N`, `∂L/∂xᵢ = 2 (xᵢ − yᵢ) / N`
///
/// over the `N` elements that count: all of them, or with a row mask only those of rows marked `true` (the
/// buffers are then read as `mask.len()` equal rows). Masked elements get a zero gradient. With `N = 0` the loss
/// is NaN, as in PyTorch (see [the module](crate::loss)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MseLoss;

impl MseLoss {
    /// The loss, PyTorch's `nn.MSELoss()`.
    pub fn new() -> Self {
        MseLoss
    }

    /// The loss and `∂L/∂x` for `input` and `target` of the same length; `mask` has one entry per row, `true`
    /// where the row counts.
    pub fn forward<T: Real>(&self, input: &[T], target: &[T], mask: Option<&[bool]>) -> Result<(T, Vec<T>)> {
        let mut grad = vec![T::zero(); input.len()];
        let loss = self.forward_into(input, target, mask, &mut grad)?;
        Ok((loss, grad))
    }

    /// [`MseLoss::forward`] writing `∂L/∂x` into a caller's buffer of the input's length.
    pub fn forward_into<T: Real>(&self, input: &[T], target: &[T], mask: Option<&[bool]>, grad: &mut [T]) -> Result<T> {
        check_same_len("target", target.len(), input.len())?;
        check_same_len("gradient", grad.len(), input.len())?;
        let rows = RowMask::new("input", input.len(), mask)?;
        let n = T::from_usize(rows.count(input.len())).unwrap_or_else(T::nan);
        let two_over_n = (T::one() + T::one()) / n;
        let mut sum = T::zero();
        for (i, ((g, &x), &y)) in grad.iter_mut().zip(input).zip(target).enumerate() {
            if rows.counts(i) {
                let d = x - y;
                sum += d * d;
                *g = two_over_n * d;
            } else {
                *g = T::zero();
            }
        }
        Ok(sum / n)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::gradcheck::check;

    #[test]
    fn hand_computed() {
        let (loss, grad) = MseLoss.forward(&[1.0f64, 2.0, 3.0, 4.0], &[0.0, 2.0, 5.0, 4.0], None).unwrap();
        assert_eq!(loss, (1.0 + 4.0) / 4.0);
        assert_eq!(grad, vec![0.5, 0.0, -1.0, 0.0]);

        // Two rows of two; only the second counts.
        let (loss, grad) =
            MseLoss.forward(&[1.0f64, 2.0, 3.0, 4.0], &[0.0, 0.0, 5.0, 4.0], Some(&[false, true])).unwrap();
        assert_eq!(loss, 4.0 / 2.0);
        assert_eq!(grad, vec![0.0, 0.0, -2.0, 0.0]);
    }

    #[test]
    fn nothing_counted_gives_nan_and_zero_gradient_as_pytorch() {
        let (loss, grad) = MseLoss.forward(&[1.0f32, 2.0], &[0.0, 0.0], Some(&[false])).unwrap();
        assert!(loss.is_nan());
        assert_eq!(grad, vec![0.0, 0.0]);
        assert!(MseLoss.forward::<f32>(&[], &[], None).unwrap().0.is_nan());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(4);
        for case in 0..8 {
            let (rows, cols) = (rng.random_range(1..5), rng.random_range(1..5));
            let mut x: Vec<f64> = (0..rows * cols).map(|_| rng.random_range(-2.0..2.0)).collect();
            let y: Vec<f64> = (0..rows * cols).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mask: Vec<bool> = (0..rows).map(|r| r == 0 || rng.random_bool(0.5)).collect();
            let mask = (case % 2 == 1).then_some(mask.as_slice());
            let (_, grad) = MseLoss.forward(&x, &y, mask).unwrap();
            check("dx", &mut x, &grad, 1e-7, |x| MseLoss.forward(x, &y, mask).unwrap().0).unwrap();
        }
    }

    #[test]
    fn shapes_are_checked() {
        let err = MseLoss.forward(&[0.0f32; 3], &[0.0; 2], None).unwrap_err();
        assert!(err.to_string().contains("target: expected shape [3]"), "{err}");
        let err = MseLoss.forward(&[0.0f32; 3], &[0.0; 3], Some(&[true, true])).unwrap_err();
        assert!(err.to_string().contains("input: expected shape [2, *]"), "{err}");
        let err = MseLoss.forward(&[0.0f32; 3], &[0.0; 3], Some(&[])).unwrap_err();
        assert!(err.to_string().contains("[0, *]"), "{err}");
    }
}
