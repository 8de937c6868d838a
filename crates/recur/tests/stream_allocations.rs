//! A stream step allocates nothing: after one warm-up step (which lets the product kernel set up its per-thread
//! buffers), any number of further steps make exactly zero heap allocations, in every mode, for one stream and
//! for a batch, with weights in f32 and stored in fewer bits, and also right after the batch lost or gained a
//! stream. Counted per thread with a global
//! allocator that wraps the system's, so that the test harness's own threads cannot disturb the count.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};
use recur::{Int8Scale, Mode, Recurrent, RecurrentConfig, Scheme, StreamState};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `steps` steps of `state`.
fn allocations_of_steps(state: &mut StreamState, model: &Recurrent, x: &[f32], steps: usize) -> usize {
    let before = allocations();
    for _ in 0..steps {
        std::hint::black_box(state.step(model, x).unwrap());
    }
    allocations() - before
}

#[test]
fn steps_after_the_first_allocate_nothing() {
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        for proj in if mode == Mode::Lstm { vec![0, 3] } else { vec![0] } {
            // Sizes large enough for the product kernel's general paths (and their buffers), and small ones.
            for (input, hidden) in [(5, 7), (64, 128)] {
                let config = RecurrentConfig::new(mode, input, hidden).num_layers(2).proj_size(proj);
                let f32_model = Recurrent::with_seed(config, 0).unwrap();
                let schemes = if proj == 0 {
                    vec![None, Some(Scheme::Bf16), Some(Scheme::Int8(Int8Scale::Row))]
                } else {
                    vec![None]
                };
                for (scheme, batch) in schemes.into_iter().flat_map(|s| [(s, 1), (s, 3)]) {
                    let model = match scheme {
                        Some(s) => f32_model.quantize(s).unwrap(),
                        None => f32_model.clone(),
                    };
                    let what = format!("{mode} proj {proj} I{input} H{hidden} B{batch} {scheme:?}");
                    let x: Vec<f32> = (0..batch * input).map(|i| (i as f32 * 0.3).sin()).collect();
                    let mut state = StreamState::new(&model, batch).unwrap();
                    allocations_of_steps(&mut state, &model, &x, 1); // warm up
                    assert_eq!(allocations_of_steps(&mut state, &model, &x, 200), 0, "{what}");

                    // Membership changes may allocate; the steps after them do not.
                    state.append(&StreamState::new(&model, 1).unwrap()).unwrap();
                    state.remove(0).unwrap();
                    assert_eq!(allocations_of_steps(&mut state, &model, &x, 50), 0, "{what}, after a change");
                }
            }
        }
    }
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before);
}
