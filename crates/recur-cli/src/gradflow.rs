//! Gradient flow through time: for a loss at the last step of a many-to-one model, the norm of its gradient with
//! respect to every earlier hidden state, `‖∂L/∂h_t‖`. The model's one recurrent layer is unrolled with the
//! library's single-step cells (`forward_train` / `backward`), which is exactly the layer's computation, one
//! step at a time, so the gradient reaching each `h_t` can be read off on the way back.

use std::collections::HashMap;

use recur::cells::{GruCellConfig, LstmCellConfig, RnnCellConfig};
use recur::{GruCell, LstmCell, Mode, Module, ReadoutName, RnnCell, SequenceModel, Tensor};

/// The one layer of a model, as a cell.
enum AnyCell {
    Rnn(RnnCell),
    Lstm(LstmCell),
    Gru(GruCell),
}

/// `‖∂L/∂h_t‖` for `t = 0..T` (`h_t` the state after reading step `t`), for the mean squared error of the
/// model's prediction from a batch-first input `(B, T, I)` against `target` (`B × outputs`).
pub fn hidden_gradient_norms(model: &SequenceModel, input: &Tensor, target: &[f32]) -> Result<Vec<f64>, String> {
    let config = model.config();
    let r = &config.recurrent;
    if r.num_layers != 1 || r.bidirectional || !r.batch_first || config.vocab.is_some() {
        return Err("gradient flow needs a one-layer, unidirectional, batch-first model of features".into());
    }
    if config.readout != ReadoutName::Last {
        return Err("gradient flow needs a many-to-one model (a loss at the last step)".into());
    }
    let &[batch, steps, features] = input.shape() else {
        return Err(format!("input must be (B, T, I), found {:?}", input.shape()));
    };
    let (hidden, outputs) = (r.output_size(), config.outputs);
    if features != r.input_size || target.len() != batch * outputs {
        return Err(format!("input {:?} or target of {} values do not fit the model", input.shape(), target.len()));
    }
    let params: HashMap<String, Tensor> = model
        .named_params()
        .into_iter()
        .map(|p| (p.name.clone(), Tensor::new(p.shape.clone(), p.data.to_vec()).expect("a parameter's shape fits")))
        .collect();
    let cell_params: HashMap<String, Tensor> = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("rnn.")?.strip_suffix("_l0")?.to_string(), v.clone())))
        .collect();
    let err = |e: recur::Error| e.to_string();
    let mut cell = match r.mode {
        Mode::RnnTanh | Mode::RnnRelu => {
            let mut c = RnnCellConfig::new(r.input_size, r.hidden_size);
            c.bias = r.bias;
            c.nonlinearity =
                if r.mode == Mode::RnnRelu { recur::Nonlinearity::Relu } else { recur::Nonlinearity::Tanh };
            AnyCell::Rnn(RnnCell::from_state_dict(c, &cell_params).map_err(err)?)
        }
        Mode::Lstm => {
            let mut c = LstmCellConfig::new(r.input_size, r.hidden_size);
            c.bias = r.bias;
            c.proj_size = r.proj_size;
            AnyCell::Lstm(LstmCell::from_state_dict(c, &cell_params).map_err(err)?)
        }
        Mode::Gru => {
            let mut c = GruCellConfig::new(r.input_size, r.hidden_size);
            c.bias = r.bias;
            AnyCell::Gru(GruCell::from_state_dict(c, &cell_params).map_err(err)?)
        }
    };
    // Forward, one step at a time, keeping every step's cache.
    let mut caches = Vec::with_capacity(steps);
    let (mut h, mut c): (Option<Tensor>, Option<Tensor>) = (None, None);
    for t in 0..steps {
        let x: Vec<f32> =
            (0..batch).flat_map(|b| input.data()[(b * steps + t) * features..][..features].iter().copied()).collect();
        let x = Tensor::new([batch, features], x).map_err(err)?;
        let cache = match &cell {
            AnyCell::Rnn(cell) => {
                let (h1, cache) = cell.forward_train(&x, h.as_ref()).map_err(err)?;
                h = Some(h1);
                cache
            }
            AnyCell::Gru(cell) => {
                let (h1, cache) = cell.forward_train(&x, h.as_ref()).map_err(err)?;
                h = Some(h1);
                cache
            }
            AnyCell::Lstm(cell) => {
                let state = h.as_ref().zip(c.as_ref());
                let ((h1, c1), cache) = cell.forward_train(&x, state).map_err(err)?;
                (h, c) = (Some(h1), Some(c1));
                cache
            }
        };
        caches.push(cache);
    }
    // The head on the last state, the loss' gradient, and its gradient with respect to h_T.
    let h_last = h.ok_or("the input has no time steps")?;
    let weight = &params["head.weight"];
    let bias = params.get("head.bias");
    let mut d_h = vec![0.0f32; batch * hidden];
    for b in 0..batch {
        for o in 0..outputs {
            let w = &weight.data()[o * hidden..(o + 1) * hidden];
            let y: f32 = bias.map_or(0.0, |b| b.data()[o])
                + w.iter().zip(&h_last.data()[b * hidden..(b + 1) * hidden]).map(|(a, b)| a * b).sum::<f32>();
            let d_y = 2.0 * (y - target[b * outputs + o]) / (batch * outputs) as f32;
            for (d, wi) in d_h[b * hidden..(b + 1) * hidden].iter_mut().zip(w) {
                *d += d_y * wi;
            }
        }
    }
    // Backward through time: before step t's backward, `grad_h` is ∂L/∂h_t.
    let mut grad_h = Tensor::new([batch, hidden], d_h).map_err(err)?;
    let mut grad_c: Option<Tensor> = None;
    let mut norms = vec![0.0f64; steps];
    for t in (0..steps).rev() {
        norms[t] = grad_h.data().iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>().sqrt();
        let grads = match &mut cell {
            AnyCell::Rnn(cell) => cell.backward(&caches[t], &grad_h).map_err(err)?,
            AnyCell::Gru(cell) => cell.backward(&caches[t], &grad_h).map_err(err)?,
            AnyCell::Lstm(cell) => cell.backward(&caches[t], &grad_h, grad_c.as_ref()).map_err(err)?,
        };
        grad_h = grads.h0;
        grad_c = grads.c0;
    }
    Ok(norms)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use recur::train::CarriedState;
    use recur::{RecurrentConfig, SequenceInput, SequenceModelConfig};

    use super::*;

    fn model(mode: Mode) -> SequenceModel {
        let recurrent = RecurrentConfig::new(mode, 2, 5).batch_first(true);
        let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::Last, outputs: 1 };
        SequenceModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(3)).unwrap()
    }

    /// Without recurrent weights, the hidden state of a vanilla RNN or an LSTM reaches later steps by no path (the
    /// LSTM's memory is its cell state), so no gradient reaches an earlier `h_t`; the GRU keeps one, `z ⊙ h`.
    #[test]
    fn without_recurrent_weights_no_gradient_reaches_earlier_states() {
        for mode in [Mode::RnnTanh, Mode::Gru, Mode::Lstm] {
            let mut m = model(mode);
            for p in m.named_params_mut() {
                if p.name.contains("weight_hh") {
                    p.data.fill(0.0);
                }
            }
            let x = Tensor::new([3, 4, 2], (0..24).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap();
            let norms = hidden_gradient_norms(&m, &x, &[0.5, -0.2, 1.0]).unwrap();
            assert_eq!(norms.len(), 4);
            assert!(norms[3] > 0.0);
            if mode == Mode::Gru {
                assert!(norms[..3].iter().all(|&n| n > 0.0), "{norms:?}");
            } else {
                assert!(norms[..3].iter().all(|&n| n == 0.0), "{mode:?}: {norms:?}");
            }
        }
    }

    /// At the last step the gradient is the head's alone: ∂L/∂h_T = ∂L/∂y · w for one output, computed here
    /// independently from the model's own forward pass.
    #[test]
    fn last_norm_matches_the_loss_gradient_through_the_head() {
        let m = model(Mode::Gru);
        let x = Tensor::new([2, 3, 2], (0..12).map(|i| (i as f32 * 0.71).cos()).collect()).unwrap();
        let target = [0.3, -0.4];
        let norms = hidden_gradient_norms(&m, &x, &target).unwrap();
        let (y, _) = m.forward(SequenceInput::Features(&x), None, &CarriedState::new()).unwrap();
        let w: f64 = m
            .named_params()
            .iter()
            .find(|p| p.name == "head.weight")
            .unwrap()
            .data
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let d: Vec<f64> = y.iter().zip(&target).map(|(a, b)| 2.0 * (*a - *b) as f64 / 2.0).collect();
        let want = w * d.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norms[2] - want).abs() < 1e-5 * want.max(1.0), "{} vs {want}", norms[2]);
    }

    #[test]
    fn unsupported_models_are_refused() {
        let recurrent = RecurrentConfig::gru(2, 3).num_layers(2).batch_first(true);
        let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::Last, outputs: 1 };
        let m = SequenceModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap();
        let x = Tensor::zeros([1, 2, 2]);
        assert!(hidden_gradient_norms(&m, &x, &[0.0]).unwrap_err().contains("one-layer"));
    }
}
