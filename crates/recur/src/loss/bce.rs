//! Binary cross-entropy on logits, PyTorch's `nn.BCEWithLogitsLoss` with mean reduction, and its gradient.

use super::{RowMask, check_same_len};
use crate::error::{Error, Result};
use crate::kernels::Real;

/// Binary cross-entropy of logits `x` against targets `y ∈ [0, 1]` of the same length, PyTorch's
/// `nn.BCEWithLogitsLoss(pos_weight)`:
///
/// `lᵢ = −[p·yᵢ log σ(xᵢ) + (1 − yᵢ) log(1 − σ(xᵢ))]`, `L = Σᵢ lᵢ / N`,
///
/// with `p = pos_weight[i mod C]` (1 without it), over the `N` elements that count (all, or those of rows marked
/// `true` in a mask). It is computed in the stable form
///
/// `lᵢ = (1 − yᵢ) xᵢ + (1 + (p − 1) yᵢ) (log(1 + e^{−|xᵢ|}) + max(−xᵢ, 0))`,
///
/// which is `max(x, 0) − x·y + log(1 + e^{−|x|})` when `p = 1`, and never takes the logarithm of a rounded
/// sigmoid. The gradient is `∂L/∂xᵢ = ((1 − yᵢ) − (1 + (p − 1) yᵢ) σ(−xᵢ)) / N`, that is `(σ(xᵢ) − yᵢ)/N` when
/// `p = 1`. With `N = 0` the loss is NaN, as in PyTorch (see [the module](crate::loss)). PyTorch's per-element
/// `weight` is not supported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceWithLogitsLoss<T: Real = f32> {
    pos_weight: Option<Vec<T>>,
}

impl<T: Real> BceWithLogitsLoss<T> {
    /// No positive weight, PyTorch's default.
    pub fn new() -> Self {
        BceWithLogitsLoss { pos_weight: None }
    }

    /// Weights the positive term of each of `C = pos_weight.len()` classes, broadcast over the last dimension:
    /// the inputs are read as rows of `C` (a length that is not a multiple of `C` is an error at forward).
    pub fn with_pos_weight(mut self, pos_weight: Vec<T>) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }

    /// The positive weights, when set.
    pub fn pos_weight(&self) -> Option<&[T]> {
        self.pos_weight.as_deref()
    }

    /// The loss and `∂L/∂x` for `logits` and `targets` of the same length; `mask` has one entry per row, `true`
    /// where the row counts.
    pub fn forward(&self, logits: &[T], targets: &[T], mask: Option<&[bool]>) -> Result<(T, Vec<T>)> {
        let mut grad = vec![T::zero(); logits.len()];
        let loss = self.forward_into(logits, targets, mask, &mut grad)?;
        Ok((loss, grad))
    }

    /// [`BceWithLogitsLoss::forward`] writing `∂L/∂x` into a caller's buffer of the logits' length.
    pub fn forward_into(&self, logits: &[T], targets: &[T], mask: Option<&[bool]>, grad: &mut [T]) -> Result<T> {
        check_same_len("targets", targets.len(), logits.len())?;
        check_same_len("gradient", grad.len(), logits.len())?;
        let rows = RowMask::new("logits", logits.len(), mask)?;
        // An empty pos_weight fits only empty logits (`is_multiple_of(0)` holds only for 0).
        if let Some(pw) = &self.pos_weight
            && !logits.len().is_multiple_of(pw.len())
        {
            return Err(Error::shape(
                "logits",
                format!("[*, {}] (as many columns as pos_weight)", pw.len()),
                &[logits.len()],
            ));
        }
        let n = T::from_usize(rows.count(logits.len())).unwrap_or_else(T::nan);
        let one = T::one();
        let mut sum = T::zero();
        for (i, ((g, &x), &y)) in grad.iter_mut().zip(logits).zip(targets).enumerate() {
            if !rows.counts(i) {
                *g = T::zero();
                continue;
            }
            let log_weight = match &self.pos_weight {
                Some(pw) => one + (pw[i % pw.len()] - one) * y,
                None => one,
            };
            // softplus(−x) = log(1 + e^{−x}), written so that the exponential never overflows.
            let softplus_neg = (-x.abs()).exp().ln_1p() + (-x).max(T::zero());
            sum += (one - y) * x + log_weight * softplus_neg;
            *g = ((one - y) - log_weight * sigmoid(-x)) / n;
        }
        Ok(sum / n)
    }
}

/// `σ(z)`, from whichever side keeps `e^{…}` at most 1.
fn sigmoid<T: Real>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
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
        // x = 0: l = log 2 whatever y, gradient (½ − y)/N.
        let (loss, grad) = BceWithLogitsLoss::new().forward(&[0.0f64, 0.0], &[1.0, 0.0], None).unwrap();
        assert!((loss - 2f64.ln()).abs() < 1e-15);
        assert_eq!(grad, vec![-0.25, 0.25]);

        // pos_weight 3 on a positive at x = 0: l = 3 log 2.
        let (loss, grad) =
            BceWithLogitsLoss::new().with_pos_weight(vec![3.0f64]).forward(&[0.0], &[1.0], None).unwrap();
        assert!((loss - 3.0 * 2f64.ln()).abs() < 1e-15);
        assert_eq!(grad, vec![-1.5]);
    }

    #[test]
    fn stable_for_large_logits() {
        let bce = BceWithLogitsLoss::<f32>::new();
        let (loss, grad) = bce.forward(&[100.0, -100.0], &[1.0, 0.0], None).unwrap();
        assert!(loss.abs() < 1e-30);
        assert!(grad.iter().all(|g| g.abs() < 1e-30));
        let (loss, grad) = bce.forward(&[-100.0], &[1.0], None).unwrap();
        assert_eq!(loss, 100.0);
        assert_eq!(grad, vec![-1.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(8);
        for case in 0..12 {
            let (rows, cols) = (rng.random_range(1..5), rng.random_range(1..5));
            let mut x: Vec<f64> = (0..rows * cols).map(|_| rng.random_range(-4.0..4.0)).collect();
            let y: Vec<f64> = (0..rows * cols).map(|_| rng.random_range(0.0..1.0)).collect();
            let mut bce = BceWithLogitsLoss::new();
            if case % 2 == 0 {
                bce = bce.with_pos_weight((0..cols).map(|_| rng.random_range(0.2..3.0)).collect());
            }
            let mask: Vec<bool> = (0..rows).map(|r| r == 0 || rng.random_bool(0.5)).collect();
            let mask = (case % 3 == 2).then_some(mask.as_slice());
            let (_, grad) = bce.forward(&x, &y, mask).unwrap();
            check("dx", &mut x, &grad, 1e-7, |x| bce.forward(x, &y, mask).unwrap().0).unwrap();
        }
    }

    #[test]
    fn masks_empty_inputs_and_shapes() {
        let bce = BceWithLogitsLoss::<f32>::new();
        let (loss, grad) = bce.forward(&[1.0, 2.0], &[1.0, 0.0], Some(&[false, false])).unwrap();
        assert!(loss.is_nan());
        assert_eq!(grad, vec![0.0, 0.0]);
        assert!(bce.forward(&[], &[], None).unwrap().0.is_nan());
        let err = bce.forward(&[0.0; 3], &[0.0; 2], None).unwrap_err();
        assert!(err.to_string().contains("targets: expected shape [3]"), "{err}");
        let err = bce.clone().with_pos_weight(vec![1.0, 1.0]).forward(&[0.0; 3], &[0.0; 3], None).unwrap_err();
        assert!(err.to_string().contains("[*, 2]"), "{err}");
    }
}
