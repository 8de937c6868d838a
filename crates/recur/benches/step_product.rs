//! The per-step recurrent product at the shapes recur's layers run, through the general GEMM crate (which packs
//! `B` on every call) and through recur's packed kernel (`B` packed once): `cargo bench -p recur --bench
//! step_product`. `m × k × n`: rows of the state, its width, and the gate width `G·H` (forward) or the other way
//! round (backward).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use recur::internals::kernels::gemm::{MatMut, MatRef, gemm};
use recur::internals::kernels::packed::{PackedMatrix, Start, packed_product};

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.37).sin()).collect()
}

fn step_product(c: &mut Criterion) {
    let mut group = c.benchmark_group("step_product");
    for (m, k, n) in [
        (32, 256, 1024),
        (16, 256, 1024),
        (32, 1024, 256),
        (32, 512, 2048),
        (64, 512, 2048),
        (4, 64, 256),
        (1600, 128, 1024),
        (1600, 256, 1024),
    ] {
        let a = values(m * k);
        // A PyTorch weight, `n × k`, read transposed.
        let w = values(n * k);
        let packed = PackedMatrix::from_transposed(&w, n, k);
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(format!("gemm crate {m}x{k}x{n}"), |bench| {
            bench.iter(|| {
                let b = MatRef::new(&w, n, k).t();
                gemm(MatRef::new(black_box(&a), m, k), b, 0.0, MatMut::new(&mut out, m, n));
                out[0]
            })
        });
        group.bench_function(format!("packed {m}x{k}x{n}"), |bench| {
            bench.iter(|| {
                packed_product(black_box(&a), k, m, &packed, Start::Zero, &mut out, n);
                out[0]
            })
        });
    }
    group.finish();
}

criterion_group!(benches, step_product);
criterion_main!(benches);
