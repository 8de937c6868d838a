//! Gradient clipping: PyTorch's `torch.nn.utils.clip_grad_norm_` (global L2 norm) and `clip_grad_value_`.

use crate::error::{Error, Result};
use crate::params::Param;

/// Rescales all gradients together so that their global L2 norm is at most `max_norm`, and returns the norm
/// *before* clipping: PyTorch's `clip_grad_norm_(params, max_norm)` (`norm_type = 2`).
///
/// ```text
/// ‖g‖ = √(Σₚ ‖gₚ‖²)                   (the norm of the per-parameter norms)
/// c   = max_norm / (‖g‖ + 1e-6)       (in f32)
/// gₚ ← c · gₚ                         for every parameter, when c < 1
/// ```
///
/// A non-finite norm (a gradient holding `inf` or `NaN`) is returned as is and **the gradients are left
/// untouched**, so the caller can decide, typically to skip the step. (PyTorch, with `error_if_nonfinite =
/// False`, would multiply every gradient by `0` or `NaN` in that case.) Squares are summed in `f64`, so the norm
/// of large finite gradients does not overflow.
///
/// Fails, changing nothing, when `max_norm` is negative or `NaN`.
pub fn clip_grad_norm(params: &mut [Param<'_>], max_norm: f32) -> Result<f32> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::config(format!("clip_grad_norm: max_norm must be >= 0, got {max_norm}")));
    }
    let mut total_sq = 0.0f64;
    for p in params.iter() {
        let mut sq = 0.0f64;
        for g in p.grad.iter() {
            sq += f64::from(*g) * f64::from(*g);
        }
        // PyTorch takes each parameter's norm as a float32 tensor before combining them.
        let norm = sq.sqrt() as f32;
        total_sq += f64::from(norm) * f64::from(norm);
    }
    let total = total_sq.sqrt() as f32;
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for p in params.iter_mut() {
            for g in p.grad.iter_mut() {
                *g *= coef;
            }
        }
    }
    Ok(total)
}

/// Clamps every gradient element to `[−clip, clip]`: PyTorch's `clip_grad_value_(params, clip)`. `NaN` stays
/// `NaN`.
///
/// Fails, changing nothing, when `clip` is negative or `NaN`.
pub fn clip_grad_value(params: &mut [Param<'_>], clip: f32) -> Result<()> {
    if clip.is_nan() || clip < 0.0 {
        return Err(Error::config(format!("clip_grad_value: clip must be >= 0, got {clip}")));
    }
    for p in params.iter_mut() {
        for g in p.grad.iter_mut() {
            if *g > clip {
                *g = clip;
            } else if *g < -clip {
                *g = -clip;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Owned, assert_close};
    use super::*;

    fn two() -> Owned {
        // ‖g‖ = √(3² + 4² + 12²) = 13
        Owned::new(&[("a", &[0.0, 0.0], &[3.0, 4.0]), ("b", &[0.0], &[-12.0])])
    }

    #[test]
    fn norm_above_max_is_scaled_down() {
        let mut owned = two();
        let total = clip_grad_norm(&mut owned.params(), 6.5).unwrap();
        assert_eq!(total, 13.0);
        let c = 6.5 / (13.0 + 1e-6);
        assert_close(&owned.0[0].2, &[3.0 * c, 4.0 * c], 1e-6);
        assert_close(&owned.0[1].2, &[-12.0 * c], 1e-6);
    }

    #[test]
    fn norm_below_max_is_untouched() {
        let mut owned = two();
        assert_eq!(clip_grad_norm(&mut owned.params(), 13.5).unwrap(), 13.0);
        assert_eq!(owned.0[0].2, vec![3.0, 4.0]);
        assert_eq!(owned.0[1].2, vec![-12.0]);
    }

    #[test]
    fn non_finite_norm_is_reported_and_nothing_changes() {
        let mut owned = Owned::new(&[("a", &[0.0, 0.0], &[f32::INFINITY, 1.0])]);
        assert_eq!(clip_grad_norm(&mut owned.params(), 1.0).unwrap(), f32::INFINITY);
        assert_eq!(owned.0[0].2, vec![f32::INFINITY, 1.0]);
        let mut owned = Owned::new(&[("a", &[0.0], &[f32::NAN])]);
        assert!(clip_grad_norm(&mut owned.params(), 1.0).unwrap().is_nan());
        assert!(clip_grad_norm(&mut owned.params(), -1.0).is_err());
    }

    #[test]
    fn large_finite_gradients_do_not_overflow_the_norm() {
        let mut owned = Owned::new(&[("a", &[0.0, 0.0], &[3e30, 4e30])]);
        let total = clip_grad_norm(&mut owned.params(), 1.0).unwrap();
        assert!((total / 5e30 - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn value_clipping_clamps_each_element() {
        let mut owned = two();
        clip_grad_value(&mut owned.params(), 3.5).unwrap();
        assert_eq!(owned.0[0].2, vec![3.0, 3.5]);
        assert_eq!(owned.0[1].2, vec![-3.5]);
        assert!(clip_grad_value(&mut owned.params(), f32::NAN).is_err());
        let mut nan = Owned::new(&[("a", &[0.0], &[f32::NAN])]);
        clip_grad_value(&mut nan.params(), 1.0).unwrap();
        assert!(nan.0[0].2[0].is_nan());
    }
}
