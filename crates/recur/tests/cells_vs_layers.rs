//! Consistency of the public pieces with each other: a one-layer layer stepped once equals its cell, stepping a
//! cell over time equals the layer, batch-first and unbatched input agree with time-major batches, and default
//! initialisation is PyTorch's.

use std::collections::HashMap;

use proptest::prelude::*;
use rand::SeedableRng;
use recur::{
    GruCell, GruCellConfig, LstmCell, LstmCellConfig, Mode, Module, Nonlinearity, Recurrent, RecurrentConfig, RnnCell,
    RnnCellConfig, Tensor,
};

/// The layer's `_l0` parameters under a lone cell's names.
fn cell_state_dict(layer: &Recurrent) -> HashMap<String, Tensor> {
    layer
        .state_dict()
        .into_iter()
        .filter_map(|(name, t)| name.strip_suffix("_l0").map(|base| (base.to_string(), t)))
        .collect()
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect()
}

/// Steps a cell over a time-major input `(T, B, I)` and returns every `h_t`, `(T, B, H_out)`.
fn step_over_time(steps: usize, batch: usize, x: &Tensor, mut step: impl FnMut(&Tensor) -> Tensor) -> Vec<f32> {
    let width = x.len() / (steps * batch);
    let mut out = Vec::new();
    for t in 0..steps {
        let slice = x.data()[t * batch * width..(t + 1) * batch * width].to_vec();
        out.extend_from_slice(step(&Tensor::new([batch, width], slice).unwrap()).data());
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn cells_stepped_over_time_equal_one_layer() {
    let (steps, batch, input, hidden) = (4, 3, 5, 6);
    let x = Tensor::new([steps, batch, input], values(steps * batch * input, 1)).unwrap();
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        for proj_size in [0, 2] {
            if proj_size > 0 && mode != Mode::Lstm {
                continue;
            }
            let config = RecurrentConfig::new(mode, input, hidden).proj_size(proj_size);
            let layer = Recurrent::with_seed(config, 3).unwrap();
            let want = layer.forward(&x, None, None).unwrap();
            let sd = cell_state_dict(&layer);
            let got = match mode {
                Mode::Lstm => {
                    let config = LstmCellConfig { proj_size, ..LstmCellConfig::new(input, hidden) };
                    let cell = LstmCell::from_state_dict(config, &sd).unwrap();
                    let mut state: Option<(Tensor, Tensor)> = None;
                    step_over_time(steps, batch, &x, |xt| {
                        let next = cell.forward(xt, state.as_ref().map(|(h, c)| (h, c))).unwrap();
                        state = Some(next.clone());
                        next.0
                    })
                }
                Mode::Gru => {
                    let cell = GruCell::from_state_dict(GruCellConfig::new(input, hidden), &sd).unwrap();
                    let mut h: Option<Tensor> = None;
                    step_over_time(steps, batch, &x, |xt| {
                        let next = cell.forward(xt, h.as_ref()).unwrap();
                        h = Some(next.clone());
                        next
                    })
                }
                Mode::RnnTanh | Mode::RnnRelu => {
                    let nonlinearity = if mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh };
                    let config = RnnCellConfig { nonlinearity, ..RnnCellConfig::new(input, hidden) };
                    let cell = RnnCell::from_state_dict(config, &sd).unwrap();
                    let mut h: Option<Tensor> = None;
                    step_over_time(steps, batch, &x, |xt| {
                        let next = cell.forward(xt, h.as_ref()).unwrap();
                        h = Some(next.clone());
                        next
                    })
                }
            };
            let err = max_diff(&got, want.output.data());
            assert!(err <= 1e-6, "{mode} proj {proj_size}: {err}");
            // One step of the layer is exactly the cell's first step.
            let first =
                layer.forward(&Tensor::new([1, batch, input], x.data()[..batch * input].to_vec()).unwrap(), None, None);
            assert!(max_diff(first.unwrap().output.data(), &got[..batch * layer.config().output_size()]) <= 1e-6);
        }
    }
}

#[test]
fn default_init_is_uniform_in_pytorch_bound() {
    for hidden in [1, 4, 25] {
        let layer =
            Recurrent::with_seed(RecurrentConfig::lstm(3, hidden).num_layers(2).bidirectional(true), 9).unwrap();
        let bound = 1.0 / (hidden as f32).sqrt();
        let all: Vec<f32> = layer.named_params().iter().flat_map(|p| p.data.iter().copied()).collect();
        assert!(all.iter().all(|v| v.abs() <= bound), "hidden {hidden}: outside ±{bound}");
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / all.len() as f32;
        // Uniform(-k, k) has variance k²/3.
        assert!((var - bound * bound / 3.0).abs() < 0.15 * bound * bound, "hidden {hidden}: variance {var}");
    }
    let a = Recurrent::with_seed(RecurrentConfig::gru(3, 4), 1).unwrap();
    assert_eq!(a, Recurrent::with_seed(RecurrentConfig::gru(3, 4), 1).unwrap(), "seeded init is reproducible");
    assert_ne!(a, Recurrent::with_seed(RecurrentConfig::gru(3, 4), 2).unwrap());
}

#[test]
fn parameter_names_follow_pytorch_order() {
    let layer = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).num_layers(2).bidirectional(true).proj_size(2), 0);
    let names: Vec<String> = layer.unwrap().state_dict().into_iter().map(|(n, _)| n).collect();
    let mut want = Vec::new();
    for l in 0..2 {
        for suffix in ["", "_reverse"] {
            for base in ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"] {
                want.push(format!("{base}_l{l}{suffix}"));
            }
        }
    }
    assert_eq!(names, want);
}

fn mode_strategy() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::RnnTanh), Just(Mode::RnnRelu), Just(Mode::Lstm), Just(Mode::Gru)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Batch-first input is the time-major input with its first two axes swapped, and so is the output; each
    /// batch element run alone, unbatched, gives its slice of the batched result.
    #[test]
    fn layouts_agree(
        mode in mode_strategy(),
        layers in 1usize..3,
        bidirectional: bool,
        bias: bool,
        steps in 1usize..5,
        batch in 1usize..4,
        input in 1usize..5,
        hidden in 1usize..5,
        seed: u64,
    ) {
        let config = RecurrentConfig::new(mode, input, hidden).num_layers(layers).bidirectional(bidirectional).bias(bias);
        let layer = Recurrent::with_seed(config.clone(), seed).unwrap();
        let bf = Recurrent::zeros(config.batch_first(true)).unwrap();
        let mut bf = bf;
        bf.load_state_dict(&layer.state_dict().into_iter().collect()).unwrap();

        let x = Tensor::new([steps, batch, input], values(steps * batch * input, seed)).unwrap();
        let out = layer.forward(&x, None, None).unwrap();
        let swap = |data: &[f32], a: usize, b: usize, c: usize| {
            let mut o = vec![0.0; data.len()];
            for i in 0..a { for j in 0..b { for k in 0..c { o[(j * a + i) * c + k] = data[(i * b + j) * c + k]; } } }
            o
        };
        let xb = Tensor::new([batch, steps, input], swap(x.data(), steps, batch, input)).unwrap();
        let out_bf = bf.forward(&xb, None, None).unwrap();
        let width = out.output.shape()[2];
        prop_assert_eq!(out_bf.output.data(), &swap(out.output.data(), steps, batch, width)[..]);
        prop_assert_eq!(out_bf.h_n.data(), out.h_n.data());

        for b in 0..batch {
            let xs: Vec<f32> = (0..steps).flat_map(|t| x.data()[(t * batch + b) * input..(t * batch + b + 1) * input].to_vec()).collect();
            let single = layer.forward(&Tensor::new([steps, input], xs).unwrap(), None, None).unwrap();
            prop_assert_eq!(single.output.shape(), &[steps, width][..]);
            let want: Vec<f32> = (0..steps).flat_map(|t| out.output.data()[(t * batch + b) * width..(t * batch + b + 1) * width].to_vec()).collect();
            prop_assert!(max_diff(single.output.data(), &want) <= 1e-6);
        }
    }
}
