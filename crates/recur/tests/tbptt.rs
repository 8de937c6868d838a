//! Truncated BPTT: windows with carried state reproduce the whole-sequence forward, and the memory kept for
//! backward depends on the window, not on the sequence length.

use rand::SeedableRng;
use recur::train::{CarriedState, windows};
use recur::{Recurrent, RecurrentConfig, Tensor};

fn sequence(steps: usize, batch: usize, input: usize) -> Tensor {
    Tensor::new([steps, batch, input], (0..steps * batch * input).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap()
}

fn window_of(x: &Tensor, range: std::ops::Range<usize>) -> Tensor {
    let row = x.shape()[1] * x.shape()[2];
    let data = x.data()[range.start * row..range.end * row].to_vec();
    Tensor::new([range.len(), x.shape()[1], x.shape()[2]], data).unwrap()
}

#[test]
fn windows_with_carried_state_equal_the_whole_sequence() {
    for config in [RecurrentConfig::lstm(3, 5).num_layers(2), RecurrentConfig::gru(3, 5), RecurrentConfig::rnn(3, 5)] {
        let layer = Recurrent::with_seed(config, 7).unwrap();
        let x = sequence(23, 4, 3);
        let whole = layer.forward(&x, None, None).unwrap();
        let mut state = CarriedState::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut outputs = Vec::new();
        for w in windows(23, 5) {
            let (out, _cache) = layer.forward_train(&window_of(&x, w), state.h0(), state.c0(), &mut rng).unwrap();
            state.carry(&out);
            outputs.extend_from_slice(out.output.data());
        }
        let err = outputs.iter().zip(whole.output.data()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-6, "windows differ from the whole sequence by {err}");
        assert!(state.h0().unwrap().max_abs_diff(&whole.h_n).unwrap() <= 1e-6);
    }
}

#[test]
fn memory_kept_for_backward_grows_with_the_window_not_the_sequence() {
    let layer = Recurrent::with_seed(RecurrentConfig::lstm(3, 8).num_layers(2), 0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let kept = |steps: usize, rng: &mut rand::rngs::StdRng| {
        layer.forward_train(&sequence(steps, 2, 3), None, None, rng).unwrap().1.num_values()
    };
    let (k5, k10, k15) = (kept(5, &mut rng), kept(10, &mut rng), kept(15, &mut rng));
    assert_eq!(k15 - k10, k10 - k5, "linear in the window length");
    // The formula in RecurrentCache::num_values: per layer and direction T·B·(H_out + H + 5H) for an LSTM, plus
    // the layer input T·B·I_l and the initial states.
    let (t, b, h) = (5, 2, 8);
    let per_direction = t * b * (h + h + 5 * h) + 2 * b * h;
    assert_eq!(k5, t * b * 3 + t * b * h + 2 * per_direction);
}
