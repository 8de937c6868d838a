//! A character-level language model's data: a UTF-8 text, its [`Vocabulary`], the last 10% held out for
//! validation, and `B` contiguous streams cut into windows for truncated backpropagation through time.
//!
//! The score is validation bits per character ([`score_text`]): the cross-entropy of predicting every character
//! of the held-out part from all the characters before it, read as a few long streams with the state carried
//! from window to window as training does, summed and divided by the number of characters and by ln 2. This is
//! the number char-rnn or a PyTorch loop over the held-out text as one stream reports. A model that always
//! predicts the training text's character frequencies scores the text's unigram entropy
//! ([`CharCorpus::unigram_bits`]), the number to beat.

use std::f64::consts::LN_2;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::story::{BUILTIN_CHARS, BUILTIN_SEED, story_text};
use super::vocab::Vocabulary;
use recur::train::{CarriedState, contiguous_streams, windows};
use recur::{Error, ReadoutName, Result, SequenceInput, SequenceModel, Tensor};

/// The name [`CharCorpus::builtin`] gives the built-in text in errors and reports: the stories of
/// [`story_text`] from [`BUILTIN_SEED`].
pub const BUILTIN_NAME: &str = "built-in generated stories (seed 1)";

/// The share of a text held out for validation: its last 10%.
pub const VALID_FRACTION: f64 = 0.1;

/// Reads a UTF-8 text file. An empty file, or one that is not UTF-8, is an [`Error::Data`] naming the file, the
/// line and the byte offset of the first invalid byte.
pub fn load_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.into(), source })?;
    if bytes.is_empty() {
        return Err(Error::data(path, None, "the file is empty; expected UTF-8 text"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
        Error::data(
            path,
            Some(line),
            format!("not UTF-8 text: invalid byte 0x{:02x} at byte offset {offset}", bytes[offset]),
        )
    })
}

/// A text as token ids, split into training and validation parts.
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    /// The characters of the whole text (so that validation characters have ids too).
    pub vocab: Vocabulary,
    /// The first 90% of the characters.
    pub train: Vec<usize>,
    /// The last 10% of the characters.
    pub valid: Vec<usize>,
    /// Where the text came from: a file, or [`BUILTIN_NAME`].
    pub source: PathBuf,
}

impl CharCorpus {
    /// Loads a UTF-8 text file (see [`load_text`]) and splits it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_text(&load_text(path)?, path)
    }

    /// The built-in text: [`BUILTIN_CHARS`] characters of stories generated from [`BUILTIN_SEED`] by
    /// [`story_text`], named [`BUILTIN_NAME`]. The same every time, so a model trained on it is evaluated on the
    /// same held-out text later.
    pub fn builtin() -> Self {
        Self::from_text(&story_text(BUILTIN_SEED, BUILTIN_CHARS), Path::new(BUILTIN_NAME))
            .expect("the built-in text is long enough")
    }

    /// Splits `text`: the last `⌊n/10⌋` of its `n` characters are the validation part. `source` names it in
    /// errors. A text of fewer than 20 characters is an [`Error::Data`] (each part needs at least two characters,
    /// an input and the next one).
    pub fn from_text(text: &str, source: &Path) -> Result<Self> {
        let n = text.chars().count();
        let n_valid = (n as f64 * VALID_FRACTION) as usize;
        if n_valid < 2 {
            return Err(Error::data(
                source,
                None,
                format!("the text has {n} characters; at least 20 are needed to hold out the last 10% for validation"),
            ));
        }
        let vocab = Vocabulary::from_text(text);
        let mut ids = vocab.encode(text)?;
        let valid = ids.split_off(n - n_valid);
        Ok(CharCorpus { vocab, train: ids, valid, source: source.into() })
    }

    /// The entropy of the training characters' frequencies, in bits per character: what a model that ignores
    /// context scores at best on text like the training part.
    pub fn unigram_bits(&self) -> f64 {
        let mut counts = vec![0usize; self.vocab.len()];
        self.train.iter().for_each(|&i| counts[i] += 1);
        let n = self.train.len() as f64;
        counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
    }
}

/// A token sequence cut into `batch` contiguous streams, time-major: `ids[t·batch + b]` is item `b·steps + t`
/// of the sequence (see [`contiguous_streams`]; a remainder of fewer than `batch` items is dropped).
#[derive(Clone, Debug, PartialEq)]
pub struct CharStreams {
    /// `steps × batch` token ids, time-major.
    pub ids: Vec<usize>,
    /// Items per stream.
    pub steps: usize,
    /// Streams `B`.
    pub batch: usize,
}

/// One window of [`CharStreams`]: the inputs and the next characters, time-major `(k, B)`.
#[derive(Clone, Debug, PartialEq)]
pub struct CharWindow {
    /// `steps × batch` input ids.
    pub ids: Vec<usize>,
    /// `steps × batch` targets: each input's next character in its stream.
    pub targets: Vec<i64>,
    /// Steps of this window (`k`, or fewer for the last).
    pub steps: usize,
    /// Streams `B`.
    pub batch: usize,
}

impl CharStreams {
    /// Cuts `tokens` into `batch` streams of at least two items each.
    pub fn new(tokens: &[usize], batch: usize) -> Result<Self> {
        let (steps, index) = contiguous_streams(tokens.len(), batch)?;
        if steps < 2 {
            return Err(Error::config(format!(
                "{} characters make {batch} streams of {steps} each; a stream needs at least 2 (an input and its next)",
                tokens.len()
            )));
        }
        Ok(CharStreams { ids: index.into_iter().map(|i| tokens[i]).collect(), steps, batch })
    }

    /// The windows of at most `k` steps that cover every input step, `0..steps − 1` (the last item of a stream is
    /// only a target). Train them in order with [`Trainer::step_stateful`](recur::train::Trainer::step_stateful),
    /// which carries the state from one window to the next.
    pub fn windows(&self, k: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        windows(self.steps - 1, k)
    }

    /// The inputs at steps `range` and their next characters; `range` must lie within `0..steps − 1`.
    pub fn window(&self, range: Range<usize>) -> Result<CharWindow> {
        if range.start >= range.end || range.end >= self.steps {
            return Err(Error::Index {
                what: "window".into(),
                index: format!("{range:?}"),
                valid: format!("a non-empty range within 0..{}", self.steps - 1),
            });
        }
        let b = self.batch;
        let ids = self.ids[range.start * b..range.end * b].to_vec();
        let targets = self.ids[(range.start + 1) * b..(range.end + 1) * b].iter().map(|&i| i as i64).collect();
        Ok(CharWindow { ids, targets, steps: range.len(), batch: b })
    }
}

/// A character model's summed cross-entropy over a text, from [`score_text`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextScore {
    /// The sum over the predicted characters of `−ln p(character | the characters before it)`.
    pub nats: f64,
    /// How many characters were predicted.
    pub chars: usize,
}

impl TextScore {
    /// The mean cross-entropy per character, in nats.
    pub fn mean_nats(&self) -> f64 {
        self.nats / self.chars as f64
    }

    /// The mean cross-entropy per character, in bits: `nats / (chars · ln 2)`.
    pub fn bits_per_char(&self) -> f64 {
        self.mean_nats() / LN_2
    }
}

/// Scores a character model (token input, a prediction at every step) on `tokens`: every character but the first
/// is predicted once, from all the characters before it in its stream.
///
/// The text is cut into `streams` contiguous pieces (fewer if it is shorter), read side by side as one batch in
/// windows of `window` characters, the state carried from each window to the next, in inference mode. Windows
/// only bound the memory: the score is that of reading each piece in one go. Each piece's first prediction has
/// no context, so more streams cost a little (a few characters of warm-up per stream) and buy speed; one stream
/// is exactly a single pass over the text. Pieces differ in length by at most one character, so that none of the
/// text is left out.
pub fn score_text(model: &SequenceModel, tokens: &[usize], streams: usize, window: usize) -> Result<TextScore> {
    let config = model.config();
    if config.vocab.is_none() || config.readout != ReadoutName::EveryStep {
        return Err(Error::config("scoring a text needs a model of tokens with a prediction at every step"));
    }
    if tokens.len() < 2 {
        return Err(Error::config(format!("cannot score {} character(s): at least 2 are needed", tokens.len())));
    }
    let predicted = tokens.len() - 1;
    let streams = streams.clamp(1, predicted);
    let (steps, longer) = (predicted / streams, predicted % streams);
    // Stream b reads inputs starts[b].. and predicts the character after each; the first `longer` streams are one
    // character longer than the others.
    let starts: Vec<usize> = (0..streams).map(|b| b * steps + b.min(longer)).collect();
    let mut score = TextScore { nats: 0.0, chars: 0 };
    let mut state = CarriedState::new();
    for range in windows(steps, window) {
        score_window(model, tokens, &starts, range, &mut state, &mut score)?;
    }
    if longer > 0 {
        // The longer streams' last character, with their own rows of the state.
        let mut state = first_rows(&state, longer)?;
        score_window(model, tokens, &starts[..longer], steps..steps + 1, &mut state, &mut score)?;
    }
    Ok(score)
}

/// Scores steps `range` of the streams starting at `starts`, from `state`, and carries the state on.
fn score_window(
    model: &SequenceModel,
    tokens: &[usize],
    starts: &[usize],
    range: Range<usize>,
    state: &mut CarriedState,
    score: &mut TextScore,
) -> Result<()> {
    let (steps, batch) = (range.len(), starts.len());
    let batch_first = model.config().recurrent.batch_first;
    let mut ids = vec![0; steps * batch];
    let mut targets = vec![0; steps * batch];
    for (b, &start) in starts.iter().enumerate() {
        for (i, t) in range.clone().enumerate() {
            let row = if batch_first { b * steps + i } else { i * batch + b };
            ids[row] = tokens[start + t];
            targets[row] = tokens[start + t + 1];
        }
    }
    let (logits, out) = model.forward(SequenceInput::Tokens { ids: &ids, steps, batch }, None, state)?;
    state.carry(&out);
    let classes = model.config().outputs;
    if logits.len() != targets.len() * classes {
        return Err(Error::shape("logits", format!("[{}, {classes}]", targets.len()), &[logits.len()]));
    }
    for (row, &target) in logits.chunks_exact(classes).zip(&targets) {
        if target >= classes {
            return Err(Error::Index {
                what: "character".into(),
                index: target.to_string(),
                valid: format!("0..{classes}, the model's outputs"),
            });
        }
        // −log softmax in f64, so that summing a long text loses nothing.
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        score.nats += max + sum.ln() - row[target] as f64;
    }
    score.chars += targets.len();
    Ok(())
}

/// The state of the first `rows` streams: `h` and `c` are `(L·D, B, H)`.
fn first_rows(state: &CarriedState, rows: usize) -> Result<CarriedState> {
    let take = |t: &Tensor| -> Result<Tensor> {
        let &[layers, batch, hidden] = t.shape() else {
            return Err(Error::shape("carried state", "[L·D, B, H]", t.shape()));
        };
        let data = t.data().chunks_exact(batch * hidden).flat_map(|layer| &layer[..rows * hidden]).copied().collect();
        Tensor::new([layers, rows, hidden], data)
    };
    let h = state.h0().map(take).transpose()?.ok_or_else(|| Error::config("no state to carry"))?;
    Ok(CarriedState::from_tensors(h, state.c0().map(take).transpose()?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn builtin_text_splits_its_last_tenth_off() {
        let corpus = CharCorpus::builtin();
        let n = BUILTIN_CHARS;
        assert_eq!(corpus.train.len() + corpus.valid.len(), n);
        assert_eq!(corpus.valid.len(), n / 10);
        assert_eq!(corpus.source, Path::new(BUILTIN_NAME));
        assert!(BUILTIN_NAME.contains(&format!("seed {BUILTIN_SEED})")), "{BUILTIN_NAME}");
        let tail: String = story_text(BUILTIN_SEED, n).chars().skip(n - n / 10).collect();
        assert_eq!(corpus.vocab.decode(&corpus.valid).unwrap(), tail);
        let bits = corpus.unigram_bits();
        assert!(bits > 3.0 && bits < (corpus.vocab.len() as f64).log2(), "{bits}");
    }

    #[test]
    fn streams_and_windows_pair_each_character_with_the_next() {
        let tokens: Vec<usize> = (0..11).collect();
        let s = CharStreams::new(&tokens, 2).unwrap();
        assert_eq!((s.steps, s.batch), (5, 2)); // streams 0..5 and 5..10, item 10 dropped
        let all: Vec<Range<usize>> = s.windows(3).collect();
        assert_eq!(all, vec![0..3, 3..4]);
        let w = s.window(0..3).unwrap();
        assert_eq!(w.ids, vec![0, 5, 1, 6, 2, 7]);
        assert_eq!(w.targets, vec![1, 6, 2, 7, 3, 8]);
        let last = s.window(3..4).unwrap();
        assert_eq!((last.ids, last.targets), (vec![3, 8], vec![4, 9]));
        assert!(s.window(3..5).is_err());
        assert!(CharStreams::new(&tokens, 6).is_err());
    }

    #[test]
    fn bad_text_files_name_the_file_line_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::File::create(&empty).unwrap();
        let err = CharCorpus::load(&empty).unwrap_err();
        assert!(matches!(err, Error::Data { line: None, .. }));
        assert!(err.to_string().ends_with("empty.txt: the file is empty; expected UTF-8 text"), "{err}");

        let latin1 = dir.path().join("latin1.txt");
        std::fs::File::create(&latin1).unwrap().write_all(b"first line\nsecond: caf\xe9\n").unwrap();
        let err = CharCorpus::load(&latin1).unwrap_err();
        assert!(matches!(err, Error::Data { line: Some(2), .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("latin1.txt, line 2: not UTF-8 text: invalid byte 0xe9 at byte offset 22"), "{msg}");

        let short = dir.path().join("short.txt");
        std::fs::write(&short, "tiny").unwrap();
        assert!(CharCorpus::load(&short).unwrap_err().to_string().contains("at least 20"));
        assert!(matches!(CharCorpus::load(dir.path().join("missing.txt")), Err(Error::Io { .. })));

        let good = dir.path().join("good.txt");
        std::fs::write(&good, "abcdefghij".repeat(3)).unwrap();
        let corpus = CharCorpus::load(&good).unwrap();
        assert_eq!((corpus.train.len(), corpus.valid.len(), corpus.vocab.len()), (27, 3, 10));
    }
}
