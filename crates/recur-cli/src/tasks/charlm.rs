//! `--task charlm`: a character language model on a UTF-8 text (`--data FILE`, or the library's built-in text:
//! 1 MB of stories generated from a fixed seed by a small grammar with long-range structure, see
//! [`recur_tasks::story`]). Training is truncated BPTT over `--batch` contiguous streams: the first 90% of the
//! text is cut into that many equal pieces, read side by side in windows of `--seq-len` characters (or `--tbptt
//! K`), the state carried from one window to the next and dropped when the streams start over.
//!
//! The score, `eval_bpc`, is the bits per character on the whole last 10%, computed as char-rnn and PyTorch
//! users do: every held-out character is predicted from all the held-out characters before it, the text read as
//! a few long contiguous streams with the state carried from window to window ([`score_text`]), and the summed
//! cross-entropy divided by the number of characters and by ln 2. `eval_loss` is the same in nats. The
//! vocabulary is stored in the model file, so that `recur generate` needs nothing else.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{CharCorpus, Vocabulary, score_text};

use super::{Baseline, Batch, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskSpec, tokens};
use crate::model_kind::ModelKind;

/// A 2-layer LSTM of 256, the classic char-rnn setting.
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Lstm,
    hidden: 256,
    layers: 2,
    seq_len: 100,
    batch: 32,
    steps: 3000,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 250,
    embed: 64,
};

/// Streams the held-out text is read as, at most: enough to batch the work. On the built-in text, 16 streams
/// score within 0.002 bits per character of one stream, and take two thirds of its time.
const EVAL_STREAMS: usize = 16;

/// Held-out characters per stream, at least: each stream starts without context, and its warm-up of a few
/// characters must stay a negligible share of the score.
const EVAL_STREAM_CHARS: usize = 4000;

/// A character corpus.
pub struct CharLm {
    corpus: CharCorpus,
    steps: usize,
    eval_streams: usize,
}

impl CharLm {
    /// Loads `spec.data` (or the built-in text).
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let corpus = match &spec.data {
            Some(path) => CharCorpus::load(path).map_err(|e| e.to_string())?,
            None => CharCorpus::builtin(),
        };
        let steps = spec.seq_len;
        if corpus.train.len() <= steps + 1 {
            return Err(format!(
                "{}: the training part has {} characters, fewer than --seq-len {steps} + 1",
                corpus.source.display(),
                corpus.train.len()
            ));
        }
        let eval_streams = (corpus.valid.len() / EVAL_STREAM_CHARS).clamp(1, EVAL_STREAMS);
        Ok(CharLm { corpus, steps, eval_streams })
    }

    /// The training part as `batch` contiguous streams read in windows of `steps`: the window of training step
    /// `step`, and whether it is the first of a pass over the streams.
    fn window(&self, batch: usize, steps: usize, step: u64) -> recur::Result<(Batch, bool)> {
        let text = &self.corpus.train;
        // Each stream needs one character past its inputs, for the last target.
        let stream_len = (text.len() - 1) / batch.max(1);
        if steps == 0 || stream_len < steps {
            return Err(recur::Error::Config(format!(
                "{}: the training part ({} characters) cut into --batch {batch} streams leaves {stream_len} \
                 characters each, fewer than a window of {steps}",
                self.corpus.source.display(),
                text.len()
            )));
        }
        let windows = stream_len / steps;
        let w = (step % windows as u64) as usize;
        let mut ids = Vec::with_capacity(batch * steps);
        let mut targets = Vec::with_capacity(batch * steps);
        for b in 0..batch {
            let start = b * stream_len + w * steps;
            ids.extend_from_slice(&text[start..start + steps]);
            targets.extend(text[start + 1..start + steps + 1].iter().map(|&i| i as i64));
        }
        let batch = Batch { input: tokens(ids, steps, batch), targets: BatchTargets::Classes(targets), lengths: None };
        Ok((batch, w == 0))
    }
}

impl Task for CharLm {
    fn describe(&self) -> String {
        format!(
            "character model of {} ({} characters, {} distinct), windows of {}",
            self.corpus.source.display(),
            self.corpus.train.len() + self.corpus.valid.len(),
            self.corpus.vocab.len(),
            self.steps
        )
    }

    fn shape(&self) -> ModelShape {
        let v = self.corpus.vocab.len();
        ModelShape { input: InputKind::Tokens(v), readout: ReadoutName::EveryStep, outputs: v, batch_first: true }
    }

    fn stream_window(&self, batch: usize, steps: usize, step: u64) -> Option<recur::Result<(Batch, bool)>> {
        Some(self.window(batch, steps, step))
    }

    /// One window of the streams, at a random position; training reads the streams in order through
    /// [`Task::stream_window`] instead.
    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        self.window(batch, self.steps, rng.random()).map(|(b, _)| b)
    }

    /// Bits per character over the whole held-out part, read as contiguous streams with the state carried.
    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let score = score_text(model, &self.corpus.valid, self.eval_streams, self.steps)?;
        Ok(vec![("eval_bpc".into(), score.bits_per_char()), ("eval_loss".into(), score.mean_nats())])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_bpc", value: self.corpus.unigram_bits(), label: "character frequencies" })
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        vec![(Vocabulary::METADATA_KEY, self.corpus.vocab.to_metadata())]
    }
}
