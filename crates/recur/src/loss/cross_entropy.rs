//! Softmax cross-entropy over class logits, PyTorch's `nn.CrossEntropyLoss` with integer targets and mean
//! reduction, and its gradient.

use std::fmt::Display;

use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::check_len;

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Cross-entropy of logits `z (rows × C)` against class indices `y`, PyTorch's
/// `nn.CrossEntropyLoss(weight, ignore_index)` with `reduction="mean"`:
///
/// `nllᵢ = log Σ_c e^{z_ic} − z_{i,yᵢ}`, `L = Σᵢ w_{yᵢ}·nllᵢ / Σᵢ w_{yᵢ}`
///
/// over the rows that count: those whose target is not `ignore_index` and whose mask entry (when given) is
/// `true`. Without class weights every `w` is 1 and `L` is the plain mean. The gradient is
///
/// `∂L/∂z_ic = w_{yᵢ} (softmax(zᵢ)_c − [c = yᵢ]) / Σ w`, and zero on rows that do not count.
///
/// The log-sum-exp is taken after subtracting each row's maximum, so large logits neither overflow nor lose the
/// small ones. When no row counts the loss is NaN, as in PyTorch (see [the module](crate::loss)). Label
/// smoothing and probability targets are not supported.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyLoss<T: Real = f32> {
    weight: Option<Vec<T>>,
    ignore_index: i64,
}

impl<T: Real> Default for CrossEntropyLoss<T> {
    fn default() -> Self {
        CrossEntropyLoss { weight: None, ignore_index: DEFAULT_IGNORE_INDEX }
    }
}

impl<T: Real> CrossEntropyLoss<T> {
    /// No class weights, `ignore_index = -100`: PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rescales each class's rows by `weight[c]` (length `C`, checked at [`CrossEntropyLoss::forward`]).
    pub fn with_weight(mut self, weight: Vec<T>) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Rows whose target equals `ignore_index` do not count (and their target is not range-checked).
    pub fn with_ignore_index(mut self, ignore_index: i64) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// The class weights, when set.
    pub fn weight(&self) -> Option<&[T]> {
        self.weight.as_deref()
    }

    /// The ignored target value.
    pub fn ignore_index(&self) -> i64 {
        self.ignore_index
    }

    /// The loss and `∂L/∂z` for logits `z` (`targets.len() × classes`, row-major) and one class index per row.
    ///
    /// `mask` (one entry per row, `true` where the row counts) drops padded rows just as `ignore_index` does;
    /// their targets are not range-checked either. A counted target outside `[0, classes)` is an error naming it.
    pub fn forward<I>(&self, logits: &[T], classes: usize, targets: &[I], mask: Option<&[bool]>) -> Result<(T, Vec<T>)>
    where
        I: Copy + Display + TryInto<i64>,
    {
        let mut grad = vec![T::zero(); logits.len()];
        let loss = self.forward_into(logits, classes, targets, mask, &mut grad)?;
        Ok((loss, grad))
    }

    /// [`CrossEntropyLoss::forward`] writing `∂L/∂z` into a caller's buffer of the logits' shape.
    pub fn forward_into<I>(
        &self,
        logits: &[T],
        classes: usize,
        targets: &[I],
        mask: Option<&[bool]>,
        grad: &mut [T],
    ) -> Result<T>
    where
        I: Copy + Display + TryInto<i64>,
    {
        let rows = targets.len();
        check_len("logits", logits.len(), rows, classes)?;
        check_len("gradient", grad.len(), rows, classes)?;
        if let Some(m) = mask
            && m.len() != rows
        {
            return Err(Error::shape("mask", format!("[{rows}] (one entry per target)"), &[m.len()]));
        }
        if let Some(w) = &self.weight
            && w.len() != classes
        {
            return Err(Error::shape("class weights", format!("[{classes}]"), &[w.len()]));
        }

        // First the targets, all of them, so that an error leaves `grad` untouched and the total weight (the
        // denominator of every gradient) is known before the pass over the logits.
        let counted = |r: usize| self.counted_class(targets[r], classes, mask.is_none_or(|m| m[r]));
        let mut total = T::zero();
        for r in 0..rows {
            if let Some(c) = counted(r)? {
                total += self.class_weight(c);
            }
        }

        let mut sum = T::zero();
        for (r, (z, g)) in logits.chunks_exact(classes.max(1)).zip(grad.chunks_exact_mut(classes.max(1))).enumerate() {
            let Some(c) = counted(r)? else {
                g.fill(T::zero());
                continue;
            };
            let max = z.iter().copied().fold(T::neg_infinity(), T::max);
            let mut denom = T::zero();
            for (g, &v) in g.iter_mut().zip(z) {
                *g = (v - max).exp();
                denom += *g;
            }
            let w = self.class_weight(c);
            sum += w * (max + denom.ln() - z[c]);
            // softmax − one-hot, scaled by this row's share of the weighted mean.
            let scale = w / total;
            g.iter_mut().for_each(|g| *g = *g / denom * scale);
            g[c] -= scale;
        }
        Ok(sum / total)
    }

    /// The class of a counted row, `None` for a row that does not count, or an error for a target out of range.
    fn counted_class<I>(&self, target: I, classes: usize, unmasked: bool) -> Result<Option<usize>>
    where
        I: Copy + Display + TryInto<i64>,
    {
        let value: Option<i64> = target.try_into().ok();
        if !unmasked || value == Some(self.ignore_index) {
            return Ok(None);
        }
        match value {
            Some(t) if t >= 0 && (t as u64) < classes as u64 => Ok(Some(t as usize)),
            _ => Err(Error::Index {
                what: "cross-entropy target".into(),
                index: target.to_string(),
                valid: format!("0..{classes} for {classes} classes, or the ignore_index {}", self.ignore_index),
            }),
        }
    }

    fn class_weight(&self, class: usize) -> T {
        self.weight.as_ref().map_or(T::one(), |w| w[class])
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::gradcheck::check;

    #[test]
    fn hand_computed_two_classes() {
        // Logits (0, ln 3): softmax (1/4, 3/4).
        let z = [0.0, 3f64.ln(), 0.0, 3f64.ln()];
        let (loss, grad) = CrossEntropyLoss::new().forward(&z, 2, &[1i64, 0], None).unwrap();
        let want = (-(0.75f64).ln() - (0.25f64).ln()) / 2.0;
        assert!((loss - want).abs() < 1e-15);
        let want_grad = [0.125, -0.125, -0.375, 0.375];
        for (g, w) in grad.iter().zip(want_grad) {
            assert!((g - w).abs() < 1e-15, "{grad:?}");
        }

        // Class weights (1, 3): L = (3·nll₀ + 1·nll₁) / 4.
        let ce = CrossEntropyLoss::new().with_weight(vec![1.0, 3.0]);
        let (loss, grad) = ce.forward(&z, 2, &[1i64, 0], None).unwrap();
        let want = (3.0 * -(0.75f64).ln() + -(0.25f64).ln()) / 4.0;
        assert!((loss - want).abs() < 1e-15);
        assert!((grad[0] - 3.0 * 0.25 / 4.0).abs() < 1e-15);
        assert!((grad[2] - (0.25 - 1.0) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn ignored_and_masked_rows_do_not_count() {
        let mut rng = StdRng::seed_from_u64(2);
        let z: Vec<f64> = (0..12).map(|_| rng.random_range(-2.0..2.0)).collect();
        let ce = CrossEntropyLoss::new().with_ignore_index(-1);
        let (with_ignored, grad) = ce.forward(&z, 3, &[2i64, -1, 0, -1], None).unwrap();
        let (masked, grad_m) = ce.forward(&z, 3, &[2i64, 77, 0, 5], Some(&[true, false, true, false])).unwrap();
        let kept: Vec<f64> = z[0..3].iter().chain(&z[6..9]).copied().collect();
        let (want, _) = ce.forward(&kept, 3, &[2i64, 0], None).unwrap();
        assert!((with_ignored - want).abs() < 1e-15 && (masked - want).abs() < 1e-15);
        assert!(grad[3..6].iter().chain(&grad[9..]).all(|&g| g == 0.0));
        assert_eq!(grad, grad_m);
    }

    #[test]
    fn nothing_counted_gives_nan_and_zero_gradient_as_pytorch() {
        let z = [1.0f64, 2.0, 3.0, 4.0];
        let (loss, grad) = CrossEntropyLoss::new().forward(&z, 2, &[-100i64, -100], None).unwrap();
        assert!(loss.is_nan());
        assert_eq!(grad, vec![0.0; 4]);
        let (loss, _) = CrossEntropyLoss::<f64>::new().forward(&[], 3, &[0i64; 0], None).unwrap();
        assert!(loss.is_nan());
    }

    #[test]
    fn stable_for_large_logits() {
        let z = [1000.0f32, 0.0, -1000.0];
        let (loss, grad) = CrossEntropyLoss::new().forward(&z, 3, &[0usize], None).unwrap();
        assert_eq!(loss, 0.0);
        assert_eq!(grad, vec![0.0, 0.0, 0.0]);
        let (loss, _) = CrossEntropyLoss::new().forward(&z, 3, &[2usize], None).unwrap();
        assert_eq!(loss, 2000.0);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(9);
        for case in 0..16 {
            let (rows, classes) = (rng.random_range(1..6), rng.random_range(1..6));
            let mut z: Vec<f64> = (0..rows * classes).map(|_| rng.random_range(-3.0..3.0)).collect();
            let mut targets: Vec<i64> = (0..rows).map(|_| rng.random_range(0..classes) as i64).collect();
            if case % 3 == 1 && rows > 1 {
                targets[rows - 1] = -100;
            }
            // Row 0 always counts, so that the loss stays finite.
            let mask: Vec<bool> = (0..rows).map(|r| r == 0 || rng.random_bool(0.7)).collect();
            let mut ce = CrossEntropyLoss::new();
            if case % 2 == 0 {
                ce = ce.with_weight((0..classes).map(|_| rng.random_range(0.5..2.0)).collect());
            }
            let mask = (case % 4 == 3).then_some(mask.as_slice());
            let (_, grad) = ce.forward(&z, classes, &targets, mask).unwrap();
            check("dz", &mut z, &grad, 1e-7, |z| ce.forward(z, classes, &targets, mask).unwrap().0).unwrap();
        }
    }

    #[test]
    fn bad_targets_and_shapes_are_errors() {
        let ce = CrossEntropyLoss::<f32>::new();
        let z = [0.0; 6];
        let err = ce.forward(&z, 3, &[0i64, 3], None).unwrap_err();
        assert!(err.to_string().contains("target 3 is out of range (valid: 0..3 for 3 classes"), "{err}");
        let err = ce.forward(&z, 3, &[-1i64, 0], None).unwrap_err();
        assert!(err.to_string().contains("target -1"), "{err}");
        let err = ce.forward(&z, 4, &[0i64, 0], None).unwrap_err();
        assert!(err.to_string().contains("logits: expected shape [2, 4]"), "{err}");
        let err = ce.forward(&z, 3, &[0i64, 0], Some(&[true])).unwrap_err();
        assert!(err.to_string().contains("mask: expected shape [2]"), "{err}");
        let err = ce.clone().with_weight(vec![1.0; 2]).forward(&z, 3, &[0i64, 0], None).unwrap_err();
        assert!(err.to_string().contains("class weights: expected shape [3], found [2]"), "{err}");
        let mut grad = [0.0; 5];
        assert!(ce.forward_into(&z, 3, &[0i64, 0], None, &mut grad).is_err());
    }
}
