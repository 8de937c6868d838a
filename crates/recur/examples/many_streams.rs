//! Many live streams through one model, stepped round-robin as a server would step them: every state on the
//! calling thread, or the large stack's steps split with one shared `StepWorker`. Prints the time a step and the
//! threads the process holds.
//!
//! ```sh
//! cargo run --release -p recur --example many_streams            # 200 streams of a 2-layer I128 H256 LSTM
//! cargo run --release -p recur --example many_streams -- 1000    # 1000 streams
//! ```

use std::time::Instant;

use recur::{Recurrent, RecurrentConfig, StepWorker, StreamState};

/// Threads of this process (Linux), or 0 where `/proc` does not say.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap_or("Threads: 0");
    line["Threads:".len()..].trim().parse().unwrap_or(0)
}

/// Steps every state `rounds` times, round-robin, and returns the mean time of one step.
fn round_robin(model: &Recurrent, states: &mut [StreamState], rounds: usize) -> recur::Result<f64> {
    let x: Vec<f32> = (0..model.config().input_size).map(|i| (i as f32 * 0.37).sin()).collect();
    let start = Instant::now();
    for _ in 0..rounds {
        for state in states.iter_mut() {
            std::hint::black_box(state.step(model, &x)?);
        }
    }
    Ok(start.elapsed().as_secs_f64() / (rounds * states.len()) as f64)
}

fn main() -> recur::Result<()> {
    let streams: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let model = Recurrent::with_seed(RecurrentConfig::lstm(128, 256).num_layers(2), 0)?;
    let mut states: Vec<StreamState> = (0..streams).map(|_| StreamState::new(&model, 1)).collect::<Result<_, _>>()?;
    round_robin(&model, &mut states, 2)?;
    let alone = round_robin(&model, &mut states, 20)?;
    println!("{streams} streams, calling thread only: {:.1} µs a step, {} threads", alone * 1e6, threads());

    let worker = StepWorker::start().map_err(|e| recur::Error::Io { path: "recur-step-worker".into(), source: e })?;
    for state in &mut states {
        state.set_worker(Some(&worker));
    }
    round_robin(&model, &mut states, 2)?;
    let shared = round_robin(&model, &mut states, 20)?;
    println!("{streams} streams, one shared StepWorker: {:.1} µs a step, {} threads", shared * 1e6, threads());
    Ok(())
}
