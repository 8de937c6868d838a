//! The per-step recurrent product at the shapes recur's layers run, through the general GEMM crate (which packs
//! `B` on every call) and through recur's packed kernel (`B` packed once): `cargo bench -p recur --bench
//! step_product`. `m × k × n`: rows of the state, its width, and the gate width `G·H` (forward) or the other way
//! round (backward).
//!
//! `row_product` is a stream step's one-row product `y ← b + x·Wᵀ` at the two layers of an `I128 H256` LSTM
//! (`k × n`: 128 or 256 inputs, `4·256` gate rows), with the weights in `f32` (the packed row kernel) and stored
//! in bf16, f16 and int8 (which also quantizes `x` on every call): `cargo bench -p recur --bench step_product --
//! row_product`.
//!
//! `rows_product` is the same product for a batch of rows, as a whole sequence runs it: the recurrent product of
//! 16 or 32 rows a step, and an input projection of 800 rows (half of `B32 T50`, one thread's share), with the
//! weights stored in bf16, f16 and int8: `cargo bench -p recur --bench step_product -- rows_product`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use recur::internals::kernels::gemm::{MatMut, MatRef, gemm};
use recur::internals::kernels::packed::{PackedMatrix, Start, packed_product};
use recur::internals::kernels::quant::{Int8Scale, Scheme, StoredMatrix, StoredPanels};
use recur::internals::kernels::rowvec::{RowPanels, row_times};

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

fn row_product(c: &mut Criterion) {
    let mut group = c.benchmark_group("row_product");
    group.warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    for (k, n) in [(128, 1024), (256, 1024)] {
        let x = values(k);
        let w = values(n * k);
        let b = values(n);
        let mut y = vec![0.0f32; n];
        group.throughput(Throughput::Elements((2 * k * n) as u64));
        let f32_panels = RowPanels::from_transposed(&w, n, k);
        group.bench_function(format!("f32 {k}x{n}"), |bench| {
            bench.iter(|| {
                row_times(black_box(&x), &f32_panels, Some(&b), &mut y);
                y[0]
            })
        });
        for scheme in [Scheme::Bf16, Scheme::F16, Scheme::Int8(Int8Scale::Row)] {
            let panels = StoredPanels::new(&StoredMatrix::quantize(&w, n, k, scheme));
            group.bench_function(format!("{scheme} {k}x{n}"), |bench| {
                bench.iter(|| {
                    panels.product(black_box(&x), 1, Some(&b), &mut y, n, n);
                    y[0]
                })
            });
        }
    }
    group.finish();
}

fn rows_product(c: &mut Criterion) {
    let mut group = c.benchmark_group("rows_product");
    group.warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    for (m, k, n) in [(16, 256, 1024), (32, 256, 1024), (800, 128, 1024)] {
        let x = values(m * k);
        let w = values(n * k);
        let b = values(n);
        let mut y = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for scheme in [Scheme::Bf16, Scheme::F16, Scheme::Int8(Int8Scale::Row)] {
            let panels = StoredPanels::new(&StoredMatrix::quantize(&w, n, k, scheme));
            group.bench_function(format!("{scheme} {m}x{k}x{n}"), |bench| {
                bench.iter(|| {
                    panels.product(black_box(&x), m, Some(&b), &mut y, n, n);
                    y[0]
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, step_product, row_product, rows_product);
criterion_main!(benches);
