//! Splitting rows across threads changes nothing: every output and gradient, in training and in inference, is bit
//! for bit what one thread computes, for all three cells, with variable lengths and equal ones, and both
//! directions: a unidirectional layer's time loop as one group of rows per thread (forward and backward), and
//! each step's rows cut in halves (the directions of a bidirectional layer). The shapes are large enough (`B16
//! H96` to `H256`, `B21 H128`) for the driver to split, and each case checks that it did: the driver counts its
//! parallel runs, and the tests here run one at a time so that the counts are their own.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, MutexGuard, PoisonError};

use recur::internals::{ParallelRuns, parallel_runs};
use recur::{Mode, Nonlinearity, Recurrent, RecurrentConfig, Tensor, Trainable};

/// Held by each test, so that the driver's counts of parallel runs change only by the test's own work.
fn one_test_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The parallel runs `work` made: `(time loops in row groups, steps in halves)`.
fn parallel_runs_of<R>(work: impl FnOnce() -> R) -> (R, ParallelRuns) {
    let before = parallel_runs();
    let out = work();
    let after = parallel_runs();
    let runs = ParallelRuns {
        row_groups: after.row_groups - before.row_groups,
        step_halves: after.step_halves - before.step_halves,
    };
    (out, runs)
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect()
}

/// Forward and backward of `config` over a padded batch; every output, then every gradient, flattened.
fn run(config: &RecurrentConfig, lengths: &[usize]) -> Vec<Vec<f32>> {
    let (steps, batch, input) = (7, lengths.len(), config.input_size);
    let mut layer = Recurrent::with_seed(config.clone(), 3).unwrap();
    let x = Tensor::new([steps, batch, input], values(steps * batch * input, 1)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (out, cache) = layer.forward_train_with_lengths(&x, lengths, None, None, &mut rng).unwrap();
    let dy = Tensor::new(out.output.shape().to_vec(), values(out.output.len(), 2)).unwrap();
    let grads = layer.backward(&cache, &dy, None, None).unwrap();
    let inference = layer.forward_with_lengths(&x, lengths, None, None).unwrap();
    let mut all = vec![out.output.data().to_vec(), out.h_n.data().to_vec(), grads.input.data().to_vec()];
    all.push(inference.output.data().to_vec());
    all.extend(inference.c_n.map(|c| c.data().to_vec()));
    all.push(grads.h0.data().to_vec());
    all.extend(out.c_n.map(|c| c.data().to_vec()));
    all.extend(grads.c0.map(|c| c.data().to_vec()));
    for p in layer.parameters() {
        all.push(p.grad.to_vec());
    }
    all
}

#[test]
fn split_steps_equal_one_thread_bit_for_bit() {
    let _alone = one_test_at_a_time();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    // Variable lengths split each step's rows; equal lengths give each half of the rows whole chunks of steps.
    let varied = [7, 3, 7, 5, 1, 7, 6, 2, 7, 4, 7, 7, 3, 5, 7, 6];
    for lengths in [&varied[..], &[7; 16][..], &[7; 17][..]] {
        for mode in [Mode::Lstm, Mode::Gru, Mode::rnn(Nonlinearity::Tanh)] {
            // Each above the size from which its steps split (a step's recurrent product of 2¹⁸ multiply-adds).
            let hidden = match mode {
                Mode::Lstm => 96,
                Mode::Gru => 96,
                _ => 256,
            };
            for bidirectional in [false, true] {
                let config = RecurrentConfig::new(mode, 5, hidden).num_layers(2).bidirectional(bidirectional);
                let (serial, alone) = parallel_runs_of(|| one.install(|| run(&config, lengths)));
                let (split, runs) = parallel_runs_of(|| two.install(|| run(&config, lengths)));
                let what = format!("{mode:?} bidirectional={bidirectional} lengths={lengths:?}");
                assert_eq!(alone, ParallelRuns::default(), "{what}: one thread ran something in parallel");
                // A unidirectional layer walks time in row groups (forward and backward); a bidirectional one runs
                // its directions side by side and cuts each step's rows in halves.
                if bidirectional {
                    assert!(runs.step_halves > 0, "{what}: no step ran in halves ({runs:?})");
                } else {
                    assert!(runs.row_groups >= 2, "{what}: the time loops did not run in row groups ({runs:?})");
                }
                assert_eq!(serial.len(), split.len());
                for (i, (a, b)) in serial.iter().zip(&split).enumerate() {
                    assert!(a == b, "{what}: result {i} differs between 1 and 2 threads");
                }
            }
        }
    }
}

#[test]
fn one_model_shared_by_many_rayon_tasks_packs_once_and_agrees() {
    let _alone = one_test_at_a_time();
    // Every task's forward asks for the weights packed for the first time at once, and packing a matrix this large
    // runs on Rayon's threads itself: first use from inside the pool, concurrently (the packing runs outside the
    // cache's lock, so that no thread waits on the lock while holding part of the pool's work).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    for mode in [Mode::Lstm, Mode::Gru] {
        let layer = Recurrent::with_seed(RecurrentConfig::new(mode, 200, 128).num_layers(2), 5).unwrap();
        let x = Tensor::new([3, 2, 200], values(3 * 2 * 200, 6)).unwrap();
        let outputs: Vec<Vec<f32>> = pool.install(|| {
            use rayon::prelude::*;
            (0..64).into_par_iter().map(|_| layer.forward(&x, None, None).unwrap().output.data().to_vec()).collect()
        });
        assert!(outputs.iter().all(|o| o == &outputs[0]), "{mode:?}: tasks disagree");
    }
}

#[test]
fn inference_in_row_groups_equals_one_thread_bit_for_bit() {
    let _alone = one_test_at_a_time();
    // A batch large enough for an inference pass to run as one group of rows per thread, with initial states and
    // with and without variable lengths; a unidirectional stack (the one that runs in groups) and a
    // bidirectional one (which does not), for every cell.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (steps, batch, input, hidden) = (6, 21, 7, 128);
    let lengths: Vec<usize> = (0..batch).map(|b| 1 + (b * 5) % steps).collect();
    for mode in [Mode::Lstm, Mode::Gru, Mode::rnn(Nonlinearity::Relu)] {
        for bidirectional in [false, true] {
            let config =
                RecurrentConfig::new(mode, input, hidden).num_layers(2).bidirectional(bidirectional).batch_first(true);
            let layer = Recurrent::with_seed(config, 11).unwrap();
            let x = Tensor::new([batch, steps, input], values(batch * steps * input, 5)).unwrap();
            let states = 2 * if bidirectional { 2 } else { 1 };
            let h0 = Tensor::new([states, batch, hidden], values(states * batch * hidden, 6)).unwrap();
            let c0 = Tensor::new([states, batch, hidden], values(states * batch * hidden, 7)).unwrap();
            let c0 = (mode == Mode::Lstm).then_some(&c0);
            let all = |with_lengths: bool| {
                let out = if with_lengths {
                    layer.forward_with_lengths(&x, &lengths, Some(&h0), c0).unwrap()
                } else {
                    layer.forward(&x, Some(&h0), c0).unwrap()
                };
                let mut v = vec![out.output.data().to_vec(), out.h_n.data().to_vec()];
                v.extend(out.c_n.map(|c| c.data().to_vec()));
                v
            };
            for with_lengths in [false, true] {
                let serial = one.install(|| all(with_lengths));
                let (grouped, runs) = parallel_runs_of(|| two.install(|| all(with_lengths)));
                let what = format!("{mode:?} bidirectional={bidirectional} lengths={with_lengths}");
                if !bidirectional {
                    assert!(runs.row_groups > 0, "{what}: the time loop did not run in row groups ({runs:?})");
                }
                assert_eq!(serial, grouped, "{what}: 1 and 2 threads differ");
                assert!(serial[0].iter().any(|&v| v != 0.0), "{what}: an all-zero output tests nothing");
            }
        }
    }
}
