//! Whole-sequence inference on the seed's reference shape (batch 32, 50 steps, input 128, hidden 256, 2 layers,
//! batch-first), for every mode, uni- and bidirectional: `cargo bench -p recur --bench forward`.

use criterion::{Criterion, criterion_group, criterion_main};
use recur::{Mode, Recurrent, RecurrentConfig, Tensor};

fn forward(c: &mut Criterion) {
    let (batch, steps, input, hidden) = (32, 50, 128, 256);
    let mut group = c.benchmark_group("fwd B32 T50 I128 H256 L2");
    group.sample_size(20);
    for (name, mode) in [("lstm", Mode::Lstm), ("gru", Mode::Gru), ("rnn", Mode::RnnTanh)] {
        for bidirectional in [false, true] {
            let config =
                RecurrentConfig::new(mode, input, hidden).num_layers(2).batch_first(true).bidirectional(bidirectional);
            let layer = Recurrent::with_seed(config, 0).unwrap();
            let x = Tensor::new([batch, steps, input], (0..batch * steps * input).map(|i| (i as f32).sin()).collect())
                .unwrap();
            let label = if bidirectional { format!("{name}-bi") } else { name.to_string() };
            group.bench_function(label, |b| b.iter(|| layer.forward(&x, None, None).unwrap()));
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
