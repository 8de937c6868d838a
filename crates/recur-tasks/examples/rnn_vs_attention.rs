//! Recurrent networks against self-attention, measured side by side in one run.
//!
//! 1. **Learning.** A vanilla RNN, an LSTM, a GRU (each a [`SequenceModel`] trained by a [`Trainer`]) and a small
//!    Transformer encoder (input layer, sinusoidal positions, two pre-norm [`TransformerEncoderLayer`]s, a
//!    readout) of similar parameter counts learn two tasks with Adam, the same steps and batch size:
//!    - the adding problem at `T = 50` (many-to-one regression; always predicting 1 scores an MSE of 0.167);
//!    - the tagging task (a label per step that names the tokens `k` steps before *and after* it; accuracy).
//!      The recurrent models are unidirectional and see only the past, so they cannot beat the task's causal
//!      ceiling (0.325), while the encoder's self-attention is not causal and sees the whole sequence: this
//!      task favours attention by construction. The same encoder with a causal mask is trained too, to show
//!      that the gap is what each model may see, not how it is built.
//! 2. **Streaming cost.** The time of one step of inference when `t` positions came before: an LSTM's or a GRU's
//!    [`StreamState::step`] does the same work whatever `t` is, while a causal self-attention step attends its
//!    new query over `t` cached keys and values and so grows with `t`. Two attention steps are timed: one with a
//!    cache of projected keys and values (written here, a few lines over the library's layers, and checked
//!    against [`TransformerEncoderLayer::forward`] with a causal mask), and one through
//!    [`MultiheadAttention::forward_slices`] with [`MhaInput::Cross`] over the cached *inputs*, which projects
//!    every cached position again at every step (the library has no key/value cache).
//!
//! It prints one markdown table per part and draws the step times against the context length, log-log, as a PNG.
//!
//! ```sh
//! cargo run --release -p recur-tasks --example rnn_vs_attention                      # about 3 minutes on 2 cores
//! cargo run --release -p recur-tasks --example rnn_vs_attention -- --quick           # a smoke test
//! cargo run --release -p recur-tasks --example rnn_vs_attention -- --plot docs/rnn_vs_attention.png
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::attention::{
    AttentionMask, AttentionShape, MhaInput, MultiheadAttention, MultiheadAttentionConfig, NeedWeights,
    TransformerCache, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use recur::nn::HeadCache;
use recur::optim::{Schedule, clip_grad_norm};
use recur::params::prefixed;
use recur::train::{CarriedState, OptimizerKind, ScheduleKind, Targets, Trainer, TrainerConfig};
use recur::{
    Adam, AdamConfig, CrossEntropyLoss, Embedding, Head, LayerNorm, Layout, Linear, Mode, Module, MseLoss, Optimizer,
    Param, PositionalEncoding, Readout, ReadoutName, Recurrent, RecurrentConfig, Result, Scheduler, SequenceInput,
    SequenceModel, SequenceModelConfig, SequenceShape, StreamState, Tensor, Trainable,
};
use recur_tasks::{ADDING_BASELINE, TaggingConfig, adding_task, tagging_ceiling, tagging_task};

/// Command-line options.
#[derive(Clone, Debug)]
struct Options {
    /// A much shorter run, as a smoke test.
    quick: bool,
    /// Where the PNG goes.
    plot: PathBuf,
}

impl Options {
    /// `[--quick] [--plot PATH]`.
    fn parse() -> std::result::Result<Options, String> {
        let mut options = Options { quick: false, plot: PathBuf::from("rnn_vs_attention.png") };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--plot" => options.plot = args.next().ok_or("--plot needs a path")?.into(),
                other => return Err(format!("unknown argument `{other}`; usage: [--quick] [--plot PATH]")),
            }
        }
        Ok(options)
    }
}

/// How much work each part does.
#[derive(Clone, Debug)]
struct Budget {
    /// Training steps per model and task.
    steps: u64,
    /// Sequences per training batch.
    batch: usize,
    /// Held-out sequences per task.
    held_out: usize,
    /// The learning rate's peak (after a linear warm-up, then cosine decay to 0).
    lr: f64,
    /// Context lengths of the streaming part.
    contexts: Vec<usize>,
    /// Wall-clock budget of one timing, in seconds.
    timing_seconds: f64,
}

impl Budget {
    fn new(quick: bool) -> Budget {
        if quick {
            Budget { steps: 40, batch: 16, held_out: 64, lr: 2e-3, contexts: vec![10, 100, 1000], timing_seconds: 0.02 }
        } else {
            Budget {
                steps: 4000,
                batch: 32,
                held_out: 1000,
                lr: 2e-3,
                contexts: vec![10, 100, 1000, 10000],
                timing_seconds: 0.4,
            }
        }
    }

    /// The learning-rate schedule of every model: a tenth of the peak rising to it over 5% of the steps, then
    /// cosine decay.
    fn schedule(&self) -> ScheduleKind {
        ScheduleKind::WarmupCosine { warmup: (self.steps / 20).max(1), total: self.steps }
    }
}

/// The sizes of the compared models, chosen so that their parameter counts are close.
mod sizes {
    /// Hidden units of the vanilla RNN, the LSTM and the GRU (about 17k weights each on the adding problem).
    pub const RNN: usize = 128;
    pub const LSTM: usize = 64;
    pub const GRU: usize = 74;
    /// The recurrent models' token embedding on the tagging task.
    pub const EMBED: usize = 16;
    /// The Transformer encoder: `d_model`, heads, feed-forward units and layers.
    pub const D_MODEL: usize = 32;
    pub const HEADS: usize = 4;
    pub const FEEDFORWARD: usize = 64;
    pub const LAYERS: usize = 2;
    /// Gradient clipping of every model.
    pub const CLIP: f32 = 1.0;
}

// ---------------------------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------------------------

/// One of the two tasks.
#[derive(Clone, Copy, Debug)]
enum Task {
    /// The adding problem with sequences of this many steps.
    Adding { steps: usize },
    /// The tagging task.
    Tagging(TaggingConfig),
}

/// A batch of either task, batch-first.
#[derive(Clone, Debug)]
struct Batch {
    /// Sequences.
    batch: usize,
    /// Steps per sequence.
    steps: usize,
    /// What the model reads.
    input: BatchInput,
    /// What it is scored against.
    targets: BatchTargets,
}

#[derive(Clone, Debug)]
enum BatchInput {
    /// `(B, T, F)` features.
    Features(Tensor),
    /// `B·T` token ids.
    Tokens(Vec<usize>),
}

#[derive(Clone, Debug)]
enum BatchTargets {
    /// One value per sequence.
    Values(Vec<f32>),
    /// One class per step.
    Classes(Vec<i64>),
}

impl Task {
    fn name(&self) -> &'static str {
        match self {
            Task::Adding { .. } => "adding",
            Task::Tagging(_) => "tagging",
        }
    }

    /// Draws `batch` sequences.
    fn draw(&self, batch: usize, rng: &mut impl Rng) -> Result<Batch> {
        match *self {
            Task::Adding { steps } => {
                let b = adding_task(batch, steps, rng)?;
                let targets = BatchTargets::Values(b.target.data().to_vec());
                Ok(Batch { batch, steps, input: BatchInput::Features(b.input), targets })
            }
            Task::Tagging(config) => {
                let b = tagging_task(&config, batch, rng)?;
                let targets = BatchTargets::Classes(b.targets);
                Ok(Batch { batch, steps: config.steps, input: BatchInput::Tokens(b.ids), targets })
            }
        }
    }

    /// Features per step (adding) or the vocabulary (tagging).
    fn input_width(&self) -> usize {
        match self {
            Task::Adding { .. } => 2,
            Task::Tagging(config) => config.vocab,
        }
    }

    /// Values predicted per prediction row.
    fn outputs(&self) -> usize {
        match self {
            Task::Adding { .. } => 1,
            Task::Tagging(config) => config.classes(),
        }
    }

    /// The held-out score: MSE (lower is better) or per-step accuracy (higher is better).
    fn score(&self, predictions: &[f32], batch: &Batch) -> Result<f64> {
        match &batch.targets {
            BatchTargets::Values(values) => recur_tasks::mse(predictions, values),
            BatchTargets::Classes(classes) => recur_tasks::accuracy(predictions, self.outputs(), classes),
        }
    }
}

impl Batch {
    fn sequence_input(&self) -> SequenceInput<'_> {
        match &self.input {
            BatchInput::Features(x) => SequenceInput::Features(x),
            BatchInput::Tokens(ids) => SequenceInput::Tokens { ids, steps: self.steps, batch: self.batch },
        }
    }

    fn targets(&self) -> Targets<'_> {
        match &self.targets {
            BatchTargets::Values(v) => Targets::Values(v),
            BatchTargets::Classes(c) => Targets::Classes(c),
        }
    }

    /// Sequences `start..end` of this batch.
    fn slice(&self, start: usize, end: usize) -> Result<Batch> {
        let (t, n) = (self.steps, end - start);
        let input = match &self.input {
            BatchInput::Features(x) => {
                let f = x.shape()[2];
                BatchInput::Features(Tensor::new([n, t, f], x.data()[start * t * f..end * t * f].to_vec())?)
            }
            BatchInput::Tokens(ids) => BatchInput::Tokens(ids[start * t..end * t].to_vec()),
        };
        let targets = match &self.targets {
            BatchTargets::Values(v) => BatchTargets::Values(v[start..end].to_vec()),
            BatchTargets::Classes(c) => BatchTargets::Classes(c[start * t..end * t].to_vec()),
        };
        Ok(Batch { batch: n, steps: t, input, targets })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------------

/// A model in the comparison: trained one batch at a time, then scored on held-out data.
trait Contender {
    /// Its number of parameters.
    fn num_params(&self) -> usize;
    /// One Adam step on `batch`; returns the loss before the update.
    fn train_step(&mut self, batch: &Batch) -> Result<f32>;
    /// Predictions for `batch` (no gradients).
    fn predict(&self, batch: &Batch) -> Result<Vec<f32>>;
}

/// The three recurrent kinds, with their display names and hidden sizes.
const RECURRENT: [(&str, Mode, usize); 3] =
    [("RNN", Mode::RnnTanh, sizes::RNN), ("LSTM", Mode::Lstm, sizes::LSTM), ("GRU", Mode::Gru, sizes::GRU)];

/// A unidirectional recurrent [`SequenceModel`] and its [`Trainer`].
struct RecurrentContender {
    trainer: Trainer,
}

impl RecurrentContender {
    fn new(task: Task, mode: Mode, hidden: usize, budget: &Budget, seed: u64) -> Result<Self> {
        let (vocab, input_size, readout) = match task {
            Task::Adding { .. } => (None, task.input_width(), ReadoutName::Last),
            Task::Tagging(c) => (Some(c.vocab), sizes::EMBED, ReadoutName::EveryStep),
        };
        let recurrent = RecurrentConfig::new(mode, input_size, hidden).batch_first(true);
        let config = SequenceModelConfig { vocab, recurrent, readout, outputs: task.outputs() };
        let model = SequenceModel::new(config, &mut StdRng::seed_from_u64(seed))?;
        let trainer_config = TrainerConfig {
            optimizer: OptimizerKind::Adam,
            lr: budget.lr,
            momentum: 0.0,
            weight_decay: 0.0,
            clip_norm: Some(sizes::CLIP),
            schedule: budget.schedule(),
            seed,
        };
        Ok(RecurrentContender { trainer: Trainer::new(model, trainer_config)? })
    }
}

impl Contender for RecurrentContender {
    fn num_params(&self) -> usize {
        self.trainer.model().num_params()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<f32> {
        Ok(self.trainer.step(batch.sequence_input(), batch.targets())?.loss)
    }

    fn predict(&self, batch: &Batch) -> Result<Vec<f32>> {
        Ok(self.trainer.model().forward(batch.sequence_input(), None, &CarriedState::new())?.0)
    }
}

/// The encoder's first layer: a projection of features or an embedding of tokens.
enum InputLayer {
    Features(Linear),
    Tokens(Embedding),
}

/// A small Transformer encoder: input layer, sinusoidal positions, encoder layers (batch-first, no dropout) and a
/// head, a mean over positions (many-to-one) or per position (tagging).
struct Encoder {
    /// Whether a position attends only to itself and the positions before it.
    causal: bool,
    input: InputLayer,
    positions: PositionalEncoding,
    layers: Vec<TransformerEncoderLayer>,
    head: Head,
}

/// What [`Encoder::backward`] needs from [`Encoder::forward_train`].
struct EncoderCache {
    /// Each encoder layer's input and cache.
    layers: Vec<(Vec<f32>, TransformerCache)>,
    head: HeadCache<f32>,
    rows: usize,
}

impl Encoder {
    fn new(task: Task, causal: bool, rng: &mut StdRng) -> Result<Self> {
        let d = sizes::D_MODEL;
        let (input, readout) = match task {
            Task::Adding { .. } => {
                (InputLayer::Features(Linear::new(task.input_width(), d, true, rng)?), Readout::Mean)
            }
            Task::Tagging(c) => (InputLayer::Tokens(Embedding::new(c.vocab, d, None, rng)?), Readout::EveryStep),
        };
        let steps = match task {
            Task::Adding { steps } => steps,
            Task::Tagging(c) => c.steps,
        };
        let config = TransformerEncoderLayerConfig::new(d, sizes::HEADS)
            .dim_feedforward(sizes::FEEDFORWARD)
            .dropout(0.0)
            .batch_first(true)
            .norm_first(true);
        let layers = (0..sizes::LAYERS).map(|_| TransformerEncoderLayer::new(config, rng)).collect::<Result<_>>()?;
        let head = Head::new(readout, d, task.outputs(), rng)?;
        Ok(Encoder { causal, input, positions: PositionalEncoding::new(steps, d)?, layers, head })
    }

    fn shape(batch: &Batch) -> SequenceShape {
        SequenceShape { steps: batch.steps, batch: batch.batch, features: sizes::D_MODEL, layout: Layout::BatchFirst }
    }

    /// Predictions and what the backward pass needs.
    fn forward_train(&self, batch: &Batch) -> Result<(Vec<f32>, EncoderCache)> {
        let rows = batch.batch * batch.steps;
        let mut x = match (&self.input, &batch.input) {
            (InputLayer::Features(linear), BatchInput::Features(f)) => linear.forward(f.data(), rows)?,
            (InputLayer::Tokens(embedding), BatchInput::Tokens(ids)) => embedding.forward(ids)?,
            _ => return Err(recur::Error::config("the encoder's input layer does not match the task")),
        };
        self.positions.add_to(&mut x, Self::shape(batch))?;
        // Dropout is 0, so the generator is never drawn from.
        let mut rng = StdRng::seed_from_u64(0);
        let mut layers = Vec::with_capacity(self.layers.len());
        let mask = AttentionMask::none().with_causal(self.causal);
        for layer in &self.layers {
            let (y, cache) = layer.forward_train(&x, (batch.batch, batch.steps), &mask, &mut rng)?;
            layers.push((std::mem::replace(&mut x, y), cache));
        }
        let (predictions, head) = self.head.forward(&x, Self::shape(batch), None)?;
        Ok((predictions, EncoderCache { layers, head, rows }))
    }

    /// Accumulates every parameter's gradient from `∂L/∂predictions`.
    fn backward(&mut self, batch: &Batch, cache: &EncoderCache, d_predictions: &[f32]) -> Result<()> {
        let mut d = self.head.backward(&cache.head, d_predictions)?;
        for (layer, (x, layer_cache)) in self.layers.iter_mut().zip(&cache.layers).rev() {
            d = layer.backward(x, layer_cache, &d)?;
        }
        // The positions add a constant: the gradient passes through unchanged.
        match (&mut self.input, &batch.input) {
            (InputLayer::Features(linear), BatchInput::Features(f)) => {
                linear.backward_into(f.data(), &d, cache.rows, None)?;
            }
            (InputLayer::Tokens(embedding), BatchInput::Tokens(ids)) => embedding.backward(ids, &d)?,
            _ => unreachable!("checked by forward_train"),
        }
        Ok(())
    }

    fn parameters(&mut self) -> Vec<Param<'_>> {
        let mut all = match &mut self.input {
            InputLayer::Features(linear) => prefixed("input", linear.parameters()),
            InputLayer::Tokens(embedding) => prefixed("input", embedding.parameters()),
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            all.extend(prefixed(&format!("layers.{i}"), layer.parameters()));
        }
        all.extend(prefixed("head", self.head.parameters()));
        all
    }

    fn num_params(&self) -> usize {
        let input = match &self.input {
            InputLayer::Features(linear) => linear.num_params(),
            InputLayer::Tokens(embedding) => embedding.num_params(),
        };
        input + self.layers.iter().map(Module::num_params).sum::<usize>() + self.head.num_params()
    }
}

/// The encoder with the optimizer, schedule and clipping the recurrent models' [`Trainer`] uses.
struct EncoderContender {
    task: Task,
    encoder: Encoder,
    optimizer: Adam,
    scheduler: Scheduler,
}

impl EncoderContender {
    fn new(task: Task, causal: bool, budget: &Budget, seed: u64) -> Result<Self> {
        let encoder = Encoder::new(task, causal, &mut StdRng::seed_from_u64(seed))?;
        let mut optimizer = Adam::new(AdamConfig::new(budget.lr))?;
        let ScheduleKind::WarmupCosine { warmup, total } = budget.schedule() else {
            unreachable!("the budget's schedule is a warm-up and cosine decay");
        };
        // The same schedule as `Trainer`'s `WarmupCosine`.
        let schedule = Schedule::sequential(
            vec![Schedule::linear(0.1, 1.0, warmup)?, Schedule::cosine(total.saturating_sub(warmup).max(1), 0.0)?],
            vec![warmup.max(1)],
        )?;
        let scheduler = Scheduler::new(schedule, budget.lr)?;
        scheduler.apply(&mut optimizer);
        Ok(EncoderContender { task, encoder, optimizer, scheduler })
    }
}

impl Contender for EncoderContender {
    fn num_params(&self) -> usize {
        self.encoder.num_params()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<f32> {
        let (predictions, cache) = self.encoder.forward_train(batch)?;
        let (loss, grad) = match &batch.targets {
            BatchTargets::Values(v) => MseLoss.forward(&predictions, v, None)?,
            BatchTargets::Classes(c) => CrossEntropyLoss::new().forward(&predictions, self.task.outputs(), c, None)?,
        };
        self.encoder.backward(batch, &cache, &grad)?;
        let mut params = self.encoder.parameters();
        clip_grad_norm(&mut params, sizes::CLIP)?;
        self.optimizer.step(&mut params)?;
        recur::optim::zero_grad(&mut params);
        self.scheduler.step();
        self.scheduler.apply(&mut self.optimizer);
        Ok(loss)
    }

    fn predict(&self, batch: &Batch) -> Result<Vec<f32>> {
        Ok(self.encoder.forward_train(batch)?.0)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Part 1: learning
// ---------------------------------------------------------------------------------------------------------------

/// One model's result on one task.
#[derive(Clone, Debug)]
struct Outcome {
    params: usize,
    score: f64,
    seconds: f64,
}

/// Trains `model` for the budget's steps on fresh batches, then scores it on `held_out`.
fn train_and_score(model: &mut dyn Contender, task: Task, held_out: &Batch, budget: &Budget) -> Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(2024);
    let start = Instant::now();
    for _ in 0..budget.steps {
        let batch = task.draw(budget.batch, &mut rng)?;
        model.train_step(&batch)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut predictions = Vec::new();
    for first in (0..held_out.batch).step_by(250) {
        predictions.extend(model.predict(&held_out.slice(first, (first + 250).min(held_out.batch))?)?);
    }
    Ok(Outcome { params: model.num_params(), score: task.score(&predictions, held_out)?, seconds })
}

/// The models of the table on `task`, in order: RNN, LSTM, GRU, Transformer, causal Transformer.
fn contenders(task: Task, budget: &Budget) -> Result<Vec<Box<dyn Contender>>> {
    let mut models: Vec<Box<dyn Contender>> = Vec::new();
    for (_, mode, hidden) in RECURRENT {
        models.push(Box::new(RecurrentContender::new(task, mode, hidden, budget, 1)?));
    }
    for causal in [false, true] {
        models.push(Box::new(EncoderContender::new(task, causal, budget, 1)?));
    }
    Ok(models)
}

/// Names of the table's rows, in the order of [`contenders`].
fn model_names() -> Vec<String> {
    let mut names: Vec<String> = RECURRENT.iter().map(|(name, _, _)| name.to_string()).collect();
    let size = format!("{} layers, d = {}", sizes::LAYERS, sizes::D_MODEL);
    names.push(format!("Transformer ({size})"));
    names.push(format!("Transformer, causal ({size})"));
    names
}

/// Trains and scores every model on `task`.
fn run_task(task: Task, budget: &Budget) -> Result<Vec<Outcome>> {
    let held_out = task.draw(budget.held_out, &mut StdRng::seed_from_u64(12345))?;
    let mut outcomes = Vec::new();
    for (name, mut model) in model_names().into_iter().zip(contenders(task, budget)?) {
        let outcome = train_and_score(model.as_mut(), task, &held_out, budget)?;
        eprintln!("  {} {name}: {:.4} in {:.1} s", task.name(), outcome.score, outcome.seconds);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The learning table: one row per model, both tasks.
fn print_learning_table(adding: &[Outcome], tagging: &[Outcome]) {
    println!(
        "| model | params (adding / tagging) | adding MSE ↓ | tagging accuracy ↑ | training s (adding + tagging) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for ((name, a), t) in model_names().iter().zip(adding).zip(tagging) {
        println!(
            "| {name} | {} / {} | {:.5} | {:.3} | {:.1} + {:.1} |",
            a.params, t.params, a.score, t.score, a.seconds, t.seconds
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: the cost of one streaming step
// ---------------------------------------------------------------------------------------------------------------

/// One causal self-attention step of a pre- or post-norm encoder layer, with the weights of a
/// [`TransformerEncoderLayer`]: the new position's query attends over every cached key and value, its own
/// included.
struct CausalStep {
    norm_first: bool,
    heads: usize,
    /// The stacked query, key and value projections (`in_proj`).
    qkv: Linear,
    out_proj: Linear,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    /// The same attention as a library layer, for the step that re-projects the cached inputs.
    attention: MultiheadAttention,
    /// Projected keys and values of the positions so far, one row of `E` each.
    keys: Vec<f32>,
    values: Vec<f32>,
    /// The attention's inputs so far, for the library step.
    inputs: Vec<f32>,
}

impl CausalStep {
    /// Copies the weights of `layer` (batch-first, no dropout).
    fn from_layer(layer: &TransformerEncoderLayer) -> Result<Self> {
        let config = *layer.config();
        let (e, f) = (config.d_model, config.dim_feedforward);
        let weights: HashMap<String, Vec<f32>> =
            layer.named_params().into_iter().map(|p| (p.name, p.data.to_vec())).collect();
        let linear = |name: &str, inputs: usize, outputs: usize| -> Result<Linear> {
            let mut l = Linear::zeros(inputs, outputs, true)?;
            l.weight_mut().copy_from_slice(&weights[&format!("{name}weight")]);
            l.bias_mut().expect("a bias").copy_from_slice(&weights[&format!("{name}bias")]);
            Ok(l)
        };
        let qkv = linear("self_attn.in_proj_", e, 3 * e)?;
        let norm = |name: &str| {
            let mut n = LayerNorm::with_options(e, config.layer_norm_eps, true, true)?;
            n.weight_mut().expect("affine").copy_from_slice(&weights[&format!("{name}.weight")]);
            n.bias_mut().expect("a bias").copy_from_slice(&weights[&format!("{name}.bias")]);
            Ok::<_, recur::Error>(n)
        };
        let mut attention =
            MultiheadAttention::zeros(MultiheadAttentionConfig::new(e, config.nhead).batch_first(true))?;
        for p in attention.named_params_mut() {
            p.data.copy_from_slice(&weights[&format!("self_attn.{}", p.name)]);
        }
        Ok(CausalStep {
            norm_first: config.norm_first,
            heads: config.nhead,
            qkv,
            out_proj: linear("self_attn.out_proj.", e, e)?,
            linear1: linear("linear1.", e, f)?,
            linear2: linear("linear2.", f, e)?,
            norm1: norm("norm1")?,
            norm2: norm("norm2")?,
            attention,
            keys: Vec::new(),
            values: Vec::new(),
            inputs: Vec::new(),
        })
    }

    fn width(&self) -> usize {
        self.out_proj.out_features()
    }

    /// Positions in the cache.
    fn len(&self) -> usize {
        self.keys.len() / self.width()
    }

    /// Forgets every position after the first `len`.
    fn truncate(&mut self, len: usize) {
        let e = self.width();
        self.keys.truncate(len * e);
        self.values.truncate(len * e);
        self.inputs.truncate(len * e);
    }

    /// Caches the positions of `x` (rows of `E`, the layer's inputs) in one batched projection.
    fn prefill(&mut self, x: &[f32]) -> Result<()> {
        let e = self.width();
        let rows = x.len() / e;
        let a = if self.norm_first { self.norm1.forward(x, rows)? } else { x.to_vec() };
        let projected = self.qkv.forward(&a, rows)?;
        for row in projected.chunks_exact(3 * e) {
            self.keys.extend_from_slice(&row[e..2 * e]);
            self.values.extend_from_slice(&row[2 * e..]);
        }
        self.inputs.extend_from_slice(&a);
        Ok(())
    }

    /// One step from the key/value cache: `O(t·E)` for the attention, the rest constant.
    fn step_cached(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let e = self.width();
        let a = if self.norm_first { self.norm1.forward(x, 1)? } else { x.to_vec() };
        let projected = self.qkv.forward(&a, 1)?;
        self.keys.extend_from_slice(&projected[e..2 * e]);
        self.values.extend_from_slice(&projected[2 * e..]);
        self.inputs.extend_from_slice(&a);
        let heads = self.attend(&projected[..e]);
        let attended = self.out_proj.forward(&heads, 1)?;
        self.finish(x, &attended)
    }

    /// One step through [`MultiheadAttention::forward_slices`] over the cached inputs, which projects all `t`
    /// of them again: `O(t·E²)`.
    fn step_library(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let a = if self.norm_first { self.norm1.forward(x, 1)? } else { x.to_vec() };
        self.inputs.extend_from_slice(&a);
        let keys = self.inputs.len() / self.width();
        let input = MhaInput::Cross { query: &a, key: &self.inputs, value: &self.inputs };
        let shape = AttentionShape { batch: 1, queries: 1, keys };
        let attended = self.attention.forward_slices(input, shape, &AttentionMask::none(), NeedWeights::No)?;
        self.finish(x, &attended.output)
    }

    /// Each head's softmax-weighted sum of the cached values for one query, side by side (`E` values).
    fn attend(&self, query: &[f32]) -> Vec<f32> {
        let (e, t) = (self.width(), self.len());
        let d = e / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0.0; e];
        let mut scores = vec![0.0f32; t];
        for h in 0..self.heads {
            let q = &query[h * d..(h + 1) * d];
            for (s, key) in scores.iter_mut().zip(self.keys.chunks_exact(e)) {
                *s = q.iter().zip(&key[h * d..(h + 1) * d]).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            let head = &mut out[h * d..(h + 1) * d];
            for (&p, value) in scores.iter().zip(self.values.chunks_exact(e)) {
                let w = p / total;
                head.iter_mut().zip(&value[h * d..(h + 1) * d]).for_each(|(o, &v)| *o += w * v);
            }
        }
        out
    }

    /// The residual sums, LayerNorms and feed-forward block after the attention.
    fn finish(&self, x: &[f32], attended: &[f32]) -> Result<Vec<f32>> {
        let sum: Vec<f32> = x.iter().zip(attended).map(|(a, b)| a + b).collect();
        let feed_forward = |v: &[f32]| -> Result<Vec<f32>> {
            let mut hidden = self.linear1.forward(v, 1)?;
            hidden.iter_mut().for_each(|h| *h = h.max(0.0));
            self.linear2.forward(&hidden, 1)
        };
        if self.norm_first {
            let ff = feed_forward(&self.norm2.forward(&sum, 1)?)?;
            Ok(sum.iter().zip(&ff).map(|(a, b)| a + b).collect())
        } else {
            let first = self.norm1.forward(&sum, 1)?;
            let ff = feed_forward(&first)?;
            let second: Vec<f32> = first.iter().zip(&ff).map(|(a, b)| a + b).collect();
            self.norm2.forward(&second, 1)
        }
    }
}

/// The encoder layer whose step is timed: the Transformer's layer size, pre-norm, batch-first.
fn timed_layer() -> Result<TransformerEncoderLayer> {
    let config = TransformerEncoderLayerConfig::new(sizes::D_MODEL, sizes::HEADS)
        .dim_feedforward(sizes::FEEDFORWARD)
        .dropout(0.0)
        .batch_first(true)
        .norm_first(true);
    TransformerEncoderLayer::with_seed(config, 3)
}

fn random_rows(rows: usize, width: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..rows * width).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The largest difference between both step functions, fed a sequence one position at a time, and the layer's
/// full forward pass with a causal mask.
fn check_causal_step(layer: &TransformerEncoderLayer) -> Result<f32> {
    let (e, t) = (sizes::D_MODEL, 24);
    let x = random_rows(t, e, &mut StdRng::seed_from_u64(5));
    let full = layer.forward(&x, (1, t), &AttentionMask::none().with_causal(true))?;
    let mut cached = CausalStep::from_layer(layer)?;
    let mut library = CausalStep::from_layer(layer)?;
    let mut worst = 0.0f32;
    for (row, want) in x.chunks_exact(e).zip(full.chunks_exact(e)) {
        for got in [cached.step_cached(row)?, library.step_library(row)?] {
            worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
        }
    }
    Ok(worst)
}

/// The median time of `f`, in microseconds, over as many calls as fit in `seconds` (between 5 and 20000).
fn median_micros(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (times.len() < 20_000 && start.elapsed().as_secs_f64() < seconds) {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Step times of one model at every context length.
#[derive(Clone, Debug)]
struct StepCurve {
    name: String,
    /// `(context length, microseconds)`.
    points: Vec<(usize, f64)>,
}

/// A recurrent layer's [`StreamState::step`], batch 1, after `t − 1` steps of a stream.
fn time_recurrent_step(rnn: &Recurrent, budget: &Budget, t: usize) -> Result<f64> {
    let e = sizes::D_MODEL;
    let mut rng = StdRng::seed_from_u64(9);
    let mut state = StreamState::new(rnn, 1)?;
    for row in random_rows(t - 1, e, &mut rng).chunks_exact(e) {
        state.step(rnn, row)?;
    }
    let x = random_rows(1, e, &mut rng);
    median_micros(budget.timing_seconds, || state.step(rnn, &x).map(|_| ()))
}

/// An attention step at context `t`: `t − 1` positions cached, one more attends over all `t`, then the cache is
/// cut back so that every repetition sees the same context.
fn time_attention_step(layer: &TransformerEncoderLayer, budget: &Budget, t: usize, library: bool) -> Result<f64> {
    let e = sizes::D_MODEL;
    let mut rng = StdRng::seed_from_u64(9);
    let mut step = CausalStep::from_layer(layer)?;
    step.prefill(&random_rows(t - 1, e, &mut rng))?;
    let x = random_rows(1, e, &mut rng);
    let advance = if library { CausalStep::step_library } else { CausalStep::step_cached };
    median_micros(budget.timing_seconds, || {
        advance(&mut step, &x)?;
        step.truncate(t - 1);
        Ok(())
    })
}

/// Times every streaming step at every context length of the budget.
fn run_streaming(budget: &Budget) -> Result<Vec<StepCurve>> {
    let layer = timed_layer()?;
    let worst = check_causal_step(&layer)?;
    eprintln!("  causal steps against the full causal forward pass: max |difference| = {worst:.1e}");
    if worst > 1e-4 {
        return Err(recur::Error::config(format!("the causal step disagrees with the layer by {worst}")));
    }
    let lstm = Recurrent::with_seed(RecurrentConfig::lstm(sizes::D_MODEL, sizes::LSTM), 4)?;
    let gru = Recurrent::with_seed(RecurrentConfig::gru(sizes::D_MODEL, sizes::GRU), 4)?;
    let names = [
        format!("LSTM step (H = {})", sizes::LSTM),
        format!("GRU step (H = {})", sizes::GRU),
        "attention step, key/value cache".to_string(),
        "attention step, MHA re-projecting the cache".to_string(),
    ];
    let mut curves: Vec<StepCurve> = names.into_iter().map(|name| StepCurve { name, points: Vec::new() }).collect();
    for &t in &budget.contexts {
        let times = [
            time_recurrent_step(&lstm, budget, t)?,
            time_recurrent_step(&gru, budget, t)?,
            time_attention_step(&layer, budget, t, false)?,
            time_attention_step(&layer, budget, t, true)?,
        ];
        for (curve, micros) in curves.iter_mut().zip(times) {
            curve.points.push((t, micros));
        }
        eprintln!("  context {t}: {times:.2?} µs");
    }
    Ok(curves)
}

/// The streaming table: one row per context length, one column per model.
fn print_streaming_table(curves: &[StepCurve]) {
    let header: Vec<&str> = curves.iter().map(|c| c.name.as_str()).collect();
    println!("| context t | {} |", header.join(" µs | ") + " µs");
    println!("|---:|{}", "---:|".repeat(curves.len()));
    for (i, &(t, _)) in curves[0].points.iter().enumerate() {
        let cells: Vec<String> = curves.iter().map(|c| format!("{:.2}", c.points[i].1)).collect();
        println!("| {t} | {} |", cells.join(" | "));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Plot
// ---------------------------------------------------------------------------------------------------------------

const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(255, 127, 14)];

/// Draws the step times against the context length, log-log, one line per model.
fn plot_streaming(curves: &[StepCurve], path: &std::path::Path) -> std::result::Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    // The embedded fonts are valid TrueType files, so registering them cannot fail in practice.
    let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0 as f64));
    let ys: Vec<f64> = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).collect();
    let x_max = xs.fold(1.0, f64::max) * 1.5;
    let (y_min, y_max) = (ys.iter().copied().fold(f64::INFINITY, f64::min), ys.iter().copied().fold(0.0, f64::max));
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("One streaming step against the context length", (FONT, 24).into_font().style(FontStyle::Bold))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((5.0..x_max).log_scale(), (y_min * 0.5..y_max * 2.0).log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("context length t (positions before and including the new one)")
        .y_desc("median µs per step, batch 1")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v:.2}") })
        .draw()
        .map_err(|e| fail(&e))?;
    for (curve, &color) in curves.iter().zip(PALETTE.iter().cycle()) {
        let points: Vec<(f64, f64)> = curve.points.iter().map(|&(t, us)| (t as f64, us)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
            .map_err(|e| fail(&e))?
            .label(&curve.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled()))).map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

// ---------------------------------------------------------------------------------------------------------------

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> std::result::Result<(), String> {
    let budget = Budget::new(options.quick);
    let adding = Task::Adding { steps: 50 };
    let tagging_config = TaggingConfig::default();
    let tagging = Task::Tagging(tagging_config);
    let started = Instant::now();
    eprintln!("training: {} Adam steps of batch {} per model and task", budget.steps, budget.batch);
    let adding_outcomes = run_task(adding, &budget).map_err(|e| e.to_string())?;
    let tagging_outcomes = run_task(tagging, &budget).map_err(|e| e.to_string())?;
    eprintln!("streaming steps:");
    let curves = run_streaming(&budget).map_err(|e| e.to_string())?;

    println!(
        "## Learning: {} Adam steps of batch {}, peak lr {} (warm-up, cosine decay), gradients clipped to norm {}\n",
        budget.steps,
        budget.batch,
        budget.lr,
        sizes::CLIP
    );
    println!(
        "Adding problem: T = 50, MSE on {} held-out sequences; always predicting 1 scores {ADDING_BASELINE:.3}.",
        budget.held_out
    );
    println!(
        "Tagging: vocab {}, T = {}, reach {}, per-step accuracy on {} held-out sequences. The recurrent models are \
         unidirectional: no causal model can expect more than {:.3}. The encoder's self-attention is not causal \
         and sees the future tokens, so this task favours it by construction; the causal encoder sees only the \
         past, as the recurrent models do.\n",
        tagging_config.vocab,
        tagging_config.steps,
        tagging_config.reach,
        budget.held_out,
        tagging_ceiling(&tagging_config)
    );
    print_learning_table(&adding_outcomes, &tagging_outcomes);
    println!(
        "\n## One streaming step, batch 1, input width {}: median µs against the context length t\n",
        sizes::D_MODEL
    );
    print_streaming_table(&curves);
    plot_streaming(&curves, &options.plot)?;
    println!("\nplot: {}; whole run {:.0} s", options.plot.display(), started.elapsed().as_secs_f64());
    Ok(())
}
