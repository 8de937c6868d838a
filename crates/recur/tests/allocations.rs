//! The time loop allocates nothing: a forward pass over 500 steps makes exactly as many heap allocations as one
//! over 50 steps. Counted with a global allocator that wraps the system's, per thread, so that the test harness's
//! own threads cannot disturb the count.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};
use recur::{Mode, Recurrent, RecurrentConfig, Tensor};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_for(layer: &Recurrent, steps: usize) -> usize {
    let config = layer.config();
    let x = Tensor::zeros([steps, 3, config.input_size]);
    layer.forward(&x, None, None).unwrap(); // warm up per-thread buffers
    let before = allocations();
    layer.forward(&x, None, None).unwrap();
    allocations() - before
}

#[test]
fn forward_allocations_do_not_grow_with_sequence_length() {
    for mode in [Mode::RnnTanh, Mode::Lstm, Mode::Gru] {
        let proj = if mode == Mode::Lstm { 3 } else { 0 };
        let layer = Recurrent::with_seed(RecurrentConfig::new(mode, 5, 7).num_layers(2).proj_size(proj), 0).unwrap();
        // Both lengths make the input projection large enough for the product's own one-off packing buffers,
        // so any difference would be allocations per step.
        let short = allocations_for(&layer, 50);
        let long = allocations_for(&layer, 500);
        assert!(short > 0, "the counter counts");
        assert_eq!(short, long, "{mode}: allocations grew with the number of steps");
    }
}

fn training_allocations_for(layer: &mut Recurrent, steps: usize) -> usize {
    use rand::SeedableRng;
    let config = layer.config().clone();
    let x = Tensor::zeros([steps, 3, config.input_size]);
    let width = config.directions() * config.output_size();
    let grad = Tensor::zeros([steps, 3, width]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (_, cache) = layer.forward_train(&x, None, None, &mut rng).unwrap();
    layer.backward(&cache, &grad, None, None).unwrap(); // warm up, and allocate the gradients
    let before = allocations();
    let (_, cache) = layer.forward_train(&x, None, None, &mut rng).unwrap();
    layer.backward(&cache, &grad, None, None).unwrap();
    allocations() - before
}

#[test]
fn training_allocations_do_not_grow_with_sequence_length() {
    for mode in [Mode::RnnTanh, Mode::Lstm, Mode::Gru] {
        let proj = if mode == Mode::Lstm { 3 } else { 0 };
        let config = RecurrentConfig::new(mode, 5, 7).num_layers(2).proj_size(proj).dropout(0.5);
        let mut layer = Recurrent::with_seed(config, 0).unwrap();
        let short = training_allocations_for(&mut layer, 50);
        let long = training_allocations_for(&mut layer, 500);
        assert_eq!(short, long, "{mode}: training allocations grew with the number of steps");
    }
}
