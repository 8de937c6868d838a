//! The scores the tasks report: accuracy over class logits, MSE, MAE, NRMSE and bits per character.

use recur::loss::DEFAULT_IGNORE_INDEX;
use recur::{Error, Result};

/// The index of the largest of `values` (the first one on ties); `None` for an empty slice.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        // A NaN logit (a diverged model) must not hide the largest number of the row.
        if best.is_none_or(|(_, b)| v > b || b.is_nan()) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// The predicted class of every row of `logits` (`rows × classes`, row-major): the argmax of the row.
pub fn predictions(logits: &[f32], classes: usize) -> Result<Vec<usize>> {
    if classes == 0 || !logits.len().is_multiple_of(classes) {
        return Err(Error::shape("logits", format!("[rows, {classes}]"), &[logits.len()]));
    }
    Ok(logits.chunks_exact(classes).map(|row| argmax(row).expect("classes > 0")).collect())
}

/// The fraction of rows whose argmax equals the target class, over the rows that count: those whose target is
/// not the cross-entropy's ignore value, `-100` (so the targets a task trains on score its accuracy too).
///
/// `logits` is `targets.len() × classes`, row-major. When no row counts the accuracy is NaN, like a mean over
/// nothing.
pub fn accuracy(logits: &[f32], classes: usize, targets: &[i64]) -> Result<f64> {
    let predicted = predictions(logits, classes)?;
    if predicted.len() != targets.len() {
        return Err(Error::shape(
            "logits",
            format!("[{}, {classes}] (one row per target)", targets.len()),
            &[logits.len()],
        ));
    }
    let (mut right, mut counted) = (0usize, 0usize);
    for (&p, &y) in predicted.iter().zip(targets) {
        if y != DEFAULT_IGNORE_INDEX {
            counted += 1;
            right += usize::from(p as i64 == y);
        }
    }
    Ok(right as f64 / counted as f64)
}

fn check_pairs(predicted: &[f32], target: &[f32]) -> Result<()> {
    if predicted.len() != target.len() {
        return Err(Error::shape(
            "predictions",
            format!("[{}] (as many as the targets)", target.len()),
            &[predicted.len()],
        ));
    }
    Ok(())
}

/// Mean squared error, `Σ (ŷᵢ − yᵢ)² / N` (NaN when empty).
pub fn mse(predicted: &[f32], target: &[f32]) -> Result<f64> {
    check_pairs(predicted, target)?;
    let sum: f64 = predicted.iter().zip(target).map(|(&p, &y)| (p as f64 - y as f64).powi(2)).sum();
    Ok(sum / target.len() as f64)
}

/// Mean absolute error, `Σ |ŷᵢ − yᵢ| / N` (NaN when empty).
pub fn mae(predicted: &[f32], target: &[f32]) -> Result<f64> {
    check_pairs(predicted, target)?;
    let sum: f64 = predicted.iter().zip(target).map(|(&p, &y)| (p as f64 - y as f64).abs()).sum();
    Ok(sum / target.len() as f64)
}

/// Normalised root-mean-square error, `√(MSE) / σ_y` with `σ_y` the (population) standard deviation of the
/// targets: 0 is perfect, 1 is what always predicting the targets' mean scores. Scale-free, so it is the same in
/// normalised and original units.
pub fn nrmse(predicted: &[f32], target: &[f32]) -> Result<f64> {
    let rmse = mse(predicted, target)?.sqrt();
    let n = target.len() as f64;
    let mean = target.iter().map(|&y| y as f64).sum::<f64>() / n;
    let var = target.iter().map(|&y| (y as f64 - mean).powi(2)).sum::<f64>() / n;
    Ok(rmse / var.sqrt())
}

/// A mean cross-entropy in nats per character as bits per character: `nats / ln 2`.
pub fn bits_per_char(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

/// Reorders a batch-first `(B, T, W)` buffer (`W` values per step) into time-major `(T, B, W)`, for a layer that
/// is not `batch_first`. The tasks generate batch-first data.
pub fn to_time_major<T: Copy>(values: &[T], batch: usize, steps: usize) -> Result<Vec<T>> {
    let per_step = batch * steps;
    if per_step == 0 || !values.len().is_multiple_of(per_step) {
        return Err(Error::shape("batch", format!("[{batch}, {steps}, W]"), &[values.len()]));
    }
    let width = values.len() / per_step;
    let mut out = Vec::with_capacity(values.len());
    for t in 0..steps {
        for b in 0..batch {
            let start = (b * steps + t) * width;
            out.extend_from_slice(&values[start..start + width]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_skips_ignored_rows_and_checks_shapes() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.5, 0.4];
        assert_eq!(predictions(&logits, 2).unwrap(), vec![1, 0, 0]);
        assert_eq!(accuracy(&logits, 2, &[1, 1, -100]).unwrap(), 0.5);
        assert_eq!(accuracy(&logits, 2, &[1, 0, 0]).unwrap(), 1.0);
        assert!(accuracy(&logits, 2, &[-100, -100, -100]).unwrap().is_nan());
        assert!(accuracy(&logits, 2, &[1, 0]).is_err());
        assert!(predictions(&logits, 4).is_err());
        assert_eq!(argmax(&[f32::NAN, 1.0, 3.0, 3.0]), Some(2));
    }

    #[test]
    fn regression_metrics_match_hand_computed_values() {
        let (p, y) = ([1.0, 2.0, 5.0], [1.0, 4.0, 4.0]);
        assert!((mse(&p, &y).unwrap() - 5.0 / 3.0).abs() < 1e-12);
        assert!((mae(&p, &y).unwrap() - 1.0).abs() < 1e-12);
        // Predicting the mean scores an NRMSE of exactly 1.
        let mean = [3.0f32; 3];
        assert!((nrmse(&mean, &y).unwrap() - 1.0).abs() < 1e-6);
        assert!(mse(&p, &y[..2]).is_err());
        assert!((bits_per_char(std::f64::consts::LN_2 * 3.0) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn time_major_transposes_batch_and_time() {
        // B = 2, T = 3, W = 1: rows b0 = [0 1 2], b1 = [3 4 5].
        assert_eq!(to_time_major(&[0, 1, 2, 3, 4, 5], 2, 3).unwrap(), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(to_time_major(&[0, 1, 2, 3], 2, 1).unwrap(), vec![0, 1, 2, 3]);
        assert!(to_time_major(&[0, 1, 2], 2, 2).is_err());
    }
}
