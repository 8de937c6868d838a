//! The adding problem (Hochreiter and Schmidhuber, 1997): a long-range dependency that plain RNNs fail at.
//!
//! Each step holds a value in `[0, 1)` and a marker; exactly two steps are marked, one in each half of the
//! sequence; the target is the sum of the two marked values. Always predicting 1 (the mean of the target) scores
//! an MSE of 1/6 ≈ 0.167, so a model below that has learned to carry information across the sequence.

use rand::Rng;

use recur::Tensor;
use recur::{Error, Result};

/// The MSE of always predicting 1, the mean of the target: `Var(u₁ + u₂) = 2 · 1/12 = 1/6`.
pub const ADDING_BASELINE: f64 = 1.0 / 6.0;

/// One batch of the adding problem.
#[derive(Clone, Debug)]
pub struct AddingBatch {
    /// `(B, T, 2)`, batch-first: `[value, marker]` at every step.
    pub input: Tensor,
    /// `(B, 1)`: the sum of the two marked values.
    pub target: Tensor,
}

/// Draws a batch of `batch` sequences of `steps ≥ 2` steps.
///
/// # Panics
/// When `steps < 2` (a sequence needs two halves to hold two markers); [`adding_task`] returns an error instead.
pub fn adding_problem(batch: usize, steps: usize, rng: &mut impl Rng) -> AddingBatch {
    assert!(steps >= 2, "the adding problem needs at least 2 steps");
    adding_task(batch, steps, rng).expect("steps ≥ 2")
}

/// [`adding_problem`] for steps that come from a user: `steps < 2` is an [`Error::Config`].
pub fn adding_task(batch: usize, steps: usize, rng: &mut impl Rng) -> Result<AddingBatch> {
    if steps < 2 {
        return Err(Error::config(format!(
            "the adding problem needs at least 2 steps (one marker in each half), found {steps}"
        )));
    }
    let mut input = vec![0.0f32; batch * steps * 2];
    let mut target = vec![0.0f32; batch];
    let half = steps / 2;
    for b in 0..batch {
        let row = &mut input[b * steps * 2..(b + 1) * steps * 2];
        for t in 0..steps {
            row[2 * t] = rng.random::<f32>();
        }
        let first = rng.random_range(0..half);
        let second = rng.random_range(half..steps);
        row[2 * first + 1] = 1.0;
        row[2 * second + 1] = 1.0;
        target[b] = row[2 * first] + row[2 * second];
    }
    Ok(AddingBatch { input: Tensor::new([batch, steps, 2], input)?, target: Tensor::new([batch, 1], target)? })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn exactly_two_markers_one_per_half_and_target_is_their_sum() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for steps in [2, 3, 10, 51] {
            let b = adding_problem(16, steps, &mut rng);
            for i in 0..16 {
                let row = &b.input.data()[i * steps * 2..(i + 1) * steps * 2];
                let marked: Vec<usize> = (0..steps).filter(|&t| row[2 * t + 1] == 1.0).collect();
                assert_eq!(marked.len(), 2);
                assert!(marked[0] < steps / 2 && marked[1] >= steps / 2);
                let sum = row[2 * marked[0]] + row[2 * marked[1]];
                assert_eq!(b.target.data()[i], sum);
                assert!(row.iter().step_by(2).all(|v| (0.0..1.0).contains(v)));
            }
        }
    }

    #[test]
    fn too_few_steps_is_an_error_and_a_seed_repeats_the_batch() {
        let err = adding_task(4, 1, &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap_err();
        assert!(err.to_string().contains("at least 2 steps"), "{err}");
        let a = adding_task(4, 9, &mut rand::rngs::StdRng::seed_from_u64(5)).unwrap();
        let b = adding_problem(4, 9, &mut rand::rngs::StdRng::seed_from_u64(5));
        assert_eq!((a.input, a.target), (b.input, b.target));
        // Always predicting 1 scores the documented baseline.
        let big = adding_task(20000, 4, &mut rand::rngs::StdRng::seed_from_u64(6)).unwrap();
        let mse = big.target.data().iter().map(|&y| (y as f64 - 1.0).powi(2)).sum::<f64>() / 20000.0;
        assert!((mse - ADDING_BASELINE).abs() < 0.01, "{mse}");
    }
}
