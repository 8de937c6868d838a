//! The embedded Reber grammar (Cleeremans et al., 1989; Hochreiter and Schmidhuber, 1997): next-symbol
//! prediction, where the second symbol must be remembered until the end of the string.
//!
//! The Reber grammar's strings are the walks from `B` to `E` through this graph (each state's two edges equally
//! likely when generating):
//!
//! ```text
//! 1 -B-> 2;  2 -T-> 3, 2 -P-> 4;  3 -S-> 3, 3 -X-> 5;  4 -T-> 4, 4 -V-> 6;
//! 5 -X-> 4, 5 -S-> 7;  6 -P-> 5, 6 -V-> 7;  7 -E-> end
//! ```
//!
//! An embedded string is `B`, then `T` or `P`, then a Reber string, then the same `T` or `P` again, then `E`.
//! Most steps allow two next symbols, but the one after the inner string's `E` is fixed by the symbol seen many
//! steps before. A model reads the string one symbol at a time and predicts the next; a string counts as correct
//! when every prediction is a legal next symbol ([`reber_fraction_correct`]).

use rand::Rng;

use super::metrics::predictions;
use recur::loss::DEFAULT_IGNORE_INDEX;
use recur::{Error, Result};

/// The symbols, by token id: `B T P S X V E`.
pub const REBER_SYMBOLS: [char; 7] = ['B', 'T', 'P', 'S', 'X', 'V', 'E'];
/// Token ids (and output classes).
pub const REBER_VOCAB: usize = REBER_SYMBOLS.len();

const B: usize = 0;
const T: usize = 1;
const P: usize = 2;
const S: usize = 3;
const X: usize = 4;
const V: usize = 5;
const E: usize = 6;

/// The inner grammar's edges: `(state, symbol, next state)`, states as in the module documentation, 8 = end.
const EDGES: [(u8, usize, u8); 12] = [
    (1, B, 2),
    (2, T, 3),
    (2, P, 4),
    (3, S, 3),
    (3, X, 5),
    (4, T, 4),
    (4, V, 6),
    (5, X, 4),
    (5, S, 7),
    (6, P, 5),
    (6, V, 7),
    (7, E, 8),
];

/// Where a reader of an embedded string is: before the outer `B`, before the branch symbol, inside the inner
/// string (remembering the branch), before the repeated branch symbol, before the final `E`, or done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Branch,
    Inner { branch: usize, state: u8 },
    Repeat { branch: usize },
    Final,
    Done,
}

impl State {
    fn next(self, symbol: usize) -> Option<State> {
        match self {
            State::Start => (symbol == B).then_some(State::Branch),
            State::Branch => matches!(symbol, T | P).then_some(State::Inner { branch: symbol, state: 1 }),
            State::Inner { branch, state } => {
                let &(_, _, to) = EDGES.iter().find(|&&(from, s, _)| from == state && s == symbol)?;
                Some(if to == 8 { State::Repeat { branch } } else { State::Inner { branch, state: to } })
            }
            State::Repeat { branch } => (symbol == branch).then_some(State::Final),
            State::Final => (symbol == E).then_some(State::Done),
            State::Done => None,
        }
    }

    /// The legal next symbols, as a bit set (bit `s` for symbol id `s`).
    fn legal(self) -> u8 {
        (0..REBER_VOCAB).filter(|&s| self.next(s).is_some()).fold(0, |set, s| set | 1 << s)
    }
}

/// Whether `ids` is a complete embedded Reber string.
pub fn reber_accepts(ids: &[usize]) -> bool {
    ids.iter().try_fold(State::Start, |state, &s| state.next(s)) == Some(State::Done)
}

/// For every prefix `ids[..=t]` of a (possibly partial) embedded Reber string, the set of legal next symbols as
/// a bit set (bit `s` set when symbol id `s` may follow); `None` when the prefix already leaves the grammar.
pub fn reber_legal_next(ids: &[usize]) -> Option<Vec<u8>> {
    let mut state = State::Start;
    let mut sets = Vec::with_capacity(ids.len());
    for &s in ids {
        state = state.next(s)?;
        sets.push(state.legal());
    }
    Some(sets)
}

/// Draws one embedded Reber string, each choice between two edges a fair coin.
pub fn reber_string(rng: &mut impl Rng) -> Vec<usize> {
    let mut ids = Vec::new();
    let mut state = State::Start;
    while state != State::Done {
        let legal: Vec<usize> = (0..REBER_VOCAB).filter(|&s| state.next(s).is_some()).collect();
        let symbol = legal[rng.random_range(0..legal.len())];
        state = state.next(symbol).expect("a legal symbol");
        ids.push(symbol);
    }
    ids
}

/// Writes token ids as letters, e.g. `BTBTXSETE`; ids outside the alphabet become `?`.
pub fn reber_letters(ids: &[usize]) -> String {
    ids.iter().map(|&i| REBER_SYMBOLS.get(i).copied().unwrap_or('?')).collect()
}

/// A padded batch of embedded Reber strings for next-symbol prediction, batch-first (`b·steps + t`).
///
/// A string of `n` symbols gives `n − 1` steps: the input at step `t` is symbol `t`, the target symbol `t + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReberBatch {
    /// Input token ids, `batch × steps`; padding is `0` (`B`), past each sequence's length.
    pub ids: Vec<usize>,
    /// The next symbol at every step, `batch × steps`; `-100` (ignored by the cross-entropy) at padding.
    pub targets: Vec<i64>,
    /// The legal next symbols at every step as a bit set (bit `s` for symbol id `s`), `batch × steps`; 0 at
    /// padding.
    pub legal: Vec<u8>,
    /// Valid steps of each sequence (its string's length − 1).
    pub lengths: Vec<usize>,
    /// Sequences `B`.
    pub batch: usize,
    /// Steps `T` of the padded batch: the longest sequence.
    pub steps: usize,
}

/// Draws `batch ≥ 1` embedded Reber strings as a padded batch.
pub fn reber_batch(batch: usize, rng: &mut impl Rng) -> Result<ReberBatch> {
    if batch == 0 {
        return Err(Error::config("a Reber batch needs at least one string, found batch=0"));
    }
    let strings: Vec<Vec<usize>> = (0..batch).map(|_| reber_string(rng)).collect();
    let lengths: Vec<usize> = strings.iter().map(|s| s.len() - 1).collect();
    let steps = *lengths.iter().max().expect("batch ≥ 1");
    let mut ids = vec![B; batch * steps];
    let mut targets = vec![DEFAULT_IGNORE_INDEX; batch * steps];
    let mut legal = vec![0u8; batch * steps];
    for (b, string) in strings.iter().enumerate() {
        let sets = reber_legal_next(string).expect("generated strings are in the grammar");
        for t in 0..lengths[b] {
            ids[b * steps + t] = string[t];
            targets[b * steps + t] = string[t + 1] as i64;
            legal[b * steps + t] = sets[t];
        }
    }
    Ok(ReberBatch { ids, targets, legal, lengths, batch, steps })
}

/// The fraction of strings whose every prediction is legal: the argmax of each valid step's logits (`batch·steps ×
/// classes`, batch-first like the ids) must lie in that step's legal set. Padded steps are not read.
pub fn reber_fraction_correct(batch: &ReberBatch, logits: &[f32], classes: usize) -> Result<f64> {
    let rows = batch.batch * batch.steps;
    if classes != REBER_VOCAB || logits.len() != rows * classes {
        return Err(Error::shape(
            "logits",
            format!("[{rows}, {REBER_VOCAB}]"),
            &[logits.len() / classes.max(1), classes],
        ));
    }
    let predicted = predictions(logits, classes)?;
    let correct = (0..batch.batch)
        .filter(|&b| {
            (0..batch.lengths[b]).all(|t| batch.legal[b * batch.steps + t] & (1 << predicted[b * batch.steps + t]) != 0)
        })
        .count();
    Ok(correct as f64 / batch.batch as f64)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn ids(letters: &str) -> Vec<usize> {
        letters.chars().map(|c| REBER_SYMBOLS.iter().position(|&s| s == c).unwrap()).collect()
    }

    fn set(letters: &str) -> u8 {
        ids(letters).iter().fold(0, |s, &i| s | 1 << i)
    }

    #[test]
    fn legal_next_sets_of_a_hand_checked_string() {
        let string = ids("BTBTXSETE");
        assert!(reber_accepts(&string));
        let expected = ["TP", "B", "TP", "SX", "XS", "E", "T", "E", ""].map(set);
        assert_eq!(reber_legal_next(&string).unwrap(), expected);
        // The lower inner path, and the other branch: after the inner E only P may follow.
        let other = ids("BPBPTVVEPE");
        assert!(reber_accepts(&other));
        assert_eq!(reber_legal_next(&other).unwrap()[7], set("P"));
    }

    #[test]
    fn the_grammar_rejects_what_it_should() {
        for bad in ["BTBTXSEPE", "BTBTXSET", "TBTXSETE", "BTBTSETE", "BTBTXSETEE", ""] {
            assert!(!reber_accepts(&ids(bad)), "{bad}");
        }
        assert_eq!(reber_legal_next(&ids("BTBTXSEP")), None);
    }

    #[test]
    fn generated_strings_are_in_the_grammar_and_deterministic() {
        let mut rng = StdRng::seed_from_u64(4);
        let strings: Vec<Vec<usize>> = (0..500).map(|_| reber_string(&mut rng)).collect();
        assert!(strings.iter().all(|s| reber_accepts(s)), "{:?}", strings.iter().map(|s| reber_letters(s)));
        // Both branches and both inner paths occur.
        for needle in ["BT", "BP", "BTBT", "BTBP", "BPBT", "BPBP"] {
            assert!(strings.iter().any(|s| reber_letters(s).starts_with(needle)), "{needle}");
        }
        let mut again = StdRng::seed_from_u64(4);
        assert_eq!(reber_string(&mut again), strings[0]);
    }

    #[test]
    fn batch_pads_and_scores_legal_predictions() {
        let batch = reber_batch(8, &mut StdRng::seed_from_u64(2)).unwrap();
        assert_eq!(batch.steps, *batch.lengths.iter().max().unwrap());
        assert!(batch.lengths.iter().any(|&l| l < batch.steps), "lengths vary");
        for b in 0..8 {
            let row = b * batch.steps;
            let mut string = batch.ids[row..row + batch.lengths[b]].to_vec();
            string.push(batch.targets[row + batch.lengths[b] - 1] as usize);
            assert!(reber_accepts(&string), "{}", reber_letters(&string));
            assert!(batch.targets[row + batch.lengths[b]..row + batch.steps].iter().all(|&y| y == -100));
        }
        // Logits that put each step's target first: every prediction legal.
        let one_hot = |y: i64| (0..REBER_VOCAB).map(move |c| if c as i64 == y { 1.0f32 } else { 0.0 });
        let right: Vec<f32> = batch.targets.iter().flat_map(|&y| one_hot(y)).collect();
        assert_eq!(reber_fraction_correct(&batch, &right, REBER_VOCAB).unwrap(), 1.0);
        // Always predicting B is legal only at the step after the branch symbol: no string is correct.
        let always_b: Vec<f32> = batch.targets.iter().flat_map(|_| one_hot(0)).collect();
        assert_eq!(reber_fraction_correct(&batch, &always_b, REBER_VOCAB).unwrap(), 0.0);
        // One wrong step in sequence 0 costs exactly that string.
        let mut one_wrong = right.clone();
        let t = batch.lengths[0] - 1; // predicting the final E; B is illegal there
        one_wrong[t * REBER_VOCAB..(t + 1) * REBER_VOCAB].copy_from_slice(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(reber_fraction_correct(&batch, &one_wrong, REBER_VOCAB).unwrap(), 7.0 / 8.0);
        assert!(reber_fraction_correct(&batch, &right[1..], REBER_VOCAB).is_err());
        assert_eq!(batch, reber_batch(8, &mut StdRng::seed_from_u64(2)).unwrap());
    }
}
