//! A stream step split across two cores (each layer's units in halves, the second on a worker thread) gives
//! exactly the numbers of the one-core step: for every kind of cell, one stream and a batch, unit counts that do
//! and do not split into whole vectors, after the model's weights change, and when the worker has parked.

use recur::{Mode, Module, Recurrent, RecurrentConfig, StreamState};

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

#[test]
fn two_cores_give_the_numbers_of_one() {
    two_threads(|| {
        for mode in [Mode::Lstm, Mode::Gru, Mode::RnnTanh] {
            // 100 units split as 56 + 44 (not whole vectors); 128 as 64 + 64; 64 units stay on one core.
            for (input, hidden) in [(64, 100), (48, 128), (32, 64)] {
                let config = RecurrentConfig::new(mode, input, hidden).num_layers(2);
                let mut model = Recurrent::with_seed(config, 3).unwrap();
                for batch in [1, 3] {
                    let what = format!("{mode} I{input} H{hidden} B{batch}");
                    let mut two = StreamState::new(&model, batch).unwrap();
                    let mut one = StreamState::new(&model, batch).unwrap();
                    one.set_two_cores(false);
                    same_steps(&model, &mut two, &mut one, 20, &what);
                    // Split from 512 KB of weights.
                    let bytes = ((input + hidden) + 2 * hidden) * mode.gates() * hidden * 4;
                    assert_eq!(two.on_two_cores(), bytes >= 1 << 19, "{what}: {bytes} bytes of weights");
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

#[test]
fn a_parked_worker_changes_nothing() {
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::lstm(64, 128).num_layers(2), 5).unwrap();
        let mut two = StreamState::new(&model, 1).unwrap();
        let mut one = StreamState::new(&model, 1).unwrap();
        one.set_two_cores(false);
        for t in 0..4 {
            same_steps(&model, &mut two, &mut one, 3, &format!("round {t}"));
            // Longer than the worker spins: the next step finds it parked.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(two.on_two_cores());
    });
}

#[test]
fn small_projected_or_single_threaded_stacks_stay_on_one_core() {
    let cases = [
        (RecurrentConfig::lstm(8, 16), 2, "small"),
        (RecurrentConfig::lstm(64, 128).num_layers(2).proj_size(64), 2, "projected"),
        (RecurrentConfig::lstm(64, 128).num_layers(2), 1, "one thread"),
    ];
    for (config, threads, what) in cases {
        let model = Recurrent::with_seed(config, 1).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut state = StreamState::new(&model, 1).unwrap();
        pool.install(|| state.step(&model, &input(0, model.config().input_size)).map(|_| ())).unwrap();
        assert!(!state.on_two_cores(), "{what}");
    }
}

#[test]
fn a_state_with_its_worker_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<StreamState>();
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::gru(64, 128).num_layers(2), 2).unwrap();
        let mut state = StreamState::new(&model, 1).unwrap();
        state.step(&model, &input(0, 64)).unwrap();
        assert!(state.on_two_cores());
        let mut state = std::thread::spawn(move || {
            state.step(&model, &input(1, 64)).unwrap();
            state
        })
        .join()
        .unwrap();
        let model = Recurrent::with_seed(RecurrentConfig::gru(64, 128).num_layers(2), 2).unwrap();
        // A clone starts its own worker; dropping both ends both workers (the test would hang otherwise).
        let mut copy = state.clone();
        assert_eq!(copy.step(&model, &input(2, 64)).unwrap(), state.step(&model, &input(2, 64)).unwrap());
    });
}

#[test]
fn an_empty_batch_of_a_large_stack_steps_and_fills_up() {
    two_threads(|| {
        let model = Recurrent::with_seed(RecurrentConfig::lstm(64, 128).num_layers(2), 6).unwrap();
        let mut state = StreamState::new(&model, 0).unwrap();
        assert_eq!(state.step(&model, &[]).unwrap(), &[] as &[f32]);
        state.append(&StreamState::new(&model, 1).unwrap()).unwrap();
        let mut one = StreamState::new(&model, 1).unwrap();
        one.set_two_cores(false);
        same_steps(&model, &mut state, &mut one, 3, "after filling up");
    });
}
