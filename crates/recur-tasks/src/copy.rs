//! The copy-memory task (Hochreiter and Schmidhuber, 1997; in this form Arjovsky et al., 2016): remember 10
//! symbols across a gap of `T` steps and reproduce them after a delimiter.
//!
//! A sequence has `T + 20` steps, token ids `0` = blank, `1..=8` = the symbols, `9` = delimiter:
//!
//! ```text
//! input:   s₁ … s₁₀  0 … 0 (T−1 blanks)  9   0 … 0 (10 blanks)
//! target:  0 … 0 (T + 10 blanks)             s₁ … s₁₀
//! ```
//!
//! The loss is the cross-entropy at every step. A memoryless model predicts blank for the first `T + 10` steps
//! (no loss) and guesses uniformly among the 8 symbols for the last 10, scoring `10·ln 8 / (T + 20)`
//! ([`copy_baseline`]); below that, the model has carried the symbols across the gap. Accuracy is per symbol,
//! over the 10 recall steps only ([`CopyBatch::accuracy`]).

use rand::Rng;

use super::metrics::accuracy;
use recur::loss::DEFAULT_IGNORE_INDEX;
use recur::{Error, Result};

/// Symbols to remember.
pub const COPY_LENGTH: usize = 10;
/// Size of the alphabet the symbols are drawn from (ids `1..=8`).
pub const COPY_ALPHABET: usize = 8;
/// The blank token id (also the target while nothing is to be recalled).
pub const COPY_BLANK: usize = 0;
/// The delimiter token id: "reproduce now".
pub const COPY_DELIMITER: usize = COPY_ALPHABET + 1;
/// Token ids (and output classes): blank, 8 symbols, delimiter.
pub const COPY_VOCAB: usize = COPY_ALPHABET + 2;

/// One batch of the copy task, batch-first: sequence `b`'s step `t` is at `b·steps + t`.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyBatch {
    /// Input token ids in `0..COPY_VOCAB`, `batch × steps`.
    pub ids: Vec<usize>,
    /// The class to predict at every step (blank, or a recalled symbol), `batch × steps`: scoring all of them is
    /// the loss [`copy_baseline`] refers to.
    pub targets: Vec<i64>,
    /// Sequences `B`.
    pub batch: usize,
    /// Steps per sequence, `T + 20`.
    pub steps: usize,
}

impl CopyBatch {
    /// Whether step `t` of a sequence is one of the 10 recall steps (the last 10).
    pub fn is_recall_step(&self, t: usize) -> bool {
        t + COPY_LENGTH >= self.steps
    }

    /// [`CopyBatch::targets`] with every step but the recall steps set to `-100`, the cross-entropy's ignore
    /// value: to train or score on the symbols alone (the memoryless loss is then `ln 8`).
    pub fn recall_targets(&self) -> Vec<i64> {
        (0..self.targets.len())
            .map(|i| if self.is_recall_step(i % self.steps) { self.targets[i] } else { DEFAULT_IGNORE_INDEX })
            .collect()
    }

    /// Per-symbol accuracy: the fraction of recall steps whose argmax over `logits` (`batch·steps × classes`,
    /// batch-first like the ids) is the right symbol.
    pub fn accuracy(&self, logits: &[f32], classes: usize) -> Result<f64> {
        accuracy(logits, classes, &self.recall_targets())
    }
}

/// The cross-entropy (nats per step, over all `T + 20` steps) of the best memoryless model: `10·ln 8 / (T + 20)`.
pub fn copy_baseline(gap: usize) -> f64 {
    COPY_LENGTH as f64 * (COPY_ALPHABET as f64).ln() / (gap + 2 * COPY_LENGTH) as f64
}

/// Draws `batch` sequences with a gap of `gap ≥ 1` steps (`T` above): `T + 20` steps each.
pub fn copy_task(batch: usize, gap: usize, rng: &mut impl Rng) -> Result<CopyBatch> {
    if gap == 0 {
        return Err(Error::config("the copy task's gap T must be at least 1 (it includes the delimiter), found 0"));
    }
    let steps = gap + 2 * COPY_LENGTH;
    let mut ids = vec![COPY_BLANK; batch * steps];
    let mut targets = vec![COPY_BLANK as i64; batch * steps];
    for b in 0..batch {
        let (ids, targets) = (&mut ids[b * steps..(b + 1) * steps], &mut targets[b * steps..(b + 1) * steps]);
        for i in 0..COPY_LENGTH {
            let symbol = rng.random_range(1..=COPY_ALPHABET);
            ids[i] = symbol;
            targets[steps - COPY_LENGTH + i] = symbol as i64;
        }
        ids[COPY_LENGTH + gap - 1] = COPY_DELIMITER;
    }
    Ok(CopyBatch { ids, targets, batch, steps })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use recur::CrossEntropyLoss;

    #[test]
    fn layout_is_symbols_gap_delimiter_recall() {
        let gap = 5;
        let b = copy_task(3, gap, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!((b.batch, b.steps), (3, 25));
        for s in 0..3 {
            let ids = &b.ids[s * 25..(s + 1) * 25];
            let targets = &b.targets[s * 25..(s + 1) * 25];
            assert!(ids[..10].iter().all(|&i| (1..=8).contains(&i)));
            assert!(ids[10..14].iter().all(|&i| i == COPY_BLANK), "T − 1 = 4 blanks");
            assert_eq!(ids[14], COPY_DELIMITER);
            assert!(ids[15..].iter().all(|&i| i == COPY_BLANK));
            assert!(targets[..15].iter().all(|&y| y == 0));
            let recalled: Vec<usize> = targets[15..].iter().map(|&y| y as usize).collect();
            assert_eq!(recalled, ids[..10]);
        }
        assert_eq!(b, copy_task(3, gap, &mut StdRng::seed_from_u64(1)).unwrap(), "deterministic for a seed");
        assert_ne!(b, copy_task(3, gap, &mut StdRng::seed_from_u64(2)).unwrap());
        assert!(copy_task(3, 0, &mut StdRng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn the_memoryless_model_scores_the_baseline() {
        let gap = 30;
        let b = copy_task(4, gap, &mut StdRng::seed_from_u64(7)).unwrap();
        // Certain of blank before the recall steps, uniform over the 8 symbols during them.
        let mut logits = vec![-1e4f32; b.ids.len() * COPY_VOCAB];
        for (i, row) in logits.chunks_exact_mut(COPY_VOCAB).enumerate() {
            if b.is_recall_step(i % b.steps) {
                row[1..=COPY_ALPHABET].fill(0.0);
            } else {
                row[COPY_BLANK] = 0.0;
            }
        }
        let (loss, _) = CrossEntropyLoss::<f32>::new().forward(&logits, COPY_VOCAB, &b.targets, None).unwrap();
        assert!((loss as f64 - copy_baseline(gap)).abs() < 1e-5, "{loss} vs {}", copy_baseline(gap));
        assert!((copy_baseline(gap) - 10.0 * 8f64.ln() / 50.0).abs() < 1e-12);
        // Its accuracy is that of the first symbol it ties on (symbol 1): about 1/8, and not the 0.85 that
        // counting the blanks would give.
        let acc = b.accuracy(&logits, COPY_VOCAB).unwrap();
        assert!(acc < 0.4, "{acc}");
        let perfect: Vec<f32> = b
            .targets
            .iter()
            .flat_map(|&y| (0..COPY_VOCAB).map(move |c| if c as i64 == y { 1.0 } else { 0.0 }))
            .collect();
        assert_eq!(b.accuracy(&perfect, COPY_VOCAB).unwrap(), 1.0);
    }
}
