//! A stream step allocates nothing: after one warm-up step (which lets the product kernel set up its per-thread
//! buffers), any number of further steps make exactly zero heap allocations, in every mode, for one stream and
//! for a batch, and also right after the batch lost or gained a stream. Counted per thread with a global
//! allocator that wraps the system's, so that the test harness's own threads cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use recur::{Mode, Recurrent, RecurrentConfig, StreamState};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `steps` steps of `state`.
fn allocations_of_steps(state: &mut StreamState, model: &Recurrent, x: &[f32], steps: usize) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..steps {
        std::hint::black_box(state.step(model, x).unwrap());
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn steps_after_the_first_allocate_nothing() {
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        for proj in if mode == Mode::Lstm { vec![0, 3] } else { vec![0] } {
            // Sizes large enough for the product kernel's general paths (and their buffers), and small ones.
            for (input, hidden) in [(5, 7), (64, 128)] {
                let config = RecurrentConfig::new(mode, input, hidden).num_layers(2).proj_size(proj);
                let model = Recurrent::with_seed(config, 0).unwrap();
                for batch in [1, 3] {
                    let what = format!("{mode} proj {proj} I{input} H{hidden} B{batch}");
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
    let before = ALLOCATIONS.with(Cell::get);
    std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOCATIONS.with(Cell::get) > before);
}
