//! `recur bench`: recur's fixed set of named benchmark cases, the same names the comparison with PyTorch and ONNX
//! Runtime uses. Each case is warmed up, then timed repeatedly; the median is reported.
//!
//! Besides the recurrent layers there are cases for `nn.MultiheadAttention` (self-attention, inference and a
//! training step) and for one teacher-forced training step of the attentional encoder–decoder of the `reverse`
//! task.

use std::time::{Duration, Instant};

use clap::Args;
use rand::{Rng, SeedableRng};
use recur::attention::{
    AttentionMask, AttentionShape, MhaInput, MultiheadAttention, MultiheadAttentionConfig, NeedWeights, Score,
};
use recur::optim::{Adam, AdamConfig, Optimizer};
use recur::seq2seq::{Seq2Seq, Seq2SeqBatch, Seq2SeqConfig};
use recur::{
    CrossEntropyLoss, Int8Scale, Mode, Recurrent, RecurrentConfig, Scheme, StepWorker, StreamState, Tensor, Trainable,
};
use recur_tasks::{TranslateBatch, TranslateTask};

use super::CommandResult;

/// Arguments of `recur bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// One JSON object per line: `{"case", "ms" | "us", "gflops"}`.
    #[arg(long)]
    json: bool,
    /// Threads for the matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run only the case of this exact name, or else the cases whose name contains this.
    #[arg(long)]
    case: Option<String>,
    /// Seconds of timing per case, after warm-up.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Time this ONNX file instead of the named cases: imported, over a whole sequence and per streaming step.
    #[arg(long, value_name = "FILE")]
    onnx: Option<std::path::PathBuf>,
    /// With `--onnx`: sequences in the batch.
    #[arg(long, default_value_t = 1, requires = "onnx")]
    batch: usize,
    /// With `--onnx`: steps of the whole-sequence run.
    #[arg(long, default_value_t = 100, requires = "onnx")]
    steps: usize,
}

/// What one case does per timed repetition.
enum Work {
    /// Inference over the whole batch.
    Forward,
    /// Forward, backward of `mean(output²)`, one Adam step.
    Train,
    /// One step of a stream, batch 1 (reported per step, in µs).
    Stream,
}

/// The layer or model a case runs.
enum Model {
    /// A recurrent layer on `(B, T, I)` inputs.
    Recurrent(RecurrentConfig),
    /// Multi-head self-attention on batch-first `(B, T, E)` inputs.
    Attention(MultiheadAttentionConfig),
    /// The encoder–decoder on a batch of the `reverse` task, sources of up to `steps` letters.
    Seq2Seq(Seq2SeqConfig),
}

struct Case {
    name: String,
    model: Model,
    /// How a recurrent layer's weights are stored (`None`: f32).
    scheme: Option<Scheme>,
    batch: usize,
    steps: usize,
    work: Work,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (kind, mode) in [("lstm", Mode::Lstm), ("gru", Mode::Gru), ("rnn", Mode::RnnTanh)] {
        for bi in [false, true] {
            let label = if bi { format!("{kind}-bi") } else { kind.to_string() };
            let config = RecurrentConfig::new(mode, 128, 256).num_layers(2).batch_first(true).bidirectional(bi);
            for (work, verb) in [(Work::Forward, "fwd"), (Work::Train, "train")] {
                let name = format!("{label} {verb} B32 T50 I128 H256 L2");
                let model = Model::Recurrent(config.clone());
                out.push(Case { name, model, scheme: None, batch: 32, steps: 50, work });
            }
        }
    }
    // The quantized forms of the whole-sequence LSTM case: inference only.
    for scheme in QUANTIZED {
        let config = RecurrentConfig::lstm(128, 256).num_layers(2).batch_first(true);
        let name = format!("lstm fwd B32 T50 I128 H256 L2 {scheme}");
        let model = Model::Recurrent(config);
        out.push(Case { name, model, scheme: Some(scheme), batch: 32, steps: 50, work: Work::Forward });
    }
    for (kind, mode) in [("lstm", Mode::Lstm), ("gru", Mode::Gru)] {
        for (input, hidden, layers) in [(32, 64, 1), (64, 128, 2), (128, 256, 2)] {
            let config = RecurrentConfig::new(mode, input, hidden).num_layers(layers);
            for scheme in std::iter::once(None).chain(QUANTIZED.map(Some)) {
                let form = scheme.map_or(String::new(), |s| format!(" {s}"));
                let name = format!("{kind} stream B1 I{input} H{hidden} L{layers} per-step{form}");
                let model = Model::Recurrent(config.clone());
                out.push(Case { name, model, scheme, batch: 1, steps: 1, work: Work::Stream });
            }
        }
        // Many streams stepped together, as a server batching the steps of its live streams would: the time is
        // per stream-step, to set beside the B1 case's.
        for (input, hidden, layers) in [(32, 64, 1), (128, 256, 2)] {
            let name = format!("{kind} stream B{SERVED_STREAMS} I{input} H{hidden} L{layers} per-stream-step");
            let model = Model::Recurrent(RecurrentConfig::new(mode, input, hidden).num_layers(layers));
            out.push(Case { name, model, scheme: None, batch: SERVED_STREAMS, steps: 1, work: Work::Stream });
        }
    }
    let config = RecurrentConfig::lstm(256, 512).batch_first(true);
    out.push(Case {
        name: "lstm fwd B64 T200 I256 H512 L1".into(),
        model: Model::Recurrent(config),
        scheme: None,
        batch: 64,
        steps: 200,
        work: Work::Forward,
    });
    let mha = MultiheadAttentionConfig::new(256, 8).batch_first(true);
    for (work, verb) in [(Work::Forward, "fwd"), (Work::Train, "train")] {
        let name = format!("mha {verb} B32 T50 E256 H8");
        out.push(Case { name, model: Model::Attention(mha), scheme: None, batch: 32, steps: 50, work });
    }
    let task = TranslateTask::Reverse;
    let seq2seq = Seq2SeqConfig {
        mode: Mode::Gru,
        source_vocab: task.source_vocab().len(),
        target_vocab: task.target_vocab().len(),
        embedding_dim: 64,
        hidden_size: 128,
        num_layers: 1,
        bidirectional: false,
        attention: Some(Score::Additive),
    };
    out.push(Case {
        name: "seq2seq train B64 S20 H128 additive".into(),
        model: Model::Seq2Seq(seq2seq),
        scheme: None,
        batch: 64,
        steps: 20,
        work: Work::Train,
    });
    out
}

/// Streams in the batched stream cases.
const SERVED_STREAMS: usize = 256;

/// The stored forms the quantized cases time.
const QUANTIZED: [Scheme; 2] = [Scheme::Int8(Int8Scale::Row), Scheme::Bf16];

/// The source lengths of the encoder–decoder cases: sequence `k` of the batch has `1 + (7k mod S)` letters, so
/// that every length from 1 to `S` occurs (as evenly as the batch allows) and the longest is `S` when 7 and `S`
/// are coprime. Fixed rather than drawn so that `bench/compare.py` gives PyTorch the same lengths.
fn seq2seq_lengths(batch: usize, steps: usize) -> Vec<usize> {
    (0..batch).map(|k| 1 + (7 * k) % steps.max(1)).collect()
}

/// A batch of the `reverse` task with [`seq2seq_lengths`]' source lengths and letters drawn from `seed`: the
/// decoder reads `BOS` and the reversed letters, and is trained to output them and `EOS`.
fn reverse_batch(batch: usize, steps: usize, seed: u64) -> recur::Result<TranslateBatch> {
    let task = TranslateTask::Reverse;
    let letters = task.source_chars();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pairs = seq2seq_lengths(batch, steps)
        .into_iter()
        .map(|len| {
            let source: String = (0..len).map(|_| letters[rng.random_range(0..letters.len())]).collect();
            let target = task.answer(&source)?;
            Ok((source, target))
        })
        .collect::<recur::Result<Vec<_>>>()?;
    TranslateBatch::from_pairs(pairs, &task.source_vocab(), &task.target_vocab())
}

/// Multiply-adds ×2 of one forward pass: the input and recurrent products of every layer and direction (and the
/// LSTM projection).
fn forward_flops(c: &RecurrentConfig, batch: usize, steps: usize) -> f64 {
    let gates = c.mode.gates() as f64;
    let (h, out) = (c.hidden_size as f64, c.output_size() as f64);
    let rows = (batch * steps) as f64;
    let per_direction = |input: f64| {
        let proj = if c.proj_size > 0 { h * out } else { 0.0 };
        2.0 * rows * (gates * h * (input + out) + proj)
    };
    (0..c.num_layers).map(|l| c.directions() as f64 * per_direction(c.layer_input_size(l) as f64)).sum()
}

/// Multiply-adds ×2 of one forward pass of multi-head self-attention over `(B, T, E)`: the packed input
/// projection (`3E` outputs), the scores and the weighted sum (`T × T × E/H` per head, `H` heads) and the output
/// projection.
fn attention_flops(c: &MultiheadAttentionConfig, batch: usize, steps: usize) -> f64 {
    let (rows, e, t) = ((batch * steps) as f64, c.embed_dim as f64, steps as f64);
    2.0 * rows * (4.0 * e * e + 2.0 * t * e)
}

/// Multiply-adds ×2 of one teacher-forced forward pass of the encoder–decoder: the encoder's and the decoder's
/// products over the real (unpadded) steps, and over every padded target row the attention (query and key
/// projections of `A = D·H` units, `v`'s dot with each of the `T × S` hidden vectors, the weighted sum), `combine`
/// and `output`.
fn seq2seq_flops(c: &Seq2SeqConfig, batch: &TranslateBatch) -> f64 {
    let gates = c.mode.gates() as f64;
    let (e, h, d, v) = (c.embedding_dim as f64, c.hidden_size as f64, c.decoder_size() as f64, c.target_vocab as f64);
    let dirs = if c.bidirectional { 2.0 } else { 1.0 };
    let recurrent = |rows: f64, hidden: f64, directions: f64| {
        (0..c.num_layers)
            .map(|l| {
                let input = if l == 0 { e } else { directions * hidden };
                directions * 2.0 * rows * gates * hidden * (input + hidden)
            })
            .sum::<f64>()
    };
    let source_rows = batch.source_lengths.iter().sum::<usize>() as f64;
    let target_rows = batch.target_lengths.iter().sum::<usize>() as f64;
    let (b, s, t) = (batch.batch as f64, batch.source_steps as f64, batch.target_steps as f64);
    let mut flops = recurrent(source_rows, h, dirs) + recurrent(target_rows, d, 1.0) + 2.0 * b * t * d * v;
    if let Some(score) = c.attention {
        let scores = match score {
            Score::Additive => 2.0 * b * (t + s) * d * d + 2.0 * b * t * s * d,
            Score::General => 2.0 * b * s * d * d + 2.0 * b * t * s * d,
            _ => 2.0 * b * t * s * d,
        };
        flops += scores + 2.0 * b * t * s * d + 2.0 * b * t * 2.0 * d * d;
    }
    flops
}

/// Runs `f` for at least `budget` (and at least 5 times) after 2 warm-up runs; returns the median.
pub(super) fn median_time(budget: Duration, mut f: impl FnMut() -> recur::Result<()>) -> recur::Result<Duration> {
    f()?;
    f()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// recur bench's input: `x[k] = sin(0.37 k)` over the flattened shape.
pub(super) fn input(len: usize) -> Vec<f32> {
    (0..len).map(|k| ((k as f32) * 0.37).sin()).collect()
}

/// `∂ mean(y²) / ∂y = 2y / len`.
fn mean_square_grad(y: &[f32]) -> Vec<f32> {
    let scale = 2.0 / y.len() as f32;
    y.iter().map(|v| v * scale).collect()
}

/// One Adam step over `model`'s parameters, then their gradients zeroed.
fn adam_step(adam: &mut Adam, model: &mut impl Trainable) -> recur::Result<()> {
    let mut params = model.parameters();
    adam.step(&mut params)?;
    recur::optim::zero_grad(&mut params);
    Ok(())
}

fn run_case(case: &Case, budget: Duration) -> recur::Result<(Duration, f64)> {
    match &case.model {
        Model::Recurrent(config) => run_recurrent(case, config, budget),
        Model::Attention(config) => run_attention(case, config, budget),
        Model::Seq2Seq(config) => run_seq2seq(case, config, budget),
    }
}

fn run_attention(case: &Case, config: &MultiheadAttentionConfig, budget: Duration) -> recur::Result<(Duration, f64)> {
    let mut mha = MultiheadAttention::<f32>::with_seed(*config, 0)?;
    let (b, t) = (case.batch, case.steps);
    let x = input(b * t * config.embed_dim);
    let shape = AttentionShape { batch: b, queries: t, keys: t };
    let mask = AttentionMask::none();
    let flops = attention_flops(config, b, t);
    match case.work {
        Work::Forward => {
            let time = median_time(budget, || {
                mha.forward_slices(MhaInput::SelfAttention(&x), shape, &mask, NeedWeights::No).map(drop)
            })?;
            Ok((time, flops))
        }
        Work::Train => {
            let mut adam = Adam::new(AdamConfig::new(1e-3))?;
            // No dropout: the generator is never drawn from.
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let time = median_time(budget, || {
                let input = MhaInput::SelfAttention(&x);
                let (out, cache) = mha.forward_train(input, shape, &mask, NeedWeights::No, &mut rng)?;
                let grad = mean_square_grad(&out.output);
                // The input is raw features: as in PyTorch, it needs no gradient.
                mha.backward_without_input_grad(MhaInput::SelfAttention(&x), &cache, &grad, None)?;
                adam_step(&mut adam, &mut mha)
            })?;
            Ok((time, 3.0 * flops))
        }
        Work::Stream => Err(recur::Error::config(format!("{}: attention has no stream case", case.name))),
    }
}

fn run_seq2seq(case: &Case, config: &Seq2SeqConfig, budget: Duration) -> recur::Result<(Duration, f64)> {
    let mut model = Seq2Seq::with_seed(config.clone(), 0)?;
    let data = reverse_batch(case.batch, case.steps, 0)?;
    let batch = Seq2SeqBatch {
        batch: data.batch,
        source: &data.source,
        source_lengths: &data.source_lengths,
        source_steps: data.source_steps,
        decoder_input: &data.decoder_input,
        target_lengths: &data.target_lengths,
        target_steps: data.target_steps,
    };
    let loss = CrossEntropyLoss::<f32>::new();
    let mut adam = Adam::new(AdamConfig::new(1e-3))?;
    let time = median_time(budget, || {
        let (logits, cache) = model.forward_train(&batch)?;
        let (_, d_logits) = loss.forward(&logits, config.target_vocab, &data.targets, None)?;
        model.backward(&cache, &d_logits)?;
        adam_step(&mut adam, &mut model)
    })?;
    Ok((time, 3.0 * seq2seq_flops(config, &data)))
}

fn run_recurrent(case: &Case, config: &RecurrentConfig, budget: Duration) -> recur::Result<(Duration, f64)> {
    let mut layer = Recurrent::with_seed(config.clone(), 0)?;
    if let Some(scheme) = case.scheme {
        layer = layer.quantize(scheme)?;
    }
    let (b, t, i) = (case.batch, case.steps, config.input_size);
    let x = Tensor::new([b, t, i], input(b * t * i))?;
    let flops = forward_flops(config, b, t);
    match case.work {
        Work::Stream => {
            let mut stream = StreamState::new(&layer, b)?;
            // A second core for the large stacks' steps, as a server stepping streams back to back would start.
            let worker = (rayon::current_num_threads() >= 2)
                .then(StepWorker::start)
                .transpose()
                .map_err(|e| recur::Error::Io { path: "recur-step-worker".into(), source: e })?;
            stream.set_worker(worker.as_ref());
            let x = input(b * i);
            // Time runs of about a thousand stream-steps: one step is too short for the clock.
            let steps = 1000usize.div_ceil(b);
            let time = median_time(budget, || {
                for _ in 0..steps {
                    std::hint::black_box(stream.step(&layer, &x)?);
                }
                Ok(())
            })?;
            // Per stream-step: a batch's step counts once for each of its streams.
            Ok((time / (steps * b) as u32, flops / b as f64))
        }
        Work::Forward => Ok((median_time(budget, || layer.forward(&x, None, None).map(drop))?, flops)),
        Work::Train => {
            let mut adam = Adam::new(AdamConfig::new(1e-3))?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let time = median_time(budget, || {
                let (out, cache) = layer.forward_train(&x, None, None, &mut rng)?;
                let grad = Tensor::new(out.output.shape().to_vec(), mean_square_grad(out.output.data()))?;
                layer.backward_without_input_grad(&cache, &grad, None, None)?;
                adam_step(&mut adam, &mut layer)
            })?;
            // Backward is about twice the forward's products (the gradients of the inputs and of the weights).
            Ok((time, 3.0 * flops))
        }
    }
}

/// Runs `recur bench`.
pub fn run(args: &BenchArgs) -> CommandResult {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads {n}: {e}"))?;
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(format!("--seconds must be a positive number, found {}", args.seconds).into());
    }
    let budget = Duration::from_secs_f64(args.seconds);
    if let Some(file) = &args.onnx {
        if args.batch == 0 || args.steps == 0 {
            return Err(
                format!("--batch and --steps must be at least 1, found {} and {}", args.batch, args.steps).into()
            );
        }
        let bench = super::bench_onnx::OnnxBench { batch: args.batch, steps: args.steps, budget, json: args.json };
        return super::bench_onnx::run(file, bench);
    }
    // A case's exact name selects it alone (not also its quantized forms, whose names extend it).
    let filter = args.case.as_deref().unwrap_or("");
    let exact = cases().iter().any(|c| c.name == filter);
    let selected: Vec<Case> =
        cases().into_iter().filter(|c| if exact { c.name == filter } else { c.name.contains(filter) }).collect();
    if selected.is_empty() {
        return Err(format!("no case name contains {:?}", args.case.as_deref().unwrap_or("")).into());
    }
    for case in &selected {
        let (time, flops) = run_case(case, budget)?;
        let gflops = flops / time.as_secs_f64() / 1e9;
        let (value, unit) = match case.work {
            Work::Stream => (time.as_secs_f64() * 1e6, "us"),
            _ => (time.as_secs_f64() * 1e3, "ms"),
        };
        if args.json {
            println!("{{\"case\": \"{}\", \"{unit}\": {value:.4}, \"gflops\": {gflops:.2}}}", case.name);
        } else {
            println!("{:<46} {value:>10.3} {unit} {gflops:>8.1} GFLOP/s", case.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_follow_the_issue() {
        let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
        for want in [
            "lstm fwd B32 T50 I128 H256 L2",
            "gru-bi train B32 T50 I128 H256 L2",
            "lstm fwd B64 T200 I256 H512 L1",
            "mha fwd B32 T50 E256 H8",
            "mha train B32 T50 E256 H8",
            "seq2seq train B64 S20 H128 additive",
            "lstm stream B1 I128 H256 L2 per-step int8",
            "lstm stream B1 I128 H256 L2 per-step bf16",
            "lstm fwd B32 T50 I128 H256 L2 int8",
            "lstm fwd B32 T50 I128 H256 L2 bf16",
            "lstm stream B256 I32 H64 L1 per-stream-step",
            "gru stream B256 I128 H256 L2 per-stream-step",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn the_reverse_batch_has_every_length() {
        let batch = reverse_batch(64, 20, 0).unwrap();
        assert_eq!((batch.source_steps, batch.target_steps), (20, 21));
        for len in 1..=20 {
            assert!(batch.source_lengths.contains(&len), "no source of {len} letters");
        }
        assert_eq!(batch.source_lengths.iter().sum::<usize>(), 656);
        let (source, target) = &batch.pairs[1];
        assert_eq!((source.len(), target.chars().rev().collect::<String>()), (8, source.clone()));
    }

    #[test]
    fn flops_of_attention() {
        // Input and output projections 2·B·T·4E², scores and weighted sum 2·B·T·2TE.
        let c = MultiheadAttentionConfig::new(256, 8);
        assert_eq!(attention_flops(&c, 32, 50), 2.0 * 1600.0 * (4.0 * 65536.0 + 100.0 * 256.0));
    }

    #[test]
    fn flops_of_one_lstm_layer() {
        // 2·T·B·4H·(I + H) for one layer and direction.
        let c = RecurrentConfig::lstm(128, 256);
        assert_eq!(forward_flops(&c, 32, 50), 2.0 * 50.0 * 32.0 * 1024.0 * (128.0 + 256.0));
    }
}
