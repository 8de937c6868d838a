//! Parity with PyTorch for the Transformer building blocks: every case written by `tools/gen_nn_fixtures.py`
//! (`nn.LayerNorm`'s values and autograd gradients, the tutorial's positional encoding) is reproduced to within
//! 1e-5 relative to `max(1, |reference|)`.

use std::collections::HashMap;

use recur::nn::sinusoidal_positions;
use recur::{LayerNorm, Layout, Module, PositionalEncoding, SequenceShape, Tensor, Trainable};

mod common;

use common::{cases, report};

#[test]
fn layer_norm_matches_pytorch() {
    let mut errors = Vec::new();
    let (mut without_affine, mut without_bias) = (0, 0);
    for case in cases("nn", "layer_norm") {
        let n = case.size("normalized_shape");
        let eps: f64 = case.meta("eps").parse().unwrap();
        let (affine, bias) = (case.flag("elementwise_affine"), case.flag("bias"));
        without_affine += usize::from(!affine);
        without_bias += usize::from(affine && !bias);
        let mut layer = LayerNorm::<f32>::with_options(n, eps, affine, bias).unwrap();
        // Strict loading: the file holds exactly the module's state_dict.
        let state: HashMap<String, Tensor> = ["weight", "bias"]
            .into_iter()
            .filter_map(|k| case.file.tensors.get(k).map(|t| (k.to_string(), t.clone())))
            .collect();
        layer.load_state_dict(&state).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(layer.state_dict().len(), state.len(), "{}: parameters", case.name);

        let x = case.tensor("x");
        let y = layer.forward_tensor(x).unwrap();
        assert_eq!(y.shape(), case.tensor("y").shape(), "{}: shape of y", case.name);
        errors.push(case.compare("y", y.data()));

        let rows = x.data().len() / n;
        let (y, cache) = layer.forward_train(x.data(), rows).unwrap();
        errors.push(case.compare("y", &y));
        let dx = layer.backward(x.data(), &cache, case.data("dy"), rows).unwrap();
        errors.push(case.compare("dx", &dx));
        match layer.weight_grad() {
            Some(dw) => errors.push(case.compare("dweight", dw)),
            None => assert!(!case.file.tensors.contains_key("dweight"), "{}: dweight", case.name),
        }
        match layer.bias_grad() {
            Some(db) => errors.push(case.compare("dbias", db)),
            None => assert!(!case.file.tensors.contains_key("dbias"), "{}: dbias", case.name),
        }
        let grads = layer.parameters().len();
        assert_eq!(grads, state.len(), "{}: one gradient per parameter", case.name);
    }
    assert!(without_affine > 0 && without_bias > 0, "every option is exercised");
    report("LayerNorm", errors);
}

#[test]
fn positional_encoding_matches_the_pytorch_tutorial() {
    let mut errors = Vec::new();
    for case in cases("nn", "positional_encoding") {
        let (max_len, d_model) = (case.size("max_len"), case.size("d_model"));
        assert_eq!(case.flag("odd"), d_model % 2 == 1);
        errors.push(case.compare("pe", &sinusoidal_positions::<f32>(max_len, d_model).unwrap()));

        let encoding = PositionalEncoding::<f32>::new(max_len, d_model).unwrap();
        errors.push(case.compare("pe", encoding.table()));
        let x = case.tensor("x");
        let (steps, batch) = (x.shape()[0], x.shape()[1]);
        let mut y = x.data().to_vec();
        let shape = SequenceShape { steps, batch, features: d_model, layout: Layout::TimeMajor };
        encoding.add_to(&mut y, shape).unwrap();
        errors.push(case.compare("y", &y));
    }
    report("PositionalEncoding", errors);
}
