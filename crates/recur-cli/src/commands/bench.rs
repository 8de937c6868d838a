//! `recur bench`: recur's fixed set of named benchmark cases, the same names the comparison with PyTorch and ONNX
//! Runtime uses. Each case is warmed up, then timed repeatedly; the median is reported.

use std::time::{Duration, Instant};

use clap::Args;
use rand::SeedableRng;
use recur::optim::{Adam, AdamConfig, Optimizer};
use recur::{Mode, Recurrent, RecurrentConfig, StepWorker, StreamState, Tensor, Trainable};

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
    /// Run only the cases whose name contains this.
    #[arg(long)]
    case: Option<String>,
    /// Seconds of timing per case, after warm-up.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
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

struct Case {
    name: String,
    config: RecurrentConfig,
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
                out.push(Case { name, config: config.clone(), batch: 32, steps: 50, work });
            }
        }
    }
    for (kind, mode) in [("lstm", Mode::Lstm), ("gru", Mode::Gru)] {
        for (input, hidden, layers) in [(32, 64, 1), (64, 128, 2), (128, 256, 2)] {
            let config = RecurrentConfig::new(mode, input, hidden).num_layers(layers);
            let name = format!("{kind} stream B1 I{input} H{hidden} L{layers} per-step");
            out.push(Case { name, config, batch: 1, steps: 1, work: Work::Stream });
        }
    }
    let config = RecurrentConfig::lstm(256, 512).batch_first(true);
    out.push(Case {
        name: "lstm fwd B64 T200 I256 H512 L1".into(),
        config,
        batch: 64,
        steps: 200,
        work: Work::Forward,
    });
    out
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

/// Runs `f` for at least `budget` (and at least 5 times) after 2 warm-up runs; returns the median.
fn median_time(budget: Duration, mut f: impl FnMut() -> recur::Result<()>) -> recur::Result<Duration> {
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

fn run_case(case: &Case, budget: Duration) -> recur::Result<(Duration, f64)> {
    let mut layer = Recurrent::with_seed(case.config.clone(), 0)?;
    let (b, t, i) = (case.batch, case.steps, case.config.input_size);
    let x = Tensor::new([b, t, i], (0..b * t * i).map(|k| ((k as f32) * 0.37).sin()).collect())?;
    let flops = forward_flops(&case.config, b, t);
    match case.work {
        Work::Stream => {
            let mut stream = StreamState::new(&layer, 1)?;
            // A second core for the large stacks' steps, as a server stepping streams back to back would start.
            let worker = (rayon::current_num_threads() >= 2)
                .then(StepWorker::start)
                .transpose()
                .map_err(|e| recur::Error::Io { path: "recur-step-worker".into(), source: e })?;
            stream.set_worker(worker.as_ref());
            let x: Vec<f32> = (0..i).map(|k| ((k as f32) * 0.37).sin()).collect();
            // Time batches of steps: one step is too short for the clock.
            const STEPS: u32 = 1000;
            let time = median_time(budget, || {
                for _ in 0..STEPS {
                    std::hint::black_box(stream.step(&layer, &x)?);
                }
                Ok(())
            })?;
            Ok((time / STEPS, flops))
        }
        Work::Forward => Ok((median_time(budget, || layer.forward(&x, None, None).map(drop))?, flops)),
        Work::Train => {
            let mut adam = Adam::new(AdamConfig::new(1e-3))?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let time = median_time(budget, || {
                let (out, cache) = layer.forward_train(&x, None, None, &mut rng)?;
                let scale = 2.0 / out.output.len() as f32;
                let grad =
                    Tensor::new(out.output.shape().to_vec(), out.output.data().iter().map(|v| v * scale).collect())?;
                layer.backward_without_input_grad(&cache, &grad, None, None)?;
                let mut params = layer.parameters();
                adam.step(&mut params)?;
                recur::optim::zero_grad(&mut params);
                Ok(())
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
    let selected: Vec<Case> =
        cases().into_iter().filter(|c| args.case.as_deref().is_none_or(|s| c.name.contains(s))).collect();
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
            println!("{:<40} {value:>10.3} {unit} {gflops:>8.1} GFLOP/s", case.name);
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
        for want in
            ["lstm fwd B32 T50 I128 H256 L2", "gru-bi train B32 T50 I128 H256 L2", "lstm fwd B64 T200 I256 H512 L1"]
        {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn flops_of_one_lstm_layer() {
        // 2·T·B·4H·(I + H) for one layer and direction.
        let c = RecurrentConfig::lstm(128, 256);
        assert_eq!(forward_flops(&c, 32, 50), 2.0 * 50.0 * 32.0 * 1024.0 * (128.0 + 256.0));
    }
}
