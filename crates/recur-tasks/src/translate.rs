//! Sequence-to-sequence tasks for an encoder–decoder (with or without attention): a source string in, a target
//! string out, of a different length and order.
//!
//! | task | source | target | source length |
//! |---|---|---|---|
//! | [`TranslateTask::Reverse`] | letters `a`–`j`, e.g. `abcj` | the same letters reversed, `jcba` | uniform in `1..=max_len` |
//! | [`TranslateTask::Sort`] | digits `0`–`9`, e.g. `3141` | the digits sorted ascending, `1134` | uniform in `1..=max_len` |
//! | [`TranslateTask::Add`] | two numbers, e.g. `123+4567` | their sum, `4690` | at most `max_len` (≥ 3) |
//! | [`TranslateTask::Dates`] | a date in one of 12 [`DateFormat`]s, e.g. `Fri 29 Aug 1958` | ISO `1958-08-29` | set by the format |
//!
//! **Add**: each operand has a number of digits uniform in `1..=max(1, (max_len − 1) / 2)` and is then uniform
//! among the numbers of that many digits (no leading zeros; a one-digit operand may be `0`), so that the source
//! fits in `max_len` characters; `max_len` must be at least 3 (`d+d`). The sum is written without leading
//! zeros. Operands of any length are added digit by digit, so a long `max_len` never overflows.
//!
//! **Dates**: a format is drawn uniformly from [`DateFormat::ALL`], then a day uniformly from the format's
//! [`DateFormat::years`] (1900–2099, except the two-digit-year `8/29/58`, drawn from 1900–1999 only, so that a
//! two-digit year always means 19xx and the target is determined by the source). `max_len` does not bound a date
//! (its length is set by its format, at most 29 characters) but must still be at least 1.
//!
//! Each side has a fixed alphabet ([`TranslateTask::source_chars`], [`TranslateTask::target_chars`]), so that a
//! model's vocabulary does not depend on the data drawn; a [`TokenVocab`] numbers it after three special
//! tokens, [`PAD`], [`BOS`] and [`EOS`]. A [`TranslateBatch`] is laid out for teacher forcing: the decoder reads
//! `BOS y₁ … yₙ` and is trained to output `y₁ … yₙ EOS`.
//!
//! Scores ([`score_translations`]) compare decoded strings: the fraction of outputs that are exactly right, and
//! per-token accuracy, position by position against the target followed by `EOS`.
//!
//! ```
//! use rand::SeedableRng;
//! use recur_tasks::{EOS, TranslateTask, translate_batch};
//!
//! let task: TranslateTask = "reverse".parse()?;
//! let batch = translate_batch(task, 4, 6, &mut rand::rngs::StdRng::seed_from_u64(0))?;
//! let (source, target) = &batch.pairs[0];
//! assert_eq!(*target, source.chars().rev().collect::<String>());
//! // The first target ends in EOS after its characters.
//! let n = batch.target_lengths[0];
//! assert_eq!(batch.targets[n - 1], EOS as i64);
//! # Ok::<(), recur::Error>(())
//! ```

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::vocab::Vocabulary;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur::loss::DEFAULT_IGNORE_INDEX;
use recur::{Error, Result};

/// The padding token id: after a sequence's end in [`TranslateBatch::source`] and
/// [`TranslateBatch::decoder_input`].
pub const PAD: usize = 0;
/// The begin-of-sequence token id: the decoder's first input.
pub const BOS: usize = 1;
/// The end-of-sequence token id: the decoder's last target.
pub const EOS: usize = 2;
/// The number of special tokens before the characters of a [`TokenVocab`].
pub const SPECIAL_TOKENS: usize = 3;

/// The letters of the reverse task.
const REVERSE_CHARS: &str = "abcdefghij";
/// The digits of the sort and add tasks.
const DIGITS: &str = "0123456789";

/// One of the four sequence-to-sequence tasks; see the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TranslateTask {
    /// Letters `a`–`j`, reversed.
    Reverse,
    /// Digits, sorted ascending.
    Sort,
    /// `a+b` in decimal, to the sum.
    Add,
    /// A date in one of many formats, to ISO `YYYY-MM-DD`.
    Dates,
}

impl TranslateTask {
    /// Every task, in the order of the module's table.
    pub const ALL: [TranslateTask; 4] =
        [TranslateTask::Reverse, TranslateTask::Sort, TranslateTask::Add, TranslateTask::Dates];

    /// The task's name: `reverse`, `sort`, `add` or `dates` (what [`FromStr`] reads).
    pub fn name(self) -> &'static str {
        match self {
            TranslateTask::Reverse => "reverse",
            TranslateTask::Sort => "sort",
            TranslateTask::Add => "add",
            TranslateTask::Dates => "dates",
        }
    }

    /// The characters a source may hold, sorted by code point. Fixed, so that a model's vocabulary does not depend
    /// on the data drawn. For dates this is every ASCII letter and digit and ` ,-./`, a superset of what the
    /// formats write.
    pub fn source_chars(self) -> Vec<char> {
        match self {
            TranslateTask::Reverse => REVERSE_CHARS.chars().collect(),
            TranslateTask::Sort => DIGITS.chars().collect(),
            TranslateTask::Add => "+0123456789".chars().collect(),
            TranslateTask::Dates => " ,-./".chars().chain('0'..='9').chain('A'..='Z').chain('a'..='z').collect(),
        }
    }

    /// The characters a target may hold, sorted by code point.
    pub fn target_chars(self) -> Vec<char> {
        match self {
            TranslateTask::Reverse => REVERSE_CHARS.chars().collect(),
            TranslateTask::Sort | TranslateTask::Add => DIGITS.chars().collect(),
            TranslateTask::Dates => "-0123456789".chars().collect(),
        }
    }

    /// The token vocabulary of the source side: [`TokenVocab::new`] of [`TranslateTask::source_chars`].
    pub fn source_vocab(self) -> TokenVocab {
        TokenVocab::new(&self.source_chars())
    }

    /// The token vocabulary of the target side: [`TokenVocab::new`] of [`TranslateTask::target_chars`].
    pub fn target_vocab(self) -> TokenVocab {
        TokenVocab::new(&self.target_chars())
    }

    /// Draws one `(source, target)` pair with sources of at most `max_len` characters (dates: see the
    /// [module documentation](self)). `max_len` 0, or below 3 for `add`, is an [`Error::Config`].
    pub fn example(self, max_len: usize, rng: &mut impl Rng) -> Result<(String, String)> {
        self.check_max_len(max_len)?;
        let pair = match self {
            TranslateTask::Reverse => {
                let source = random_string(REVERSE_CHARS.as_bytes(), rng.random_range(1..=max_len), rng);
                let target = source.chars().rev().collect();
                (source, target)
            }
            TranslateTask::Sort => {
                let source = random_string(DIGITS.as_bytes(), rng.random_range(1..=max_len), rng);
                let mut target: Vec<char> = source.chars().collect();
                target.sort_unstable();
                (source, target.into_iter().collect())
            }
            TranslateTask::Add => {
                let most = ((max_len - 1) / 2).max(1);
                let a = random_number(rng.random_range(1..=most), rng);
                let b = random_number(rng.random_range(1..=most), rng);
                let sum = add_decimal(&a, &b);
                (format!("{a}+{b}"), sum)
            }
            TranslateTask::Dates => {
                let (_, source, target) = date_example(rng);
                (source, target)
            }
        };
        Ok(pair)
    }

    /// The correct target for `source`: reversed, sorted, the sum, or the ISO date ([`parse_date`] reads any of
    /// the [`DateFormat`]s back). A character outside [`TranslateTask::source_chars`] is an [`Error::Index`]
    /// naming it and its position; an `add` source that is not `digits+digits`, or a date that cannot be read, is
    /// an [`Error::Decode`].
    pub fn answer(self, source: &str) -> Result<String> {
        let allowed = self.source_chars();
        for (i, c) in source.chars().enumerate() {
            if !allowed.contains(&c) {
                return Err(Error::Index {
                    what: format!("character at position {i} of a {self} source"),
                    index: format!("{c:?}"),
                    valid: format!("one of {:?}", allowed.iter().collect::<String>()),
                });
            }
        }
        match self {
            TranslateTask::Reverse => Ok(source.chars().rev().collect()),
            TranslateTask::Sort => {
                let mut chars: Vec<char> = source.chars().collect();
                chars.sort_unstable();
                Ok(chars.into_iter().collect())
            }
            TranslateTask::Add => {
                let parts: Vec<&str> = source.split('+').collect();
                match parts[..] {
                    [a, b] if !a.is_empty() && !b.is_empty() => Ok(add_decimal(a, b)),
                    _ => Err(Error::Decode {
                        what: format!("add source {source:?}"),
                        reason: "expected two non-empty digit strings joined by one '+'".into(),
                    }),
                }
            }
            TranslateTask::Dates => Ok(parse_date(source)?.iso()),
        }
    }

    fn check_max_len(self, max_len: usize) -> Result<()> {
        let least = if self == TranslateTask::Add { 3 } else { 1 };
        if max_len < least {
            let why = if self == TranslateTask::Add { " (one digit, '+', one digit)" } else { "" };
            return Err(Error::config(format!(
                "the {self} task's max_len must be at least {least}{why}, found {max_len}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for TranslateTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TranslateTask {
    type Err = Error;

    /// Reads a task's [`TranslateTask::name`]; anything else is an [`Error::Config`] naming the valid names.
    fn from_str(s: &str) -> Result<Self> {
        TranslateTask::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = TranslateTask::ALL.iter().map(|t| t.name()).collect();
            Error::config(format!("unknown translation task {s:?}, expected one of {}", names.join(", ")))
        })
    }
}

fn random_string(alphabet: &[u8], len: usize, rng: &mut impl Rng) -> String {
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

/// A number of `digits` decimal digits, uniform among those numbers (no leading zero; one digit includes 0).
fn random_number(digits: usize, rng: &mut impl Rng) -> String {
    let mut s = String::with_capacity(digits);
    let first = if digits == 1 { rng.random_range(0..=9u8) } else { rng.random_range(1..=9u8) };
    s.push((b'0' + first) as char);
    for _ in 1..digits {
        s.push((b'0' + rng.random_range(0..=9u8)) as char);
    }
    s
}

/// The sum of two decimal digit strings, without leading zeros (`"0"` for zero).
fn add_decimal(a: &str, b: &str) -> String {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut digits = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let da = if i < a.len() { a[a.len() - 1 - i] - b'0' } else { 0 };
        let db = if i < b.len() { b[b.len() - 1 - i] - b'0' } else { 0 };
        let s = da + db + carry;
        digits.push(b'0' + s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        digits.push(b'0' + carry);
    }
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    digits.iter().rev().map(|&d| d as char).collect()
}

/// A vocabulary of token ids for one side of a task: [`PAD`] = 0, [`BOS`] = 1, [`EOS`] = 2, then the characters
/// sorted by code point (the first character is id 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenVocab {
    chars: Vec<char>,
}

// A token vocabulary is never empty: it always holds the three special tokens.
#[allow(clippy::len_without_is_empty)]
impl TokenVocab {
    /// The metadata key under which a model file stores its source vocabulary ([`TokenVocab::to_metadata`]).
    pub const SOURCE_METADATA_KEY: &str = "source_vocabulary";
    /// The metadata key under which a model file stores its target vocabulary ([`TokenVocab::to_metadata`]).
    pub const TARGET_METADATA_KEY: &str = "target_vocabulary";

    /// The vocabulary of `chars`, sorted and without repeats, after the three special tokens.
    pub fn new(chars: &[char]) -> Self {
        let mut chars = chars.to_vec();
        chars.sort_unstable();
        chars.dedup();
        TokenVocab { chars }
    }

    /// Number of token ids, the special tokens included (the size of a model's embedding and output).
    pub fn len(&self) -> usize {
        SPECIAL_TOKENS + self.chars.len()
    }

    /// The characters, in id order (character `i` has id `i + 3`).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok().map(|i| i + SPECIAL_TOKENS)
    }

    /// The ids of `text`'s characters, without [`BOS`] or [`EOS`]; a character outside the vocabulary is an
    /// [`Error::Index`] naming it and its position.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| Error::Index {
                    what: format!("character at position {i}"),
                    index: format!("{c:?}"),
                    valid: format!("one of {:?}", self.chars.iter().collect::<String>()),
                })
            })
            .collect()
    }

    /// The text of `ids` (a model's output): stops at the first [`EOS`] and skips [`PAD`] and [`BOS`]. An id
    /// `≥ len()` decodes as `U+FFFD` (`�`), which matches no target character, so that it scores as wrong.
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .take_while(|&&i| i != EOS)
            .filter(|&&i| i != PAD && i != BOS)
            .map(|&i| self.chars.get(i - SPECIAL_TOKENS).copied().unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }

    /// The vocabulary as one string: its characters in id order (the special tokens are implied).
    pub fn to_metadata(&self) -> String {
        self.chars.iter().collect()
    }

    /// Reads [`TokenVocab::to_metadata`]'s string back. The characters must be strictly increasing (sorted,
    /// without repeats), else it is an [`Error::Decode`]: ids would not mean what they meant in training.
    pub fn from_metadata(s: &str) -> Result<Self> {
        Vocabulary::from_metadata(s).map(|v| TokenVocab { chars: v.chars().to_vec() })
    }
}

/// A batch of pairs laid out for teacher forcing, batch-first (sequence `b`'s step `t` is at `b·steps + t`).
///
/// ```text
/// source:         x₁ … xₘ PAD …          (source_lengths[b] = m)
/// decoder_input:  BOS y₁ … yₙ PAD …      (target_lengths[b] = n + 1)
/// targets:        y₁ … yₙ EOS −100 …
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TranslateBatch {
    /// Sequences `B`.
    pub batch: usize,
    /// Source token ids, `batch × source_steps`, [`PAD`] after each sequence's end.
    pub source: Vec<usize>,
    /// Each source's length in tokens, at least 1.
    pub source_lengths: Vec<usize>,
    /// The longest source of the batch.
    pub source_steps: usize,
    /// The decoder's inputs, `batch × target_steps`: [`BOS`] and the target's tokens, [`PAD`] after.
    pub decoder_input: Vec<usize>,
    /// The decoder's targets, `batch × target_steps`: the target's tokens and [`EOS`], then `-100`
    /// ([`DEFAULT_IGNORE_INDEX`], which the cross-entropy skips).
    pub targets: Vec<i64>,
    /// Each target's length in tokens with its [`EOS`]: `n + 1` for `n` characters.
    pub target_lengths: Vec<usize>,
    /// The longest target of the batch, with its [`EOS`].
    pub target_steps: usize,
    /// The `(source, target)` strings, for printing examples and scoring.
    pub pairs: Vec<(String, String)>,
}

impl TranslateBatch {
    /// Lays out `pairs` with the given vocabularies (a held-out set, for instance). An empty source is an
    /// [`Error::Config`]; a character outside its vocabulary an [`Error::Index`].
    pub fn from_pairs(pairs: Vec<(String, String)>, source: &TokenVocab, target: &TokenVocab) -> Result<Self> {
        let mut sources = Vec::with_capacity(pairs.len());
        let mut targets_ids = Vec::with_capacity(pairs.len());
        for (i, (s, t)) in pairs.iter().enumerate() {
            if s.is_empty() {
                return Err(Error::config(format!("the source of pair {i} is empty, expected at least 1 character")));
            }
            sources.push(source.encode(s).map_err(|e| in_pair(e, "source", i))?);
            targets_ids.push(target.encode(t).map_err(|e| in_pair(e, "target", i))?);
        }
        let batch = pairs.len();
        let source_steps = sources.iter().map(Vec::len).max().unwrap_or(0);
        let target_steps = targets_ids.iter().map(|t| t.len() + 1).max().unwrap_or(0);
        let mut source_ids = vec![PAD; batch * source_steps];
        let mut decoder_input = vec![PAD; batch * target_steps];
        let mut targets = vec![DEFAULT_IGNORE_INDEX; batch * target_steps];
        for b in 0..batch {
            source_ids[b * source_steps..][..sources[b].len()].copy_from_slice(&sources[b]);
            let (input, out) =
                (&mut decoder_input[b * target_steps..], &mut targets[b * target_steps..(b + 1) * target_steps]);
            input[0] = BOS;
            for (t, &id) in targets_ids[b].iter().enumerate() {
                input[t + 1] = id;
                out[t] = id as i64;
            }
            out[targets_ids[b].len()] = EOS as i64;
        }
        Ok(TranslateBatch {
            batch,
            source: source_ids,
            source_lengths: sources.iter().map(Vec::len).collect(),
            source_steps,
            decoder_input,
            targets,
            target_lengths: targets_ids.iter().map(|t| t.len() + 1).collect(),
            target_steps,
            pairs,
        })
    }
}

/// Names the side and pair of an unknown character.
fn in_pair(error: Error, side: &str, pair: usize) -> Error {
    match error {
        Error::Index { what, index, valid } => {
            Error::Index { what: format!("{what} of the {side} of pair {pair}"), index, valid }
        }
        other => other,
    }
}

/// Draws `batch` pairs of `task` ([`TranslateTask::example`]) and lays them out with the task's vocabularies.
pub fn translate_batch(
    task: TranslateTask,
    batch: usize,
    max_len: usize,
    rng: &mut impl Rng,
) -> Result<TranslateBatch> {
    task.check_max_len(max_len)?;
    let pairs = (0..batch).map(|_| task.example(max_len, rng)).collect::<Result<Vec<_>>>()?;
    TranslateBatch::from_pairs(pairs, &task.source_vocab(), &task.target_vocab())
}

/// A fixed held-out set of `count` pairs, drawn from its own `seed` (with ChaCha8, whose stream does not change
/// between `rand` versions), so that scores are comparable between runs. Training batches drawn from another
/// generator may contain some of the same pairs, as short sources are few.
pub fn translate_held_out(
    task: TranslateTask,
    count: usize,
    max_len: usize,
    seed: u64,
) -> Result<Vec<(String, String)>> {
    task.check_max_len(max_len)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| task.example(max_len, &mut rng)).collect()
}

/// How well predicted strings match the expected ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TranslateScore {
    /// The fraction of predictions equal to their expected string.
    pub exact_match: f64,
    /// Per-token accuracy: each string is followed by an end token, and positions are compared one by one; a
    /// position only one of the two has counts as wrong. `Σ correct / Σ max(len(pred) + 1, len(expected) + 1)`,
    /// summed over examples (lengths in characters).
    pub token_accuracy: f64,
    /// The number of examples scored.
    pub count: usize,
}

/// Scores `predicted` strings (decoded, e.g. by [`TokenVocab::decode`]) against `expected` ones; see
/// [`TranslateScore`]. Different numbers of strings are an [`Error::Shape`]; with none the scores are NaN, like a
/// mean over nothing.
pub fn score_translations(predicted: &[String], expected: &[String]) -> Result<TranslateScore> {
    if predicted.len() != expected.len() {
        return Err(Error::shape(
            "predictions",
            format!("[{}] (one per expected string)", expected.len()),
            &[predicted.len()],
        ));
    }
    let (mut exact, mut correct, mut positions) = (0usize, 0usize, 0usize);
    for (p, e) in predicted.iter().zip(expected) {
        exact += usize::from(p == e);
        // `None` stands for the end token after each string.
        let p: Vec<Option<char>> = p.chars().map(Some).chain([None]).collect();
        let e: Vec<Option<char>> = e.chars().map(Some).chain([None]).collect();
        correct += p.iter().zip(&e).filter(|(a, b)| a == b).count();
        positions += p.len().max(e.len());
    }
    let n = expected.len();
    Ok(TranslateScore {
        exact_match: exact as f64 / n as f64,
        token_accuracy: correct as f64 / positions as f64,
        count: n,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Whether `year` is a leap year of the Gregorian calendar (divisible by 4, and not by 100 unless by 400).
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days of `month` (1–12) in `year`; 0 for a month outside 1–12.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A valid day of the (proleptic) Gregorian calendar, years 1–9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u32,
    day: u32,
}

impl Date {
    /// The date `year-month-day`; a year outside 1–9999, a month outside 1–12 or a day the month does not have
    /// (29 February 1900) is an [`Error::Index`].
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self> {
        if !(1..=9999).contains(&year) {
            return Err(Error::Index { what: "year".into(), index: year.to_string(), valid: "1..=9999".into() });
        }
        if !(1..=12).contains(&month) {
            return Err(Error::Index { what: "month".into(), index: month.to_string(), valid: "1..=12".into() });
        }
        let days = days_in_month(year, month);
        if !(1..=days).contains(&day) {
            return Err(Error::Index {
                what: format!("day of {} {year}", MONTHS[month as usize - 1]),
                index: day.to_string(),
                valid: format!("1..={days}"),
            });
        }
        Ok(Date { year, month, day })
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(self) -> u32 {
        self.day
    }

    /// Days since 1970-01-01 (negative before), by Hinnant's `days_from_civil`.
    pub fn days_since_epoch(self) -> i64 {
        let y = self.year as i64 - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`); outside years 1–9999 an [`Error::Index`].
    pub fn from_days_since_epoch(days: i64) -> Result<Self> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(i32::try_from(year).unwrap_or(i32::MAX), month, day)
    }

    /// The day of the week, 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
    pub fn weekday(self) -> usize {
        (self.days_since_epoch() + 3).rem_euclid(7) as usize
    }

    /// The English name of [`Date::weekday`], e.g. `Friday`.
    pub fn weekday_name(self) -> &'static str {
        WEEKDAYS[self.weekday()]
    }

    /// The English name of the month, e.g. `August`.
    pub fn month_name(self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    /// ISO 8601, `1958-08-29`: the target of the dates task.
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A human way of writing a date, shown on 29 August 1958 (a Friday). Days and months are unpadded except in
/// `29.08.1958`, `1958/08/29` and `29-Aug-1958`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateFormat {
    /// `29 August 1958`
    DayMonthYear,
    /// `August 29, 1958`
    MonthDayYear,
    /// `8/29/58`: two-digit years mean 19xx, so this format is only drawn for 1900–1999.
    UsShort,
    /// `8/29/1958`
    Us,
    /// `Friday, August 29, 1958`
    WeekdayMonthDayYear,
    /// `29.08.1958`
    Dotted,
    /// `aug 29 1958`
    LowerMonthDay,
    /// `29 aug 1958`
    LowerDayMonth,
    /// `1958/08/29`
    YearFirst,
    /// `29-Aug-1958`
    Dashed,
    /// `Fri 29 Aug 1958`
    ShortWeekday,
    /// `AUGUST 29 1958`
    Upper,
}

impl DateFormat {
    /// Every format, in the order above.
    pub const ALL: [DateFormat; 12] = [
        DateFormat::DayMonthYear,
        DateFormat::MonthDayYear,
        DateFormat::UsShort,
        DateFormat::Us,
        DateFormat::WeekdayMonthDayYear,
        DateFormat::Dotted,
        DateFormat::LowerMonthDay,
        DateFormat::LowerDayMonth,
        DateFormat::YearFirst,
        DateFormat::Dashed,
        DateFormat::ShortWeekday,
        DateFormat::Upper,
    ];

    /// The years the dates task draws this format from: 1900–1999 for [`DateFormat::UsShort`], else 1900–2099.
    pub fn years(self) -> RangeInclusive<i32> {
        match self {
            DateFormat::UsShort => 1900..=1999,
            _ => 1900..=2099,
        }
    }

    /// `date` in this format. A date outside 1900–1999 in [`DateFormat::UsShort`] is an [`Error::Config`]: its
    /// two-digit year would be read back as another century.
    pub fn write(self, date: Date) -> Result<String> {
        let (y, m, d) = (date.year, date.month, date.day);
        let month = date.month_name();
        let short = &month[..3];
        let weekday = date.weekday_name();
        Ok(match self {
            DateFormat::DayMonthYear => format!("{d} {month} {y}"),
            DateFormat::MonthDayYear => format!("{month} {d}, {y}"),
            DateFormat::UsShort => {
                if !(1900..=1999).contains(&y) {
                    return Err(Error::config(format!(
                        "a two-digit year (m/d/yy) stands for 1900–1999, found the year {y}"
                    )));
                }
                format!("{m}/{d}/{:02}", y % 100)
            }
            DateFormat::Us => format!("{m}/{d}/{y}"),
            DateFormat::WeekdayMonthDayYear => format!("{weekday}, {month} {d}, {y}"),
            DateFormat::Dotted => format!("{d:02}.{m:02}.{y}"),
            DateFormat::LowerMonthDay => format!("{} {d} {y}", short.to_lowercase()),
            DateFormat::LowerDayMonth => format!("{d} {} {y}", short.to_lowercase()),
            DateFormat::YearFirst => format!("{y}/{m:02}/{d:02}"),
            DateFormat::Dashed => format!("{d:02}-{short}-{y}"),
            DateFormat::ShortWeekday => format!("{} {d} {short} {y}", &weekday[..3]),
            DateFormat::Upper => format!("{} {d} {y}", month.to_uppercase()),
        })
    }
}

/// One dates example: a uniform format, a uniform day of its years, the source and the ISO target.
fn date_example(rng: &mut impl Rng) -> (DateFormat, String, String) {
    let format = DateFormat::ALL[rng.random_range(0..DateFormat::ALL.len())];
    let years = format.years();
    let first = Date { year: *years.start(), month: 1, day: 1 }.days_since_epoch();
    let last = Date { year: *years.end(), month: 12, day: 31 }.days_since_epoch();
    let date = Date::from_days_since_epoch(rng.random_range(first..=last)).expect("years 1900–2099 are valid");
    let source = format.write(date).expect("each format is drawn within its years");
    (format, source, date.iso())
}

/// Reads a date written in any of the [`DateFormat`]s back (month and weekday names in any case, full or
/// three-letter). Two-digit years are 19xx; a named weekday must be the date's. Anything else is an
/// [`Error::Decode`] (or an [`Error::Index`] for a day the month does not have).
pub fn parse_date(text: &str) -> Result<Date> {
    let fail = |reason: String| Error::Decode { what: format!("date {text:?}"), reason };
    let mut month = None;
    let mut weekday = None;
    let mut numbers: Vec<&str> = Vec::new();
    for token in text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()) {
        if token.bytes().all(|b| b.is_ascii_digit()) {
            numbers.push(token);
        } else if let Some(m) = name_index(&MONTHS, token) {
            if month.replace(m as u32 + 1).is_some() {
                return Err(fail("expected one month name, found two".into()));
            }
        } else if let Some(w) = name_index(&WEEKDAYS, token) {
            if weekday.replace(w).is_some() {
                return Err(fail("expected at most one weekday, found two".into()));
            }
        } else {
            return Err(fail(format!("expected a number, a month or a weekday, found {token:?}")));
        }
    }
    let number = |s: &str| s.parse::<u32>().map_err(|_| fail(format!("the number {s:?} is too long")));
    let (year, month, day) = match (month, &numbers[..]) {
        (Some(m), &[a, b]) => match (a.len(), b.len()) {
            (1 | 2, 4) => (number(b)?, m, number(a)?),
            (4, 1 | 2) => (number(a)?, m, number(b)?),
            _ => return Err(fail(format!("expected a day of 1–2 digits and a year of 4, found {a:?} and {b:?}"))),
        },
        (None, &[a, b, c]) => {
            if a.len() == 4 {
                (number(a)?, number(b)?, number(c)?)
            } else if text.contains('.') && c.len() == 4 {
                (number(c)?, number(b)?, number(a)?)
            } else if text.contains('/') && (c.len() == 2 || c.len() == 4) {
                let y = number(c)?;
                (if c.len() == 2 { 1900 + y } else { y }, number(a)?, number(b)?)
            } else {
                return Err(fail("expected y/m/d, d.m.y or m/d/y".into()));
            }
        }
        (Some(_), _) => return Err(fail(format!("expected a day and a year beside the month, found {numbers:?}"))),
        (None, _) => return Err(fail(format!("expected three numbers or a month name, found {numbers:?}"))),
    };
    let date = Date::new(year as i32, month, day)?;
    if let Some(w) = weekday
        && w != date.weekday()
    {
        return Err(fail(format!("{} was a {}, found {}", date.iso(), date.weekday_name(), WEEKDAYS[w])));
    }
    Ok(date)
}

/// The index of `token` among `names`, matching the full name or its first three letters, in any case.
fn name_index(names: &[&str], token: &str) -> Option<usize> {
    names.iter().position(|n| token.eq_ignore_ascii_case(n) || token.eq_ignore_ascii_case(&n[..3]))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use rand::rngs::StdRng;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn reverse_sort_and_add_examples_are_correct_over_many_seeds() {
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..40 {
                let (s, t) = TranslateTask::Reverse.example(7, &mut rng).unwrap();
                assert!((1..=7).contains(&s.len()) && s.bytes().all(|b| (b'a'..=b'j').contains(&b)), "{s}");
                assert_eq!(t.chars().rev().collect::<String>(), s);

                let (s, t) = TranslateTask::Sort.example(7, &mut rng).unwrap();
                assert!((1..=7).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()), "{s}");
                assert!(t.as_bytes().windows(2).all(|w| w[0] <= w[1]), "{t}");
                let (mut a, mut b): (Vec<u8>, Vec<u8>) = (s.bytes().collect(), t.bytes().collect());
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "the same digits");

                let (s, t) = TranslateTask::Add.example(9, &mut rng).unwrap();
                assert!(s.len() <= 9, "{s}");
                let (x, y) = s.split_once('+').unwrap();
                assert!((1..=4).contains(&x.len()) && (1..=4).contains(&y.len()), "{s}");
                assert!(x.len() == 1 || !x.starts_with('0'), "{s}");
                let sum = x.parse::<u64>().unwrap() + y.parse::<u64>().unwrap();
                assert_eq!(t, sum.to_string(), "{s}");
                assert_eq!(TranslateTask::Add.answer(&s).unwrap(), t);
            }
        }
    }

    #[test]
    fn long_additions_carry_through_every_digit() {
        assert_eq!(add_decimal("99999999999999999999999", "1"), "100000000000000000000000");
        assert_eq!(add_decimal("0", "0"), "0");
        assert_eq!(add_decimal("007", "1"), "8");
        assert_eq!(TranslateTask::Add.answer("123+4567").unwrap(), "4690");
        let (s, _) = TranslateTask::Add.example(61, &mut StdRng::seed_from_u64(0)).unwrap();
        assert!(s.len() <= 61);
    }

    #[test]
    fn lengths_are_uniform_up_to_max_len_and_operands_vary() {
        let mut rng = StdRng::seed_from_u64(3);
        for task in [TranslateTask::Reverse, TranslateTask::Sort] {
            let lengths: BTreeSet<usize> = (0..500).map(|_| task.example(6, &mut rng).unwrap().0.len()).collect();
            assert_eq!(lengths, (1..=6).collect(), "{task}");
        }
        let operand_digits: BTreeSet<usize> = (0..500)
            .map(|_| TranslateTask::Add.example(9, &mut rng).unwrap().0.split('+').next().unwrap().len())
            .collect();
        assert_eq!(operand_digits, (1..=4).collect());
        // The shortest max_len the add task takes: one digit each.
        let (s, _) = TranslateTask::Add.example(3, &mut rng).unwrap();
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn weekdays_and_leap_years_are_right() {
        assert_eq!(date(1958, 8, 29).weekday_name(), "Friday");
        assert_eq!(date(2000, 1, 1).weekday_name(), "Saturday");
        assert_eq!(date(1970, 1, 1).weekday_name(), "Thursday");
        assert_eq!(date(1900, 1, 1).weekday_name(), "Monday");
        assert_eq!(date(2099, 12, 31).weekday_name(), "Thursday");
        assert_eq!(date(2024, 2, 29).weekday_name(), "Thursday");
        assert!(Date::new(2000, 2, 29).is_ok());
        let err = Date::new(1900, 2, 29).unwrap_err().to_string();
        assert!(err.contains("29") && err.contains("1..=28"), "{err}");
        assert!(Date::new(2001, 4, 31).is_err() && Date::new(2001, 13, 1).is_err() && Date::new(2001, 1, 0).is_err());
        assert!(is_leap_year(2000) && is_leap_year(1996) && !is_leap_year(1900) && !is_leap_year(2100));
        // Day numbers round-trip and count consecutive days.
        assert_eq!(date(1970, 1, 1).days_since_epoch(), 0);
        let mut d = date(1900, 1, 1);
        let mut count = 0;
        while d.year() < 2100 {
            let n = d.days_since_epoch();
            let next = Date::from_days_since_epoch(n + 1).unwrap();
            assert_eq!(next.days_since_epoch(), n + 1);
            assert_eq!((next.weekday() + 6) % 7, d.weekday());
            d = next;
            count += 1;
        }
        assert_eq!(count, 200 * 365 + 49, "1900 and 2100 are not leap years, 2000 is");
    }

    #[test]
    fn every_format_writes_the_documented_example() {
        let d = date(1958, 8, 29);
        let written: Vec<String> = DateFormat::ALL.iter().map(|f| f.write(d).unwrap()).collect();
        assert_eq!(
            written,
            [
                "29 August 1958",
                "August 29, 1958",
                "8/29/58",
                "8/29/1958",
                "Friday, August 29, 1958",
                "29.08.1958",
                "aug 29 1958",
                "29 aug 1958",
                "1958/08/29",
                "29-Aug-1958",
                "Fri 29 Aug 1958",
                "AUGUST 29 1958",
            ]
        );
        for s in &written {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
        assert_eq!(DateFormat::Dashed.write(date(2003, 1, 5)).unwrap(), "05-Jan-2003");
        assert_eq!(DateFormat::UsShort.write(date(1905, 1, 5)).unwrap(), "1/5/05");
        assert!(DateFormat::UsShort.write(date(2005, 1, 5)).is_err());
    }

    #[test]
    fn dates_use_every_format_and_read_back_to_their_target() {
        let mut rng = StdRng::seed_from_u64(11);
        let (source_chars, target_chars) = (TranslateTask::Dates.source_chars(), TranslateTask::Dates.target_chars());
        let mut formats = HashSet::new();
        let mut years = BTreeSet::new();
        for _ in 0..600 {
            let (format, s, t) = date_example(&mut rng);
            formats.insert(format);
            let d = parse_date(&s).unwrap();
            assert_eq!(d.iso(), t, "{s}");
            assert!(format.years().contains(&d.year()), "{format:?} {s}");
            years.insert(d.year());
            assert!(s.chars().all(|c| source_chars.contains(&c)), "{s}");
            assert!(t.chars().all(|c| target_chars.contains(&c)), "{t}");
            assert_eq!(t.len(), 10);
            assert!(s.len() <= 29, "{s}");
        }
        assert_eq!(formats.len(), DateFormat::ALL.len());
        assert!(years.first() < Some(&1910) && years.last() > Some(&2090), "{years:?}");
    }

    #[test]
    fn parse_date_rejects_wrong_weekdays_and_nonsense() {
        assert!(parse_date("Saturday, August 29, 1958").unwrap_err().to_string().contains("Friday"));
        assert!(parse_date("29 Feb 1900").is_err());
        assert_eq!(parse_date("29 FEB 2000").unwrap(), date(2000, 2, 29));
        assert!(parse_date("29 Augustus 1958").is_err());
        assert!(parse_date("29 1958").is_err());
        assert!(parse_date("8-29-58").is_err());
        assert!(parse_date("").is_err());
        assert!(TranslateTask::Dates.answer("29 August 1958!").is_err());
        assert_eq!(TranslateTask::Dates.answer("Fri 29 Aug 1958").unwrap(), "1958-08-29");
    }

    #[test]
    fn names_parse_and_bad_input_is_an_error() {
        for task in TranslateTask::ALL {
            assert_eq!(task.name().parse::<TranslateTask>().unwrap(), task);
            assert_eq!(task.to_string(), task.name());
            let chars = task.source_chars();
            assert!(chars.windows(2).all(|w| w[0] < w[1]), "{task}: sorted");
            assert!(task.target_chars().windows(2).all(|w| w[0] < w[1]), "{task}: sorted");
            let err = task.example(0, &mut StdRng::seed_from_u64(0)).unwrap_err();
            assert!(matches!(err, Error::Config(_)) && err.to_string().contains("found 0"), "{err}");
        }
        let err = "copy".parse::<TranslateTask>().unwrap_err().to_string();
        assert!(err.contains("\"copy\"") && err.contains("reverse, sort, add, dates"), "{err}");
        assert!(TranslateTask::Add.example(2, &mut StdRng::seed_from_u64(0)).is_err());
        let err = TranslateTask::Reverse.answer("abz").unwrap_err().to_string();
        assert!(err.contains("position 2") && err.contains("'z'"), "{err}");
        assert!(TranslateTask::Add.answer("12+").is_err() && TranslateTask::Add.answer("1+2+3").is_err());
        assert_eq!(TranslateTask::Sort.answer("3141").unwrap(), "1134");
        assert_eq!(TranslateTask::Reverse.answer("abcj").unwrap(), "jcba");
    }

    #[test]
    fn token_vocab_numbers_characters_after_the_special_tokens() {
        let v = TokenVocab::new(&['c', 'a', 'b', 'a']);
        assert_eq!((v.len(), v.chars()), (6, &['a', 'b', 'c'][..]));
        assert_eq!(v.encode("cab").unwrap(), vec![5, 3, 4]);
        assert_eq!(v.decode(&[BOS, 5, 3, PAD, 4, EOS, 3, 3]), "cab");
        assert_eq!(v.decode(&[3, 99]), "a\u{fffd}");
        let err = v.encode("abz").unwrap_err();
        assert!(matches!(err, Error::Index { .. }));
        let err = err.to_string();
        assert!(err.contains("position 2") && err.contains("'z'"), "{err}");
        assert_eq!(TokenVocab::from_metadata(&v.to_metadata()).unwrap(), v);
        assert!(TokenVocab::from_metadata("aba").unwrap_err().to_string().contains("strictly increasing"));
        assert_eq!(TranslateTask::Dates.source_vocab().len(), 3 + 5 + 10 + 52);
    }

    #[test]
    fn batches_pad_sources_and_shift_targets_for_teacher_forcing() {
        let b = translate_batch(TranslateTask::Reverse, 64, 5, &mut StdRng::seed_from_u64(2)).unwrap();
        let (sv, tv) = (TranslateTask::Reverse.source_vocab(), TranslateTask::Reverse.target_vocab());
        assert_eq!(b.batch, 64);
        assert_eq!(b.source_steps, 5);
        assert_eq!(b.target_steps, 6);
        assert_eq!((b.source.len(), b.decoder_input.len(), b.targets.len()), (64 * 5, 64 * 6, 64 * 6));
        assert!(b.source_lengths.iter().all(|l| (1..=5).contains(l)));
        assert_eq!(b.source_lengths.iter().collect::<BTreeSet<_>>().len(), 5, "lengths vary");
        for i in 0..b.batch {
            let (s, t) = &b.pairs[i];
            let (m, n) = (b.source_lengths[i], b.target_lengths[i]);
            assert_eq!((m, n), (s.len(), t.len() + 1));
            let src = &b.source[i * 5..(i + 1) * 5];
            assert_eq!(sv.decode(&src[..m]), *s);
            assert!(src[..m].iter().all(|&id| id >= SPECIAL_TOKENS) && src[m..].iter().all(|&id| id == PAD));
            let input = &b.decoder_input[i * 6..(i + 1) * 6];
            let out = &b.targets[i * 6..(i + 1) * 6];
            assert_eq!(input[0], BOS);
            assert_eq!(tv.decode(&input[1..n]), *t);
            assert!(input[n..].iter().all(|&id| id == PAD));
            // The targets are the inputs shifted by one, then EOS, then ignored.
            for k in 0..n - 1 {
                assert_eq!(out[k], input[k + 1] as i64);
            }
            assert_eq!(out[n - 1], EOS as i64);
            assert!(out[n..].iter().all(|&y| y == DEFAULT_IGNORE_INDEX));
        }
        assert_eq!(b, translate_batch(TranslateTask::Reverse, 64, 5, &mut StdRng::seed_from_u64(2)).unwrap());
        assert_ne!(b, translate_batch(TranslateTask::Reverse, 64, 5, &mut StdRng::seed_from_u64(3)).unwrap());
        assert!(translate_batch(TranslateTask::Sort, 4, 0, &mut StdRng::seed_from_u64(0)).is_err());
        let empty = TranslateBatch::from_pairs(vec![(String::new(), "a".into())], &sv, &tv).unwrap_err();
        assert!(empty.to_string().contains("pair 0"), "{empty}");
        let err = TranslateBatch::from_pairs(vec![("ab".into(), "ba".into()), ("ak".into(), "ka".into())], &sv, &tv)
            .unwrap_err()
            .to_string();
        assert!(err.contains("position 1 of the source of pair 1") && err.contains("'k'"), "{err}");
    }

    #[test]
    fn held_out_sets_depend_only_on_their_seed() {
        for task in TranslateTask::ALL {
            let a = translate_held_out(task, 50, 8, 7).unwrap();
            assert_eq!(a.len(), 50);
            assert_eq!(a, translate_held_out(task, 50, 8, 7).unwrap(), "{task}");
            assert_ne!(a, translate_held_out(task, 50, 8, 8).unwrap(), "{task}");
            for (s, t) in &a {
                assert_eq!(task.answer(s).unwrap(), *t, "{task}: {s}");
            }
        }
        assert!(translate_held_out(TranslateTask::Add, 5, 2, 0).is_err());
    }

    #[test]
    fn scores_count_whole_strings_and_positions_with_the_end_token() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let score =
            score_translations(&s(&["abc", "ab", "abcd", "xbc", ""]), &s(&["abc", "abc", "abc", "abc", ""])).unwrap();
        assert_eq!(score.count, 5);
        assert!((score.exact_match - 2.0 / 5.0).abs() < 1e-12);
        // Correct positions (end token included) / max(len + 1): 4/4, 2/4, 3/5, 3/4, 1/1.
        assert!((score.token_accuracy - 13.0 / 18.0).abs() < 1e-12, "{score:?}");
        let perfect = score_translations(&s(&["12"]), &s(&["12"])).unwrap();
        assert_eq!((perfect.exact_match, perfect.token_accuracy), (1.0, 1.0));
        let err = score_translations(&s(&["a"]), &s(&["a", "b"])).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }));
        assert!(score_translations(&[], &[]).unwrap().exact_match.is_nan());
    }
}
