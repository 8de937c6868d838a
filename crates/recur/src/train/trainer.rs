//! A training loop for a [`SequenceModel`]: loss, backward, gradient clipping, an optimizer step and a
//! learning-rate schedule per call, with checkpoints that resume exactly.

use std::collections::HashMap;
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::CarriedState;
use crate::error::{Error, Result};
use crate::loss::{CrossEntropyLoss, MseLoss};
use crate::model::{SequenceInput, SequenceModel};
use crate::model_file::TensorFile;
use crate::optim::{Adam, AdamConfig, Optimizer, Schedule, Scheduler, Sgd, SgdConfig, clip_grad_norm, zero_grad};
use crate::params::{Module, Trainable};
use crate::tensor::Tensor;

/// The optimizer a [`Trainer`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// [`Sgd`] (with `momentum`).
    Sgd,
    /// [`Adam`].
    Adam,
    /// AdamW (decoupled weight decay).
    AdamW,
}

/// The learning-rate schedule of a [`Trainer`], over its steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// A constant learning rate.
    Constant,
    /// Cosine decay to 0 over `total` steps.
    Cosine {
        /// Steps until the rate reaches 0.
        total: u64,
    },
    /// A linear warm-up from a tenth of the rate over `warmup` steps, then cosine decay to 0 at `total`.
    WarmupCosine {
        /// Warm-up steps.
        warmup: u64,
        /// Total steps.
        total: u64,
    },
    /// Multiply the rate by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: u64,
        /// The factor.
        gamma: f64,
    },
}

/// How a [`Trainer`] trains. Saved in its checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f32>,
    /// The learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Seed of the trainer's random generator (dropout masks, and whatever the caller draws from
    /// [`Trainer::rng`]).
    pub seed: u64,
}

impl TrainerConfig {
    /// Adam with the given learning rate, no clipping, a constant schedule, seed 0.
    pub fn adam(lr: f64) -> Self {
        TrainerConfig {
            optimizer: OptimizerKind::Adam,
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            clip_norm: None,
            schedule: ScheduleKind::Constant,
            seed: 0,
        }
    }

    fn build_optimizer(&self) -> Result<Box<dyn Optimizer + Send>> {
        Ok(match self.optimizer {
            OptimizerKind::Sgd => {
                Box::new(Sgd::new(SgdConfig::new(self.lr).momentum(self.momentum).weight_decay(self.weight_decay))?)
            }
            OptimizerKind::Adam => Box::new(Adam::new(AdamConfig::new(self.lr).weight_decay(self.weight_decay))?),
            OptimizerKind::AdamW => Box::new(Adam::new(AdamConfig::adamw(self.lr).weight_decay(self.weight_decay))?),
        })
    }

    fn build_scheduler(&self) -> Result<Scheduler> {
        let schedule = match self.schedule {
            ScheduleKind::Constant => Schedule::constant(),
            ScheduleKind::Cosine { total } => Schedule::cosine(total, 0.0)?,
            ScheduleKind::WarmupCosine { warmup, total } => Schedule::sequential(
                vec![Schedule::linear(0.1, 1.0, warmup)?, Schedule::cosine(total.saturating_sub(warmup).max(1), 0.0)?],
                vec![warmup.max(1)],
            )?,
            ScheduleKind::Step { step_size, gamma } => Schedule::step_lr(step_size, gamma)?,
        };
        Scheduler::new(schedule, self.lr)
    }
}

/// What a training step is scored against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Regression targets, `rows × outputs`, scored by mean squared error.
    Values(&'a [f32]),
    /// Class indices, one per row, scored by cross-entropy over the outputs (`-100` is ignored).
    Classes(&'a [i64]),
}

/// What one training step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The step's index, counted from 0.
    pub step: u64,
    /// The loss before the update.
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
    /// The learning rate used for the update.
    pub lr: f64,
}

/// Trains a [`SequenceModel`]: forward, loss, backward, clipping, an optimizer step and a schedule step per call.
///
/// A step may use Rayon's pool as the layer's passes do ([`Recurrent`](crate::Recurrent)'s **Threads**), whose
/// results are the same bits on any number of threads.
pub struct Trainer {
    model: SequenceModel,
    config: TrainerConfig,
    optimizer: Box<dyn Optimizer + Send>,
    scheduler: Scheduler,
    rng: ChaCha8Rng,
    step: u64,
    carried: CarriedState,
}

const TRAINER_KEY: &str = "trainer";
const STEP_KEY: &str = "trainer.step";
const RNG_KEY: &str = "trainer.rng";
const CARRIED_H: &str = "carried.h";
const CARRIED_C: &str = "carried.c";

impl Trainer {
    /// A trainer at step 0.
    pub fn new(model: SequenceModel, config: TrainerConfig) -> Result<Self> {
        let mut optimizer = config.build_optimizer()?;
        let scheduler = config.build_scheduler()?;
        scheduler.apply(optimizer.as_mut());
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Ok(Trainer { model, config, optimizer, scheduler, rng, step: 0, carried: CarriedState::new() })
    }

    /// The model.
    pub fn model(&self) -> &SequenceModel {
        &self.model
    }

    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The trainer's random generator; data drawn from it is reproduced exactly after a resume.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// The state carried between windows by [`Trainer::step_stateful`].
    pub fn carried_state(&mut self) -> &mut CarriedState {
        &mut self.carried
    }

    /// One training step on a batch, from zero initial states.
    pub fn step(&mut self, input: SequenceInput<'_>, targets: Targets<'_>) -> Result<StepReport> {
        let mut fresh = CarriedState::new();
        self.step_from(input, None, targets, &mut fresh)
    }

    /// One training step on a padded batch in which sequence `b` has `lengths[b]` valid steps. A many-to-one
    /// head reads each sequence's last valid step; an every-step head's loss ignores the padded steps (their
    /// targets are never read, so any value will do).
    pub fn step_with_lengths(
        &mut self,
        input: SequenceInput<'_>,
        lengths: &[usize],
        targets: Targets<'_>,
    ) -> Result<StepReport> {
        let mut fresh = CarriedState::new();
        self.step_from(input, Some(lengths), targets, &mut fresh)
    }

    /// One step of truncated BPTT: starts from the state the previous window left (detached), and leaves its
    /// final state for the next window.
    pub fn step_stateful(&mut self, input: SequenceInput<'_>, targets: Targets<'_>) -> Result<StepReport> {
        let mut carried = std::mem::take(&mut self.carried);
        let report = self.step_from(input, None, targets, &mut carried);
        self.carried = carried;
        report
    }

    fn step_from(
        &mut self,
        input: SequenceInput<'_>,
        lengths: Option<&[usize]>,
        targets: Targets<'_>,
        state: &mut CarriedState,
    ) -> Result<StepReport> {
        let step = self.step;
        let (predictions, out, cache) = self.model.forward_train(input, lengths, state, &mut self.rng)?;
        let outputs = self.model.config().outputs;
        let mask = self.model.valid_rows(steps_of(input, &self.model), lengths);
        let (loss, grad) = score(&predictions, outputs, targets, mask.as_deref())?;
        if !loss.is_finite() {
            return Err(Error::NonFinite { what: "loss".into(), step, value: loss });
        }
        self.model.backward(&cache, &grad)?;
        let mut params = self.model.parameters();
        let grad_norm = clip_grad_norm(&mut params, self.config.clip_norm.unwrap_or(f32::INFINITY))?;
        if !grad_norm.is_finite() {
            zero_grad(&mut params);
            return Err(Error::NonFinite { what: "gradient norm".into(), step, value: grad_norm });
        }
        let lr = self.optimizer.lr();
        self.optimizer.step(&mut params)?;
        zero_grad(&mut params);
        self.scheduler.step();
        self.scheduler.apply(self.optimizer.as_mut());
        self.step += 1;
        state.carry(&out);
        Ok(StepReport { step, loss, grad_norm, lr })
    }

    /// The loss on a batch, without training (no dropout, no gradients).
    pub fn evaluate(&self, input: SequenceInput<'_>, targets: Targets<'_>) -> Result<f32> {
        self.evaluate_with_lengths(input, None, targets)
    }

    /// [`Trainer::evaluate`] on a padded batch with per-sequence lengths.
    pub fn evaluate_with_lengths(
        &self,
        input: SequenceInput<'_>,
        lengths: Option<&[usize]>,
        targets: Targets<'_>,
    ) -> Result<f32> {
        let (predictions, _) = self.model.forward(input, lengths, &CarriedState::new())?;
        let mask = self.model.valid_rows(steps_of(input, &self.model), lengths);
        Ok(score(&predictions, self.model.config().outputs, targets, mask.as_deref())?.0)
    }

    /// Writes a checkpoint: the model's parameters (PyTorch names), the optimizer's state, the step, the
    /// schedule's position, the random generator's state and the carried state, in one safetensors file,
    /// atomically (temporary file, fsync, rename).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = self.model.state_dict();
        tensors.extend(self.optimizer.state_tensors());
        tensors.extend(self.carried.h0().map(|h| (CARRIED_H.to_string(), h.clone())));
        tensors.extend(self.carried.c0().map(|c| (CARRIED_C.to_string(), c.clone())));
        let mut metadata = self.optimizer.state_metadata();
        metadata.insert("model".into(), to_json(self.model.config()));
        metadata.insert(TRAINER_KEY.into(), to_json(&self.config));
        metadata.insert(STEP_KEY.into(), self.step.to_string());
        metadata.insert(RNG_KEY.into(), rng_state(&self.rng));
        TensorFile::write(path, &tensors, &metadata)
    }

    /// Restores a trainer from a checkpoint written by [`Trainer::save_checkpoint`]: the run continues exactly
    /// as if it had not stopped.
    pub fn resume(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let bad = |reason: String| Error::Format { path: path.into(), reason };
        let get =
            |key: &str| file.metadata.get(key).ok_or_else(|| bad(format!("not a checkpoint: no `{key}` metadata")));
        let config: TrainerConfig =
            serde_json::from_str(get(TRAINER_KEY)?).map_err(|e| bad(format!("bad trainer config: {e}")))?;
        let step: u64 = get(STEP_KEY)?.parse().map_err(|e| bad(format!("bad `{STEP_KEY}`: {e}")))?;
        let rng = rng_from_state(get(RNG_KEY)?).ok_or_else(|| bad(format!("bad `{RNG_KEY}`")))?;
        let model_tensors: HashMap<String, Tensor> = file
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("embedding.") || k.starts_with("rnn.") || k.starts_with("head."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let model = SequenceModel::from_tensor_file(&TensorFile {
            tensors: model_tensors,
            metadata: file.metadata.clone(),
            stored: HashMap::new(),
        })?;
        let mut trainer = Trainer::new(model, config)?;
        let params = trainer.model.parameters();
        trainer.optimizer.load_state(&params, &file.tensors, &file.metadata)?;
        drop(params);
        trainer.scheduler.set_position(step);
        trainer.scheduler.apply(trainer.optimizer.as_mut());
        trainer.rng = rng;
        trainer.step = step;
        if let Some(h) = file.tensors.get(CARRIED_H) {
            let c = file.tensors.get(CARRIED_C).cloned();
            trainer.carried = CarriedState::from_tensors(h.clone(), c);
        }
        Ok(trainer)
    }
}

/// The loss of `predictions` (`rows × outputs`) and its gradient, over the rows `mask` keeps (all when `None`).
fn score(predictions: &[f32], outputs: usize, targets: Targets<'_>, mask: Option<&[bool]>) -> Result<(f32, Vec<f32>)> {
    match targets {
        Targets::Values(values) => MseLoss.forward(predictions, values, mask),
        Targets::Classes(classes) => CrossEntropyLoss::new().forward(predictions, outputs, classes, mask),
    }
}

/// The number of time steps of an input.
fn steps_of(input: SequenceInput<'_>, model: &SequenceModel) -> usize {
    match input {
        SequenceInput::Tokens { steps, .. } => steps,
        SequenceInput::Features(x) => {
            let shape = x.shape();
            if model.config().recurrent.batch_first { shape.get(1) } else { shape.first() }.copied().unwrap_or(0)
        }
    }
}

/// The generator's seed, stream and position, as `seed-hex:stream:word-position`.
fn rng_state(rng: &ChaCha8Rng) -> String {
    let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    format!("{seed}:{}:{}", rng.get_stream(), rng.get_word_pos())
}

fn rng_from_state(state: &str) -> Option<ChaCha8Rng> {
    let mut parts = state.split(':');
    let hex = parts.next()?;
    let stream: u64 = parts.next()?.parse().ok()?;
    let pos: u128 = parts.next()?.parse().ok()?;
    if hex.len() != 64 || parts.next().is_some() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(pos);
    Some(rng)
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("configurations always serialise")
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::*;

    #[test]
    fn rng_state_round_trips_mid_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..37 {
            rng.next_u32();
        }
        let mut restored = rng_from_state(&rng_state(&rng)).unwrap();
        for _ in 0..100 {
            assert_eq!(rng.next_u64(), restored.next_u64());
        }
        assert!(rng_from_state("zz:1:2").is_none());
        assert!(rng_from_state("").is_none());
    }
}
