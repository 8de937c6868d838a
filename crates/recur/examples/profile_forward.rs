//! Runs the reference forward case in a loop, for profilers: `cargo run --release -p recur --example
//! profile_forward -- lstm 20`.

use std::time::Instant;

use recur::{Mode, Recurrent, RecurrentConfig, Tensor};

fn main() -> recur::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("gru") => Mode::Gru,
        Some("rnn") => Mode::RnnTanh,
        _ => Mode::Lstm,
    };
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let (batch, steps, input, hidden) = (32, 50, 128, 256);
    let config = RecurrentConfig::new(mode, input, hidden).num_layers(2).batch_first(true);
    let layer = Recurrent::with_seed(config, 0)?;
    let x = Tensor::new([batch, steps, input], (0..batch * steps * input).map(|i| (i as f32).sin()).collect())?;
    let mut times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        std::hint::black_box(layer.forward(&x, None, None)?);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!("{mode} fwd B32 T50 I128 H256 L2: median {:.2} ms, min {:.2} ms", times[reps / 2], times[0]);
    Ok(())
}
