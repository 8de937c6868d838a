//! `--task charlm`: a character language model on a UTF-8 text (`--data FILE`, or the library's built-in text:
//! 1 MB of stories generated from a fixed seed by a small grammar with long-range structure, see
//! [`recur_tasks::story`]). Training is truncated BPTT over `--batch` contiguous streams: the first 90% of the text is cut into that many
//! equal pieces, read side by side in windows of `--seq-len` characters (or `--tbptt K`), the state carried from
//! one window to the next and dropped when the streams start over. The score is the bits per character on the
//! last 10%. The vocabulary is stored in the model file, so that
//! `recur generate` needs nothing else.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{CharCorpus, Vocabulary, bits_per_char};

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

/// Validation windows scored per evaluation (at most).
const EVAL_WINDOWS: usize = 128;

/// A character corpus.
pub struct CharLm {
    corpus: CharCorpus,
    steps: usize,
    eval: (Vec<usize>, Vec<i64>, usize),
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
        // Consecutive windows of the validation text, each with its next characters as targets.
        let v = &corpus.valid;
        let window = steps.min(v.len() - 1);
        let count = ((v.len() - 1) / window).clamp(1, EVAL_WINDOWS);
        let mut ids = Vec::with_capacity(count * window);
        let mut targets = Vec::with_capacity(count * window);
        for w in 0..count {
            ids.extend_from_slice(&v[w * window..(w + 1) * window]);
            targets.extend(v[w * window + 1..(w + 1) * window + 1].iter().map(|&i| i as i64));
        }
        Ok(CharLm { corpus, steps, eval: (ids, targets, window) })
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

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let (ids, targets, window) = &self.eval;
        let batch = ids.len() / window;
        let logits = super::predict(model, &tokens(ids.clone(), *window, batch))?;
        let nats = super::cross_entropy(&logits, self.corpus.vocab.len(), targets)?;
        Ok(vec![("eval_bpc".into(), bits_per_char(nats)), ("eval_loss".into(), nats)])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_bpc", value: self.corpus.unigram_bits(), label: "character frequencies" })
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        vec![(Vocabulary::METADATA_KEY, self.corpus.vocab.to_metadata())]
    }
}
