//! Backpropagation through time against central finite differences, in f64, through the same generic driver and
//! cells that run in f32: every mode, 1–2 layers, both directions, bias on and off, LSTM projection, initial
//! states, gradients of the final states, and dropout masks between layers; and ONNX's cell options (activations,
//! clip, LSTM peepholes and coupled gates, the GRU's reset before the product).

use rand::{Rng, SeedableRng};
use recur::cells::{
    Activation, GruCell, GruCellConfig, LstmCell, LstmCellConfig, Nonlinearity, RnnCell, RnnCellConfig,
};
use recur::internals::Cell;
use recur::internals::gradcheck;
use recur::internals::{InitialStates, Sequences, Stack, StackTrace};

const TOLERANCE: f64 = 1e-6;

#[derive(Clone, Copy, Debug)]
struct Case {
    layers: usize,
    directions: usize,
    bias: bool,
    proj: usize,
    initial_state: bool,
    final_grads: bool,
    dropout: bool,
    lengths: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for layers in [1, 2] {
        for directions in [1, 2] {
            for bias in [true, false] {
                for (initial_state, final_grads) in [(false, false), (true, true), (true, false)] {
                    let dropout = layers > 1 && initial_state;
                    let lengths = final_grads || !initial_state;
                    out.push(Case { layers, directions, bias, proj: 0, initial_state, final_grads, dropout, lengths });
                }
            }
        }
    }
    out
}

fn random(len: usize, rng: &mut impl Rng) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A stack of f64 cells, each made by `make(input_size)` in f32 with PyTorch's init and cast to f64.
fn stack<C: Cell<Real = f64>>(case: Case, input: usize, output: usize, make: impl FnMut(usize) -> C) -> Stack<C> {
    let cells = (0..case.layers)
        .flat_map(|l| {
            let size = if l == 0 { input } else { case.directions * output };
            (0..case.directions).map(move |_| size)
        })
        .map(make)
        .collect();
    Stack::new(cells, case.directions)
}

/// The scalar `L = Σ output ⊙ g_out + Σ h_n ⊙ g_h + Σ c_n ⊙ g_c` and everything needed to differentiate it.
struct Problem {
    steps: usize,
    batch: usize,
    x: Vec<f64>,
    h0: Option<Vec<f64>>,
    c0: Option<Vec<f64>>,
    masks: Vec<Option<Vec<f64>>>,
    lengths: Option<Vec<usize>>,
    g_out: Vec<f64>,
    g_h: Option<Vec<f64>>,
    g_c: Option<Vec<f64>>,
}

impl Problem {
    fn loss<C: Cell<Real = f64>>(&self, s: &Stack<C>, x: &[f64], h0: Option<&[f64]>, c0: Option<&[f64]>) -> f64 {
        let lengths = self.lengths.as_deref();
        let input = Sequences { data: x, steps: self.steps, batch: self.batch, lengths };
        let (out, _) = s.forward_train(input, InitialStates { h: h0, c: c0 }, self.masks.clone());
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        dot(&out.output, &self.g_out)
            + self.g_h.as_ref().map_or(0.0, |g| dot(&out.h_n, g))
            + self.g_c.as_ref().map_or(0.0, |g| dot(&out.c_n, g))
    }
}

fn check_stack<C: Cell<Real = f64>>(name: &str, case: Case, input: usize, mut s: Stack<C>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (steps, batch) = (4, 3);
    let out = s.output_size();
    let hidden = s.cells()[0].weights().hidden_size();
    let states = case.layers * case.directions;
    let cell_len = if C::HAS_CELL_STATE { states * batch * hidden } else { 0 };
    let width = case.directions * out;
    let masks = (0..case.layers)
        .map(|l| {
            (case.dropout && l > 0).then(|| {
                (0..steps * batch * width).map(|_| if rng.random::<f64>() < 0.3 { 0.0 } else { 1.0 / 0.7 }).collect()
            })
        })
        .collect();
    let p = Problem {
        steps,
        batch,
        x: random(steps * batch * input, &mut rng),
        h0: case.initial_state.then(|| random(states * batch * out, &mut rng)),
        c0: (case.initial_state && C::HAS_CELL_STATE).then(|| random(cell_len, &mut rng)),
        masks,
        // Unsorted, with a full-length sequence, a one-step one and padding in between.
        lengths: case.lengths.then(|| vec![2, steps, 1]),
        g_out: random(steps * batch * width, &mut rng),
        g_h: case.final_grads.then(|| random(states * batch * out, &mut rng)),
        g_c: (case.final_grads && C::HAS_CELL_STATE).then(|| random(cell_len, &mut rng)),
    };
    let (_, trace): (_, StackTrace<f64>) = s.forward_train(
        Sequences { data: &p.x, steps, batch, lengths: p.lengths.as_deref() },
        InitialStates { h: p.h0.as_deref(), c: p.c0.as_deref() },
        p.masks.clone(),
    );
    let grads = s.backward(&trace, &p.g_out, p.g_h.as_deref(), p.g_c.as_deref());
    let label = format!("{name} {case:?}");

    let (h0, c0) = (p.h0.as_deref(), p.c0.as_deref());
    let mut x = p.x.clone();
    gradcheck::check(&format!("{label}: input"), &mut x, &grads.input, TOLERANCE, |x| p.loss(&s, x, h0, c0)).unwrap();
    if let Some(h0) = &p.h0 {
        let mut v = h0.clone();
        gradcheck::check(&format!("{label}: h0"), &mut v, &grads.h0, TOLERANCE, |h| p.loss(&s, &p.x, Some(h), c0))
            .unwrap();
    }
    if let Some(c0) = &p.c0 {
        let mut v = c0.clone();
        gradcheck::check(&format!("{label}: c0"), &mut v, &grads.c0, TOLERANCE, |c| p.loss(&s, &p.x, h0, Some(c)))
            .unwrap();
    }
    for k in 0..s.cells().len() {
        let analytic: Vec<(String, Vec<f64>)> =
            s.cells_mut()[k].params_with_grads("").into_iter().map(|q| (q.name, q.grad.to_vec())).collect();
        for (j, (param, grad)) in analytic.iter().enumerate() {
            let mut values = s.cells()[k].params("")[j].data.to_vec();
            let mut probe = s.clone();
            gradcheck::check(&format!("{label}: cell {k} {param}"), &mut values, grad, TOLERANCE, |v| {
                probe.cells_mut()[k].params_mut("")[j].data.copy_from_slice(v);
                p.loss(&probe, &p.x, h0, c0)
            })
            .unwrap();
        }
    }
}

#[test]
fn rnn_backward_matches_finite_differences() {
    let (input, hidden) = (3, 4);
    for (i, case) in cases().into_iter().enumerate() {
        for nonlinearity in [Nonlinearity::Tanh, Nonlinearity::Relu] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let s = stack(case, input, hidden, |input_size| {
                let config = RnnCellConfig { bias: case.bias, nonlinearity, ..RnnCellConfig::new(input_size, hidden) };
                RnnCell::new(config, &mut rng).unwrap().cast::<f64>()
            });
            check_stack(&format!("rnn {nonlinearity:?}"), case, input, s, 100 + i as u64);
        }
    }
}

#[test]
fn lstm_backward_matches_finite_differences() {
    let (input, hidden) = (3, 3);
    let mut all = cases();
    all.extend(cases().into_iter().map(|c| Case { proj: 2, ..c }));
    for (i, case) in all.into_iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
        let output = if case.proj > 0 { case.proj } else { hidden };
        let s = stack(case, input, output, |input_size| {
            let config =
                LstmCellConfig { bias: case.bias, proj_size: case.proj, ..LstmCellConfig::new(input_size, hidden) };
            LstmCell::new(config, &mut rng).unwrap().cast::<f64>()
        });
        check_stack("lstm", case, input, s, 200 + i as u64);
    }
}

#[test]
fn gru_backward_matches_finite_differences() {
    let (input, hidden) = (3, 3);
    for (i, case) in cases().into_iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
        let s = stack(case, input, hidden, |input_size| {
            let config = GruCellConfig { bias: case.bias, ..GruCellConfig::new(input_size, hidden) };
            GruCell::new(config, &mut rng).unwrap().cast::<f64>()
        });
        check_stack("gru", case, input, s, 300 + i as u64);
    }
}

/// A few cases of every shape (layers, directions, bias, states, lengths) for the ONNX options.
fn some_cases() -> Vec<Case> {
    cases().into_iter().step_by(4).collect()
}

#[test]
fn lstm_onnx_options_backward_matches_finite_differences() {
    use Activation::*;
    let (input, hidden) = (3, 3);
    let smooth = [Softsign, ScaledTanh { alpha: 1.3, beta: 0.7 }, Elu { alpha: 1.0 }];
    let options = [
        ("peepholes", LstmCellConfig { peepholes: true, ..LstmCellConfig::new(input, hidden) }),
        ("input_forget", LstmCellConfig { input_forget: true, ..LstmCellConfig::new(input, hidden) }),
        ("clip", LstmCellConfig { clip: Some(0.6), ..LstmCellConfig::new(input, hidden) }),
        ("activations", LstmCellConfig { activations: smooth, ..LstmCellConfig::new(input, hidden) }),
        (
            "everything, projected",
            LstmCellConfig {
                proj_size: 2,
                activations: [Sigmoid, Softplus, Affine { alpha: 0.8, beta: 0.1 }],
                clip: Some(0.9),
                peepholes: true,
                input_forget: true,
                ..LstmCellConfig::new(input, hidden)
            },
        ),
    ];
    for (name, options) in options {
        for (i, case) in some_cases().into_iter().enumerate() {
            let case = Case { proj: options.proj_size, ..case };
            let output = if case.proj > 0 { case.proj } else { hidden };
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let s = stack(case, input, output, |input_size| {
                let config = LstmCellConfig { input_size, bias: case.bias, ..options };
                LstmCell::new(config, &mut rng).unwrap().cast::<f64>()
            });
            check_stack(&format!("lstm {name}"), case, input, s, 400 + i as u64);
        }
    }
}

#[test]
fn gru_onnx_options_backward_matches_finite_differences() {
    use Activation::*;
    let (input, hidden) = (3, 3);
    let options = [
        ("reset before the product", GruCellConfig { linear_before_reset: false, ..GruCellConfig::new(input, hidden) }),
        ("clip", GruCellConfig { clip: Some(0.5), ..GruCellConfig::new(input, hidden) }),
        (
            "activations",
            GruCellConfig { activations: [Softsign, LeakyRelu { alpha: 0.2 }], ..GruCellConfig::new(input, hidden) },
        ),
        (
            "everything",
            GruCellConfig {
                activations: [Sigmoid, ScaledTanh { alpha: 0.9, beta: 1.1 }],
                clip: Some(0.8),
                linear_before_reset: false,
                ..GruCellConfig::new(input, hidden)
            },
        ),
    ];
    for (name, options) in options {
        for (i, case) in some_cases().into_iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let s = stack(case, input, hidden, |input_size| {
                let config = GruCellConfig { input_size, bias: case.bias, ..options };
                GruCell::new(config, &mut rng).unwrap().cast::<f64>()
            });
            check_stack(&format!("gru {name}"), case, input, s, 500 + i as u64);
        }
    }
}

#[test]
fn rnn_onnx_options_backward_matches_finite_differences() {
    let (input, hidden) = (3, 4);
    let options = [
        ("clip", RnnCellConfig { clip: Some(0.5), ..RnnCellConfig::new(input, hidden) }),
        ("softsign", RnnCellConfig { activation: Some(Activation::Softsign), ..RnnCellConfig::new(input, hidden) }),
        (
            "elu, clipped",
            RnnCellConfig {
                activation: Some(Activation::Elu { alpha: 0.7 }),
                clip: Some(0.9),
                ..RnnCellConfig::new(input, hidden)
            },
        ),
    ];
    for (name, options) in options {
        for (i, case) in some_cases().into_iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let s = stack(case, input, hidden, |input_size| {
                let config = RnnCellConfig { input_size, bias: case.bias, ..options };
                RnnCell::new(config, &mut rng).unwrap().cast::<f64>()
            });
            check_stack(&format!("rnn {name}"), case, input, s, 600 + i as u64);
        }
    }
}

/// The ONNX options' plain gate passes, given PyTorch's math (a clip too large to cut anything), compute what the
/// vectorised passes compute, forward and backward.
#[test]
fn onnx_passes_with_pytorch_options_match_the_vectorised_ones() {
    let case = Case {
        layers: 2,
        directions: 2,
        bias: true,
        proj: 0,
        initial_state: true,
        final_grads: true,
        dropout: false,
        lengths: true,
    };
    let (input, hidden) = (3, 5);
    let x: Vec<f64> = random(4 * 3 * input, &mut rand::rngs::StdRng::seed_from_u64(9));
    let g_out: Vec<f64> = random(4 * 3 * 2 * hidden, &mut rand::rngs::StdRng::seed_from_u64(10));
    fn run<C: Cell<Real = f64>>(mut s: Stack<C>, x: &[f64], g_out: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
        let input = Sequences { data: x, steps: 4, batch: 3, lengths: Some(&[4, 2, 3]) };
        let (out, trace) = s.forward_train(input, InitialStates { h: None, c: None }, vec![None, None]);
        let grads = s.backward(&trace, g_out, None, None);
        let params = s.cells_mut().iter_mut().flat_map(|c| c.params_with_grads("")).map(|p| p.grad.to_vec());
        (out.output, grads.input, params.collect())
    }
    let close = |name: &str, a: &[f64], b: &[f64]| {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(a.len() == b.len() && worst < 1e-12, "{name}: differs by {worst}");
    };
    let compare = |name: &str, fast: (Vec<f64>, Vec<f64>, Vec<Vec<f64>>), onnx: (Vec<f64>, Vec<f64>, Vec<Vec<f64>>)| {
        close(&format!("{name} output"), &fast.0, &onnx.0);
        close(&format!("{name} input grad"), &fast.1, &onnx.1);
        for (k, (a, b)) in fast.2.iter().zip(&onnx.2).enumerate() {
            close(&format!("{name} param grad {k}"), a, b);
        }
    };
    let big = Some(1e30);
    let lstm = |clip| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        stack(case, input, hidden, |i| {
            LstmCell::new(LstmCellConfig { clip, ..LstmCellConfig::new(i, hidden) }, &mut rng).unwrap().cast::<f64>()
        })
    };
    compare("lstm", run(lstm(None), &x, &g_out), run(lstm(big), &x, &g_out));
    let gru = |clip| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        stack(case, input, hidden, |i| {
            GruCell::new(GruCellConfig { clip, ..GruCellConfig::new(i, hidden) }, &mut rng).unwrap().cast::<f64>()
        })
    };
    compare("gru", run(gru(None), &x, &g_out), run(gru(big), &x, &g_out));
    let rnn = |clip| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        stack(case, input, hidden, |i| {
            RnnCell::new(RnnCellConfig { clip, ..RnnCellConfig::new(i, hidden) }, &mut rng).unwrap().cast::<f64>()
        })
    };
    compare("rnn", run(rnn(None), &x, &g_out), run(rnn(big), &x, &g_out));
}

/// The training forward (which keeps every step) and the inference forward (which keeps nothing) agree.
#[test]
fn training_and_inference_forward_agree() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let case = Case {
        layers: 2,
        directions: 2,
        bias: true,
        proj: 0,
        initial_state: true,
        final_grads: false,
        dropout: false,
        lengths: false,
    };
    let s = stack(case, 3, 3, |input_size| {
        LstmCell::new(LstmCellConfig::new(input_size, 3), &mut rng).unwrap().cast::<f64>()
    });
    let x = random(4 * 2 * 3, &mut rng);
    let h0 = random(4 * 2 * 3, &mut rng);
    let a = s.forward(&x, 4, 2, Some(&h0), None);
    let input = Sequences { data: &x, steps: 4, batch: 2, lengths: None };
    let (b, _) = s.forward_train(input, InitialStates { h: Some(&h0), c: None }, vec![None, None]);
    assert_eq!(a.output, b.output);
    assert_eq!(a.h_n, b.h_n);
    assert_eq!(a.c_n, b.c_n);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random shapes and options: every gradient of the driver's backward agrees with central differences.
        #[test]
        fn backward_matches_finite_differences(
            kind in 0usize..4,
            layers in 1usize..3,
            bidirectional: bool,
            bias: bool,
            initial_state: bool,
            final_grads: bool,
            input in 1usize..4,
            hidden in 2usize..4,
            seed in 0u64..1000,
        ) {
            let directions = if bidirectional { 2 } else { 1 };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let dropout = layers > 1 && seed % 2 == 0;
            let case = Case { layers, directions, bias, proj: 0, initial_state, final_grads, dropout, lengths: seed % 3 != 0 };
            match kind {
                0 | 1 => {
                    let nonlinearity = if kind == 0 { Nonlinearity::Tanh } else { Nonlinearity::Relu };
                    let s = stack(case, input, hidden, |input_size| {
                        let config = RnnCellConfig { bias, nonlinearity, ..RnnCellConfig::new(input_size, hidden) };
                        RnnCell::new(config, &mut rng).unwrap().cast::<f64>()
                    });
                    check_stack("rnn", case, input, s, seed);
                }
                2 => {
                    let proj = if seed % 3 == 0 { 1 } else { 0 };
                    let output = if proj > 0 { proj } else { hidden };
                    let case = Case { proj, ..case };
                    let s = stack(case, input, output, |input_size| {
                        let config = LstmCellConfig { bias, proj_size: proj, ..LstmCellConfig::new(input_size, hidden) };
                        LstmCell::new(config, &mut rng).unwrap().cast::<f64>()
                    });
                    check_stack("lstm", case, input, s, seed);
                }
                _ => {
                    let s = stack(case, input, hidden, |input_size| {
                        let config = GruCellConfig { bias, ..GruCellConfig::new(input_size, hidden) };
                        GruCell::new(config, &mut rng).unwrap().cast::<f64>()
                    });
                    check_stack("gru", case, input, s, seed);
                }
            }
        }
    }
}
