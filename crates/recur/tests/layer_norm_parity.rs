//! Parity with PyTorch for the Transformer building blocks: every case written by `tools/gen_nn_fixtures.py`
//! (`nn.LayerNorm`'s values and autograd gradients, the tutorial's positional encoding) is reproduced to within
//! 1e-5 relative to `max(1, |reference|)`.

use std::collections::HashMap;
use std::path::Path;

use recur::model_file::TensorFile;
use recur::nn::sinusoidal_positions;
use recur::{LayerNorm, Layout, Module, PositionalEncoding, SequenceShape, Tensor, Trainable};

const TOLERANCE: f32 = 1e-5;

struct Case {
    name: String,
    file: TensorFile,
}

impl Case {
    fn tensor(&self, key: &str) -> &Tensor {
        self.file.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor `{key}`", self.name))
    }

    fn data(&self, key: &str) -> &[f32] {
        self.tensor(key).data()
    }

    fn meta(&self, key: &str) -> &str {
        self.file.metadata.get(key).unwrap_or_else(|| panic!("{}: no metadata `{key}`", self.name))
    }

    fn flag(&self, key: &str) -> bool {
        match self.meta(key) {
            "true" => true,
            "false" => false,
            other => panic!("{}: `{key}` is {other:?}", self.name),
        }
    }

    fn size(&self, key: &str) -> usize {
        self.meta(key).parse().unwrap_or_else(|e| panic!("{}: `{key}`: {e}", self.name))
    }

    /// Checks `got` against the reference `key` and returns the largest relative error.
    fn compare(&self, key: &str, got: &[f32]) -> f32 {
        let want = self.data(key);
        assert_eq!(got.len(), want.len(), "{}: length of {key}", self.name);
        let err = got.iter().zip(want).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f32::max);
        assert!(
            err <= TOLERANCE,
            "{}: {key} differs from PyTorch by {err:.3e} (relative)\n got  {got:?}\n want {want:?}",
            self.name
        );
        err
    }
}

fn cases(kind: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nn");
    let index = std::fs::read_to_string(dir.join("index.json")).expect("fixture index");
    let names: Vec<String> = serde_json::from_str(&index).expect("index is a JSON list");
    let cases: Vec<Case> = names
        .into_iter()
        .map(|name| {
            let file = TensorFile::read(dir.join(format!("{name}.safetensors"))).unwrap();
            Case { name, file }
        })
        .filter(|c| c.meta("kind") == kind)
        .collect();
    assert!(!cases.is_empty(), "no `{kind}` fixtures");
    cases
}

fn report(what: &str, errors: impl IntoIterator<Item = f32>) {
    let max = errors.into_iter().fold(0.0, f32::max);
    println!("{what}: max relative error vs PyTorch {max:.3e}");
}

#[test]
fn layer_norm_matches_pytorch() {
    let mut errors = Vec::new();
    let (mut without_affine, mut without_bias) = (0, 0);
    for case in cases("layer_norm") {
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
    for case in cases("positional_encoding") {
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
