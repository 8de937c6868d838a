//! A stream step split across two cores (each layer's units in halves, or from 16 streams the streams in halves,
//! the second on a [`StepWorker`] the caller starts) gives exactly the numbers of the one-core step: for every
//! kind of cell, one stream and batches cut either way, unit counts that do and do not split into whole vectors, after the model's weights change, when the worker has
//! parked, and when one worker serves many streams. Without a worker a state starts no thread.

use recur::{Mode, Module, Recurrent, RecurrentConfig, StepWorker, StreamState};

fn input(step: usize, len: usize) -> Vec<f32> {
    (0..len).map(|i| ((step * 31 + i * 7) as f32 * 0.37).sin()).collect()
}

/// Steps a two-core and a one-core state side by side for `steps` steps and asserts equal outputs and states.
fn same_steps(model: &Recurrent, two: &mut StreamState, one: &mut StreamState, steps: usize, what: &str) {
    let len = two.batch() * model.config().input_size;
    for t in 0..steps {
        let x = input(t, len);
        let a = two.step(model, &x).unwrap().to_vec();
        let b = one.step(model, &x).unwrap();
        assert_eq!(a, b, "{what}: step {t}");
    }
    assert_eq!(two.h_n().data(), one.h_n().data(), "{what}: h_n");
    assert_eq!(two.c_n().map(|c| c.data().to_vec()), one.c_n().map(|c| c.data().to_vec()), "{what}: c_n");
}

fn two_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(work)
}

fn worker() -> StepWorker {
    StepWorker::start().unwrap()
}

/// A state of `model` whose steps may use `worker`.
fn with_worker(model: &Recurrent, batch: usize, worker: &StepWorker) -> StreamState {
    let mut state = StreamState::new(model, batch).unwrap();
    state.set_worker(Some(worker));
    state
}

#[test]
fn two_cores_give_the_numbers_of_one() {
    let worker = worker();
    two_threads(|| {
        for mode in [Mode::Lstm, Mode::Gru, Mode::RnnTanh] {
            // 100 units split as 56 + 44 (not whole vectors); 128 as 64 + 64; 64 units stay on one core.
            for (input, hidden) in [(64, 100), (48, 128), (32, 64)] {
                let config = RecurrentConfig::new(mode, input, hidden).num_layers(2);
                let mut model = Recurrent::with_seed(config, 3).unwrap();
                // From 16 streams a step is cut by streams (here 12 and 8) rather than by units.
                for batch in [1, 3, 20] {
                    let what = format!("{mode} I{input} H{hidden} B{batch}");
                    let mut two = with_worker(&model, batch, &worker);
                    let mut one = StreamState::new(&model, batch).unwrap();
                    same_steps(&model, &mut two, &mut one, 20, &what);
                    // Split from 512 KB of weights times streams.
                    let bytes = ((input + hidden) + 2 * hidden) * mode.gates() * hidden * 4;
                    assert_eq!(two.on_two_cores(), bytes * batch >= 1 << 19, "{what}: {bytes} bytes of weights");
                    assert!(!one.on_two_cores());

                    // New weights: the halves are rebuilt from them.
                    for p in model.named_params_mut() {
                        p.data.iter_mut().for_each(|v| *v *= -0.9);
                    }
                    same_steps(&model, &mut two, &mut one, 5, &format!("{what}, new weights"));
                }
            }
        }
    });
}

/// Peepholes are per unit: each core's cell gets its units' share, and ONNX's other options travel along.
#[test]
fn onnx_options_on_two_cores_give_the_numbers_of_one() {
    use recur::cells::Activation;
    let worker = worker();
    two_threads(|| {
        let config = RecurrentConfig::lstm(64, 128).num_layers(2).peepholes(true).clip(0.8).activations(vec![
            Activation::Sigmoid,
            Activation::Softsign,
            Activation::Tanh,
        ]);
        let model = Recurrent::with_seed(config, 4).unwrap();
        let mut two = with_worker(&model, 2, &worker);
        let mut one = StreamState::new(&model, 2).unwrap();
        same_steps(&model, &mut two, &mut one, 10, "peephole LSTM");
        assert!(two.on_two_cores());
    });
}

#[test]
fn a_parked_worker_changes_nothing() {
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::lstm(64, 128).num_layers(2), 5).unwrap();
        let mut two = with_worker(&model, 1, &worker());
        let mut one = StreamState::new(&model, 1).unwrap();
        for t in 0..4 {
            same_steps(&model, &mut two, &mut one, 3, &format!("round {t}"));
            // Longer than the worker spins: the next step finds it parked.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(two.on_two_cores());
    });
}

#[test]
fn small_projected_or_workerless_stacks_stay_on_one_core() {
    let worker = worker();
    let cases = [
        (RecurrentConfig::lstm(8, 16), Some(&worker), "small"),
        (RecurrentConfig::lstm(64, 128).num_layers(2).proj_size(64), Some(&worker), "projected"),
        (RecurrentConfig::lstm(64, 128).num_layers(2), None, "no worker"),
        // `W_hn (r ⊙ h)` mixes every unit's reset gate.
        (RecurrentConfig::gru(64, 128).num_layers(2).linear_before_reset(false), Some(&worker), "GRU, reset first"),
    ];
    for (config, worker, what) in cases {
        let model = Recurrent::with_seed(config, 1).unwrap();
        let mut state = StreamState::new(&model, 1).unwrap();
        state.set_worker(worker);
        two_threads(|| state.step(&model, &input(0, model.config().input_size)).map(|_| ())).unwrap();
        assert!(!state.on_two_cores(), "{what}");
    }
}

#[test]
fn a_state_with_its_worker_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<StreamState>();
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::gru(64, 128).num_layers(2), 2).unwrap();
        let mut state = with_worker(&model, 1, &worker());
        state.step(&model, &input(0, 64)).unwrap();
        assert!(state.on_two_cores());
        let mut state = std::thread::spawn(move || {
            state.step(&model, &input(1, 64)).unwrap();
            state
        })
        .join()
        .unwrap();
        let model = Recurrent::with_seed(RecurrentConfig::gru(64, 128).num_layers(2), 2).unwrap();
        // A clone shares the worker; dropping both ends it (the test would hang otherwise).
        let mut copy = state.clone();
        assert_eq!(copy.step(&model, &input(2, 64)).unwrap(), state.step(&model, &input(2, 64)).unwrap());
    });
}

#[test]
fn an_empty_batch_of_a_large_stack_steps_and_fills_up() {
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::lstm(64, 128).num_layers(2), 6).unwrap();
        let mut state = with_worker(&model, 0, &worker());
        assert_eq!(state.step(&model, &[]).unwrap(), &[] as &[f32]);
        state.append(&StreamState::new(&model, 1).unwrap()).unwrap();
        let mut one = StreamState::new(&model, 1).unwrap();
        same_steps(&model, &mut state, &mut one, 3, "after filling up");
    });
}

#[test]
fn many_streams_share_one_worker_and_keep_their_numbers() {
    // Round-robin over several states of the large stack with one worker, beside the same states on one core.
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::lstm(64, 128).num_layers(2), 8).unwrap();
        let worker = worker();
        let mut two: Vec<StreamState> = (0..5).map(|_| with_worker(&model, 1, &worker)).collect();
        let mut one: Vec<StreamState> = (0..5).map(|_| StreamState::new(&model, 1).unwrap()).collect();
        for t in 0..12 {
            for (s, (a, b)) in two.iter_mut().zip(&mut one).enumerate() {
                let x = input(t * 5 + s, 64);
                assert_eq!(a.step(&model, &x).unwrap(), b.step(&model, &x).unwrap(), "stream {s}, step {t}");
            }
        }
        assert!(two.iter().all(StreamState::on_two_cores));
        // States stepped on two threads at once: one of them at a time gets the worker, the other runs alone.
        let (left, right) = two.split_at_mut(1);
        let (left_one, right_one) = one.split_at_mut(1);
        rayon::join(
            || same_steps(&model, &mut left[0], &mut left_one[0], 20, "left"),
            || same_steps(&model, &mut right[0], &mut right_one[0], 20, "right"),
        );
    });
}

/// Threads of this process, from `/proc/self/status`.
#[cfg(target_os = "linux")]
fn threads_of_this_process() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

#[test]
#[cfg(target_os = "linux")]
fn states_start_no_threads() {
    // Many states of a stack large enough to split, each stepped: without a worker, none starts a thread. (Other
    // tests of this binary may start and end threads meanwhile, so allow for a few of theirs.)
    let model = Recurrent::with_seed(RecurrentConfig::lstm(128, 256).num_layers(2), 9).unwrap();
    let before = threads_of_this_process();
    let mut states: Vec<StreamState> = (0..100).map(|_| StreamState::new(&model, 1).unwrap()).collect();
    for state in &mut states {
        state.step(&model, &input(0, 128)).unwrap();
    }
    assert!(states.iter().all(|s| !s.on_two_cores()));
    let after = threads_of_this_process();
    assert!(after < before + 10, "{before} threads before, {after} after stepping 100 states");
}

#[test]
fn quantized_weights_split_across_two_cores_give_the_numbers_of_one() {
    use recur::{Int8Scale, Scheme};
    let worker = worker();
    two_threads(|| {
        // Large enough to split in every scheme (from 512 KB of stored weights).
        let f32_model = Recurrent::with_seed(RecurrentConfig::lstm(128, 320).num_layers(2), 4).unwrap();
        for scheme in [Scheme::Int8(Int8Scale::Row), Scheme::Int8(Int8Scale::Tensor), Scheme::Bf16, Scheme::F16] {
            let model = f32_model.quantize(scheme).unwrap();
            for batch in [1, 2] {
                let what = format!("{scheme} B{batch}");
                let mut two = with_worker(&model, batch, &worker);
                let mut one = StreamState::new(&model, batch).unwrap();
                same_steps(&model, &mut two, &mut one, 12, &what);
                assert!(two.on_two_cores(), "{what}");
            }
        }
    });
}
