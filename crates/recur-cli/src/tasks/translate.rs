//! `--task reverse|sort|add|dates`: sequence-to-sequence tasks for an encoder–decoder with attention, scored by
//! greedy decoding of a fixed held-out set (exact match and per-token accuracy).

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use recur::seq2seq::{DecodeOptions, Decoded, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig};
use recur_tasks::{
    BOS, EOS, TokenVocab, TranslateBatch, TranslateScore, TranslateTask, score_translations, translate_batch,
    translate_held_out,
};

use super::{Defaults, Metrics, TaskName, TaskSpec};
use crate::model_kind::ModelKind;

/// Pairs in the held-out set every evaluation decodes.
pub const HELD_OUT: usize = 200;

/// Settings that learn each task within a few thousand steps: a GRU encoder–decoder of 64 units (per encoder
/// direction) with 32-wide embeddings, Adam 3e-3, clipping at 1.
pub fn defaults(task: TranslateTask) -> Defaults {
    let base = Defaults {
        model: ModelKind::Gru,
        hidden: 64,
        layers: 1,
        seq_len: 8,
        batch: 64,
        steps: 2000,
        lr: 3e-3,
        clip: 1.0,
        forget_bias: 0.0,
        eval_every: 200,
        embed: 32,
    };
    match task {
        TranslateTask::Reverse | TranslateTask::Sort => base,
        // Two operands of up to 4 digits.
        TranslateTask::Add => Defaults { seq_len: 9, steps: 4000, ..base },
        // A date's length is set by its format; `seq_len` does not bound it.
        TranslateTask::Dates => Defaults { seq_len: 30, steps: 3000, ..base },
    }
}

/// The task behind a `--task` name, for the sequence-to-sequence ones.
pub fn translate_task(name: TaskName) -> Option<TranslateTask> {
    match name {
        TaskName::Reverse => Some(TranslateTask::Reverse),
        TaskName::Sort => Some(TranslateTask::Sort),
        TaskName::Add => Some(TranslateTask::Add),
        TaskName::Dates => Some(TranslateTask::Dates),
        _ => None,
    }
}

/// A sequence-to-sequence task with its fixed held-out set.
pub struct Translate {
    task: TranslateTask,
    seq_len: usize,
    source: TokenVocab,
    target: TokenVocab,
    held_out: TranslateBatch,
}

impl Translate {
    /// The task `spec` names, with `HELD_OUT` pairs drawn from `spec.eval_seed`. A spec of another task is an
    /// error.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let task = translate_task(spec.name)
            .ok_or_else(|| format!("--task {} is not a sequence-to-sequence task", spec.name.as_str()))?;
        let pairs =
            translate_held_out(task, HELD_OUT, spec.seq_len, spec.eval_seed).map_err(|e| format!("--seq-len: {e}"))?;
        let (source, target) = (task.source_vocab(), task.target_vocab());
        let held_out = TranslateBatch::from_pairs(pairs, &source, &target).map_err(|e| e.to_string())?;
        Ok(Translate { task, seq_len: spec.seq_len, source, target, held_out })
    }

    /// One line saying what is being learnt.
    pub fn describe(&self) -> String {
        match self.task {
            TranslateTask::Dates => "dates to ISO 8601".to_string(),
            TranslateTask::Add => format!("add, sources of up to {} characters", self.seq_len),
            task => format!("{}, sequences of up to {} characters", task.name(), self.seq_len),
        }
    }

    /// The source side's vocabulary.
    pub fn source_vocab(&self) -> &TokenVocab {
        &self.source
    }

    /// The target side's vocabulary.
    pub fn target_vocab(&self) -> &TokenVocab {
        &self.target
    }

    /// Whether `config` reads and writes this task's vocabularies.
    pub fn fits(&self, config: &Seq2SeqConfig) -> Result<(), String> {
        if config.source_vocab == self.source.len() && config.target_vocab == self.target.len() {
            return Ok(());
        }
        Err(format!(
            "the model does not fit {}: its vocabularies have {} source and {} target tokens, the task's {} and {}",
            self.describe(),
            config.source_vocab,
            config.target_vocab,
            self.source.len(),
            self.target.len()
        ))
    }

    /// A fresh training batch of `batch` pairs.
    pub fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<TranslateBatch> {
        translate_batch(self.task, batch, self.seq_len, rng)
    }

    /// The longest output decoding may produce.
    pub fn max_len(&self) -> usize {
        2 * self.seq_len + 10
    }

    /// Decoding options for a beam of `beam` hypotheses (1: greedy).
    pub fn decode_options(&self, beam: usize) -> DecodeOptions {
        DecodeOptions { beam, max_len: self.max_len(), bos: BOS, eos: EOS, length_penalty: 1.0 }
    }

    /// The greedy decodings of the held-out sources, scored against their targets.
    pub fn score(&self, model: &Seq2Seq) -> recur::Result<TranslateScore> {
        let options = self.decode_options(1);
        let h = &self.held_out;
        let predicted = (0..h.batch)
            .into_par_iter()
            .map(|b| {
                let source = &h.source[b * h.source_steps..][..h.source_lengths[b]];
                Ok(self.target.decode(&model.decode(source, &options)?.tokens))
            })
            .collect::<recur::Result<Vec<String>>>()?;
        let expected: Vec<String> = h.pairs.iter().map(|(_, t)| t.clone()).collect();
        score_translations(&predicted, &expected)
    }

    /// The teacher-forced cross-entropy of the held-out targets, in nats per token.
    pub fn loss(&self, model: &Seq2Seq) -> recur::Result<f64> {
        let logits = model.forward(&as_batch(&self.held_out))?;
        super::cross_entropy(&logits, self.target.len(), &self.held_out.targets)
    }

    /// Exact match, per-token accuracy and the teacher-forced loss on the held-out set, headline first.
    pub fn evaluate(&self, model: &Seq2Seq) -> recur::Result<Metrics> {
        let score = self.score(model)?;
        Ok(vec![
            ("eval_exact_match".into(), score.exact_match),
            ("eval_token_accuracy".into(), score.token_accuracy),
            ("eval_loss".into(), self.loss(model)?),
        ])
    }
}

/// The name of a metric of [`Translate::evaluate`] in a command's JSON: `exact_match` and `token_accuracy` bare,
/// `eval_loss` as is (a training loss is reported beside it).
pub fn json_name(metric: &str) -> &str {
    match metric.strip_prefix("eval_") {
        Some(name) if name != "loss" => name,
        _ => metric,
    }
}

/// The library's view of a batch.
pub fn as_batch(b: &TranslateBatch) -> Seq2SeqBatch<'_> {
    Seq2SeqBatch {
        batch: b.batch,
        source: &b.source,
        source_lengths: &b.source_lengths,
        source_steps: b.source_steps,
        decoder_input: &b.decoder_input,
        target_lengths: &b.target_lengths,
        target_steps: b.target_steps,
    }
}

/// Decodes `text` with `model`, reading and writing through the given vocabularies: the output string and the
/// search's result (tokens, log-probability, attention weights). A character outside `source` is an error naming
/// it.
pub fn translate(
    model: &Seq2Seq,
    source: &TokenVocab,
    target: &TokenVocab,
    text: &str,
    options: &DecodeOptions,
) -> Result<(String, Decoded), String> {
    if text.is_empty() {
        return Err("the input is empty".into());
    }
    if let Some((i, c)) = text.chars().enumerate().find(|&(_, c)| source.id(c).is_none()) {
        return Err(format!(
            "the input's character {c:?} (position {i}) is not in the model's source vocabulary {:?}",
            source.to_metadata()
        ));
    }
    let ids = source.encode(text).map_err(|e| e.to_string())?;
    let decoded = model.decode(&ids, options).map_err(|e| e.to_string())?;
    Ok((target.decode(&decoded.tokens), decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrained_model_decodes_and_scores_in_range() {
        let spec = TaskSpec::new(TaskName::Reverse, 5, 7);
        let task = Translate::new(&spec).unwrap();
        let config = Seq2SeqConfig {
            mode: recur::Mode::Gru,
            source_vocab: task.source_vocab().len(),
            target_vocab: task.target_vocab().len(),
            embedding_dim: 4,
            hidden_size: 6,
            num_layers: 1,
            bidirectional: false,
            attention: Some(recur::attention::Score::Additive),
        };
        let model = Seq2Seq::with_seed(config, 0).unwrap();
        let metrics = task.evaluate(&model).unwrap();
        assert_eq!(metrics.len(), 3);
        assert!(metrics[..2].iter().all(|(_, v)| (0.0..=1.0).contains(v)), "{metrics:?}");
        assert!(metrics[2].1 > 0.0);
        let err = translate(&model, task.source_vocab(), task.target_vocab(), "abz", &task.decode_options(1));
        assert!(err.unwrap_err().contains("'z'"));
    }
}
