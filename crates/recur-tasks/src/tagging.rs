//! A synthetic tagging task that a bidirectional model solves and a unidirectional one provably cannot.
//!
//! Tokens `x_t` are drawn uniformly from `0..vocab`; the label of step `t` names the pair of tokens `k` steps
//! before and after it,
//!
//! `y_t = vocab·x_{t−k} + x_{t+k}` (one of `vocab²` classes), with `x_s = 0` outside `0..T`,
//!
//! for a reach `k ≥ 1`. A bidirectional model sees both tokens and can be right at every step; even one layer
//! with a linear head can, because a class's logit splits into a part for `x_{t−k}` (from the forward direction)
//! plus a part for `x_{t+k}` (from the reverse one). A unidirectional
//! model emitting `y_t` at step `t` has read `x_0 … x_t` only; when `t + k < T`, `x_{t+k}` is uniform and
//! independent of all of them, so given what it has read `y_t` is uniform over `vocab` classes, and no prediction
//! is right with probability above `1/vocab`. At the last `k` steps `y_t = vocab·x_{t−k}` is known. Its expected per-step accuracy is
//! therefore at most
//!
//! `ceiling = ((T − k)/vocab + k) / T` ([`tagging_ceiling`]),
//!
//! e.g. 0.325 for `vocab = 4`, `T = 20`, `k = 2`, against 1 for a bidirectional model.

use rand::Rng;

use super::metrics::accuracy;
use recur::{Error, Result};

/// The shape of the tagging task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaggingConfig {
    /// Token ids `0..vocab` (≥ 2); labels are `0..vocab²`.
    pub vocab: usize,
    /// Steps per sequence, `T` (≥ 1).
    pub steps: usize,
    /// How far the label looks back and ahead, `k` (≥ 1).
    pub reach: usize,
}

impl Default for TaggingConfig {
    /// `vocab = 4`, `T = 20`, `k = 2`: a unidirectional ceiling of 0.325.
    fn default() -> Self {
        TaggingConfig { vocab: 4, steps: 20, reach: 2 }
    }
}

impl TaggingConfig {
    /// Label classes, `vocab²` (the model's outputs).
    pub fn classes(&self) -> usize {
        self.vocab * self.vocab
    }

    fn validate(&self) -> Result<()> {
        if self.vocab < 2 || self.steps == 0 || self.reach == 0 {
            return Err(Error::config(format!(
                "the tagging task needs vocab ≥ 2, steps ≥ 1 and reach ≥ 1, found vocab={}, steps={}, reach={}",
                self.vocab, self.steps, self.reach
            )));
        }
        Ok(())
    }
}

/// The best expected per-step accuracy of a unidirectional model, `((T − k)/vocab + min(k, T)) / T`: `1/vocab`
/// at the steps whose label depends on a future token, 1 at the last `k`.
pub fn tagging_ceiling(config: &TaggingConfig) -> f64 {
    let (t, k) = (config.steps as f64, config.reach.min(config.steps) as f64);
    ((t - k) / config.vocab as f64 + k) / t
}

/// One batch of the tagging task, batch-first (`b·steps + t`).
#[derive(Clone, Debug, PartialEq)]
pub struct TaggingBatch {
    /// Token ids in `0..vocab`, `batch × steps`.
    pub ids: Vec<usize>,
    /// Labels in `0..vocab²`, `batch × steps`.
    pub targets: Vec<i64>,
    /// Sequences `B`.
    pub batch: usize,
    /// Steps `T`.
    pub steps: usize,
}

impl TaggingBatch {
    /// Per-step accuracy of `logits` (`batch·steps × classes`, batch-first).
    pub fn accuracy(&self, logits: &[f32], classes: usize) -> Result<f64> {
        accuracy(logits, classes, &self.targets)
    }
}

/// Draws a batch of `batch` sequences.
pub fn tagging_task(config: &TaggingConfig, batch: usize, rng: &mut impl Rng) -> Result<TaggingBatch> {
    config.validate()?;
    let TaggingConfig { vocab, steps, reach } = *config;
    let ids: Vec<usize> = (0..batch * steps).map(|_| rng.random_range(0..vocab)).collect();
    let mut targets = Vec::with_capacity(ids.len());
    for row in ids.chunks_exact(steps) {
        let at = |s: Option<usize>| s.and_then(|s| row.get(s)).copied().unwrap_or(0);
        targets.extend((0..steps).map(|t| (vocab * at(t.checked_sub(reach)) + at(Some(t + reach))) as i64));
    }
    Ok(TaggingBatch { ids, targets, batch, steps })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn labels_combine_the_past_and_the_future_token() {
        let config = TaggingConfig { vocab: 5, steps: 6, reach: 2 };
        let b = tagging_task(&config, 3, &mut StdRng::seed_from_u64(0)).unwrap();
        for row in 0..3 {
            let x = &b.ids[row * 6..row * 6 + 6];
            let y = &b.targets[row * 6..row * 6 + 6];
            assert_eq!(y[0] as usize, x[2]);
            assert_eq!(y[1] as usize, x[3]);
            assert_eq!(y[2] as usize, 5 * x[0] + x[4]);
            assert_eq!(y[3] as usize, 5 * x[1] + x[5]);
            assert_eq!(y[4] as usize, 5 * x[2]);
            assert_eq!(y[5] as usize, 5 * x[3]);
        }
        assert_eq!(b, tagging_task(&config, 3, &mut StdRng::seed_from_u64(0)).unwrap());
        assert!(tagging_task(&TaggingConfig { reach: 0, ..config }, 3, &mut StdRng::seed_from_u64(0)).is_err());
    }

    #[test]
    fn the_best_causal_guess_scores_the_ceiling_and_no_better() {
        let config = TaggingConfig::default();
        assert!((tagging_ceiling(&config) - 0.325).abs() < 1e-12);
        let b = tagging_task(&config, 4000, &mut StdRng::seed_from_u64(1)).unwrap();
        let (vocab, steps, k) = (config.vocab, config.steps, config.reach);
        // Causal strategies: the exact label when the future token is outside the sequence; otherwise the past
        // token with a fixed guess for the unseen one, which is right with probability 1/vocab.
        let classes = config.classes();
        for guess in 0..vocab {
            let mut logits = vec![0.0f32; b.ids.len() * classes];
            for (i, row) in logits.chunks_exact_mut(classes).enumerate() {
                let (s, t) = (i / steps, i % steps);
                let past = if t >= k { b.ids[s * steps + t - k] } else { 0 };
                let future = if t + k < steps { guess } else { 0 };
                row[vocab * past + future] = 1.0;
            }
            let acc = b.accuracy(&logits, classes).unwrap();
            assert!((acc - tagging_ceiling(&config)).abs() < 0.01, "guess {guess}: {acc}");
        }
    }
}
