//! The training loop every training command shares: batches from the task, a trainer step, a record every
//! `log_every` steps, an evaluation every `eval_every` steps, and a stop flag (Ctrl-C) honoured between batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use recur::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig, clip_grad_norm, zero_grad};
use recur::seq2seq::Seq2Seq;
use recur::train::Trainer;
use recur::{CrossEntropyLoss, Trainable};

use crate::metrics::Record;
use crate::options::{OptimizerArg, Settings};
use crate::progress::Progress;
use crate::tasks::translate::{Translate, as_batch};
use crate::tasks::{Batch, BatchInput, BatchTargets, Task};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All steps done.
    Finished,
    /// The stop flag was raised; the trainer stands between two batches.
    Interrupted,
}

/// Trains until `settings.steps` or until `stop` is raised, handing every record to `on_record` (which also gets
/// the trainer, to checkpoint it after an evaluation).
pub fn train(
    trainer: &mut Trainer,
    task: &dyn Task,
    settings: &Settings,
    stop: &AtomicBool,
    progress: &Progress,
    on_record: &mut dyn FnMut(&Record, &Trainer) -> Result<(), String>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let every_step = task.shape().readout == recur::ReadoutName::EveryStep;
    if settings.tbptt.is_some() && !every_step {
        return Err("--tbptt needs a task with a prediction at every step (a many-to-one task has one target per \
                    sequence, at its end)"
            .into());
    }
    let mut since = Instant::now();
    let mut since_step = trainer.step_count();
    while trainer.step_count() < settings.steps {
        // Checked between batches only: a checkpoint taken inside a batch split into windows could not resume it.
        if stop.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted);
        }
        // A streaming task's window is its truncation length; its state runs on from one step to the next
        // (and into a checkpoint) until the streams start over. Other tasks draw independent batches, which
        // `--tbptt` cuts into windows carrying the state within the batch only.
        let window = settings.tbptt.unwrap_or(settings.task.seq_len);
        let (batch, streaming) = match task.stream_window(settings.batch, window, trainer.step_count()) {
            Some(next) => {
                let (batch, fresh) = next?;
                if fresh {
                    trainer.carried_state().reset();
                }
                (batch, true)
            }
            None => (task.train_batch(settings.batch, trainer.rng())?, false),
        };
        let parts = match settings.tbptt {
            _ if streaming => vec![batch],
            Some(_) if batch.lengths.is_some() => {
                return Err("--tbptt cannot cut a padded batch of sequences of different lengths".into());
            }
            Some(k) => windows(&batch, k, task.shape().batch_first)?,
            None => vec![batch],
        };
        if !streaming {
            trainer.carried_state().reset();
        }
        for part in &parts {
            if trainer.step_count() >= settings.steps {
                break;
            }
            let stateful = streaming || settings.tbptt.is_some();
            let report = match &part.lengths {
                _ if stateful => trainer.step_stateful(part.input.view(), part.targets.view())?,
                Some(lengths) => trainer.step_with_lengths(part.input.view(), lengths, part.targets.view())?,
                None => trainer.step(part.input.view(), part.targets.view())?,
            };
            let step = report.step + 1;
            progress.step(step, report.loss as f64);
            let evaluate = step % settings.eval_every == 0 || step == settings.steps;
            if !(evaluate || step % settings.log_every == 0) {
                continue;
            }
            let elapsed = since.elapsed().as_secs_f64();
            let steps_per_s = if elapsed > 0.0 { (step - since_step) as f64 / elapsed } else { 0.0 };
            let eval = if evaluate { task.evaluate(trainer.model())? } else { Vec::new() };
            let record = Record {
                step,
                loss: report.loss as f64,
                lr: report.lr,
                grad_norm: report.grad_norm as f64,
                steps_per_s,
                eval,
            };
            if evaluate {
                progress.report(step, record.loss, &record.eval);
            }
            on_record(&record, trainer)?;
            // Evaluations and checkpoints are not training: the next record's speed starts after them.
            (since, since_step) = (Instant::now(), step);
        }
    }
    Ok(Outcome::Finished)
}

/// The optimizer `settings` name, for a model trained outside a [`Trainer`].
pub fn optimizer(settings: &Settings) -> recur::Result<Box<dyn Optimizer>> {
    Ok(match settings.optimizer {
        OptimizerArg::Sgd => Box::new(Sgd::new(SgdConfig::new(settings.lr).momentum(0.9))?),
        OptimizerArg::Adam => Box::new(Adam::new(AdamConfig::new(settings.lr))?),
        OptimizerArg::Adamw => Box::new(Adam::new(AdamConfig::adamw(settings.lr))?),
    })
}

/// Trains an encoder-decoder on a sequence-to-sequence task from step `first_step` until `settings.steps` or
/// until `stop` is raised: each step draws a batch from `rng`, runs teacher forcing, the cross-entropy and its
/// backward, clips the gradient norm to `settings.clip` (0: not at all) and updates. Records go to `on_record`
/// as in [`train`].
#[allow(clippy::too_many_arguments)]
pub fn train_seq2seq(
    model: &mut Seq2Seq,
    optimizer: &mut dyn Optimizer,
    task: &Translate,
    settings: &Settings,
    rng: &mut ChaCha8Rng,
    stop: &AtomicBool,
    progress: &Progress,
    on_record: &mut dyn FnMut(&Record, &Seq2Seq) -> Result<(), String>,
) -> Result<(Outcome, u64), Box<dyn std::error::Error>> {
    let classes = task.target_vocab().len();
    let loss_fn = CrossEntropyLoss::new();
    let mut since = Instant::now();
    let mut since_step = 0;
    let mut step = 0;
    while step < settings.steps {
        if stop.load(Ordering::SeqCst) {
            return Ok((Outcome::Interrupted, step));
        }
        let batch = task.train_batch(settings.batch, rng)?;
        let (logits, cache) = model.forward_train(&as_batch(&batch))?;
        let (loss, d_logits) = loss_fn.forward(&logits, classes, &batch.targets, None)?;
        if !loss.is_finite() {
            return Err(recur::Error::NonFinite { step, what: "loss".into(), value: loss }.into());
        }
        model.backward(&cache, &d_logits)?;
        let mut params = model.parameters();
        // Clipping to +∞ only measures the norm.
        let max_norm = if settings.clip > 0.0 { settings.clip } else { f32::INFINITY };
        let grad_norm = clip_grad_norm(&mut params, max_norm)?;
        if !grad_norm.is_finite() {
            return Err(recur::Error::NonFinite { step, what: "gradient norm".into(), value: grad_norm }.into());
        }
        optimizer.step(&mut params)?;
        zero_grad(&mut params);
        drop(params);
        step += 1;
        progress.step(step, loss as f64);
        let evaluate = step % settings.eval_every == 0 || step == settings.steps;
        if !(evaluate || step % settings.log_every == 0) {
            continue;
        }
        let elapsed = since.elapsed().as_secs_f64();
        let steps_per_s = if elapsed > 0.0 { (step - since_step) as f64 / elapsed } else { 0.0 };
        let eval = if evaluate { task.evaluate(model)? } else { Vec::new() };
        let record =
            Record { step, loss: loss as f64, lr: settings.lr, grad_norm: grad_norm as f64, steps_per_s, eval };
        if evaluate {
            progress.report(step, record.loss, &record.eval);
        }
        on_record(&record, model)?;
        (since, since_step) = (Instant::now(), step);
    }
    Ok((Outcome::Finished, step))
}

/// A batch of every-step targets cut along time into windows of `k` steps, for truncated BPTT.
fn windows(batch: &Batch, k: usize, batch_first: bool) -> Result<Vec<Batch>, String> {
    let (steps, sequences) = match &batch.input {
        BatchInput::Tokens { steps, batch, .. } => (*steps, *batch),
        BatchInput::Features(x) => match *x.shape() {
            [a, b, _] if batch_first => (b, a),
            [a, b, _] => (a, b),
            _ => return Err(format!("a batch of shape {:?} has no time axis", x.shape())),
        },
    };
    // The position of value `j` of row (t, b) in a layout with `width` values per row.
    let at = |t: usize, b: usize, width: usize, j: usize| {
        if batch_first { (b * steps + t) * width + j } else { (t * sequences + b) * width + j }
    };
    let cut = |range: &std::ops::Range<usize>, data_len: usize, width: usize| -> Vec<usize> {
        debug_assert_eq!(data_len, steps * sequences * width);
        let order: Vec<(usize, usize)> = if batch_first {
            (0..sequences).flat_map(|b| range.clone().map(move |t| (t, b))).collect()
        } else {
            range.clone().flat_map(|t| (0..sequences).map(move |b| (t, b))).collect()
        };
        order.into_iter().flat_map(|(t, b)| (0..width).map(move |j| at(t, b, width, j))).collect()
    };
    let mut parts = Vec::new();
    for range in recur::train::windows(steps, k) {
        let len = range.len();
        let input = match &batch.input {
            BatchInput::Tokens { ids, .. } => BatchInput::Tokens {
                ids: cut(&range, ids.len(), 1).into_iter().map(|i| ids[i]).collect(),
                steps: len,
                batch: sequences,
            },
            BatchInput::Features(x) => {
                let width = x.shape()[2];
                let data: Vec<f32> = cut(&range, x.len(), width).into_iter().map(|i| x.data()[i]).collect();
                let shape = if batch_first { [sequences, len, width] } else { [len, sequences, width] };
                BatchInput::Features(recur::Tensor::new(shape, data).map_err(|e| e.to_string())?)
            }
        };
        let targets = match &batch.targets {
            BatchTargets::Classes(c) => {
                BatchTargets::Classes(cut(&range, c.len(), 1).into_iter().map(|i| c[i]).collect())
            }
            BatchTargets::Values(v) => {
                let width = v.len() / (steps * sequences).max(1);
                BatchTargets::Values(cut(&range, v.len(), width).into_iter().map(|i| v[i]).collect())
            }
        };
        parts.push(Batch { input, targets, lengths: None });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_both_layouts_along_time() {
        // Two sequences of five steps; token (t, b) is 10·b + t, and so is its target.
        for batch_first in [true, false] {
            let ids: Vec<usize> = if batch_first {
                (0..2).flat_map(|b| (0..5).map(move |t| 10 * b + t)).collect()
            } else {
                (0..5).flat_map(|t| (0..2).map(move |b| 10 * b + t)).collect()
            };
            let targets = BatchTargets::Classes(ids.iter().map(|&i| i as i64).collect());
            let batch = Batch { input: BatchInput::Tokens { ids, steps: 5, batch: 2 }, targets, lengths: None };
            let parts = windows(&batch, 2, batch_first).unwrap();
            assert_eq!(parts.len(), 3);
            let BatchInput::Tokens { ids, steps, .. } = &parts[1].input else { panic!() };
            assert_eq!(*steps, 2);
            let want = if batch_first { vec![2, 3, 12, 13] } else { vec![2, 12, 3, 13] };
            assert_eq!(ids, &want);
            let BatchTargets::Classes(c) = &parts[2].targets else { panic!() };
            assert_eq!(c, &vec![4, 14]);
        }
    }
}
