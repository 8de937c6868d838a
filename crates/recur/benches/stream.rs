//! Streaming latency: one time step of a unidirectional layer on a single stream (`B1`), the state kept between
//! steps, for the LSTM and the GRU at three sizes, and of eight streams at once (`B8`, stepped one after another):
//! `cargo bench -p recur --bench stream`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use recur::{Mode, Recurrent, RecurrentConfig, StepWorker, StreamState};

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    // The large stacks' steps split over two cores, as `recur bench` runs them.
    let worker = StepWorker::start().unwrap();
    for (name, mode) in [("lstm", Mode::Lstm), ("gru", Mode::Gru)] {
        for (batch, input, hidden, layers) in [(1, 32, 64, 1), (1, 64, 128, 2), (1, 128, 256, 2), (8, 32, 64, 1)] {
            let model = Recurrent::with_seed(RecurrentConfig::new(mode, input, hidden).num_layers(layers), 0).unwrap();
            let mut state = StreamState::new(&model, batch).unwrap();
            state.set_worker(Some(&worker));
            let x: Vec<f32> = (0..batch * input).map(|i| (i as f32 * 0.37).sin()).collect();
            let label = format!("{name} stream B{batch} I{input} H{hidden} L{layers}");
            group.bench_function(label, |b| b.iter(|| state.step(&model, black_box(&x)).unwrap()[0]));
        }
    }
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
