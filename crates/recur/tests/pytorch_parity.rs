//! Parity with PyTorch: every fixture written by `tools/gen_fixtures.py` (PyTorch's own outputs) is reproduced to
//! within 1e-5.

use std::collections::HashMap;

use rand::SeedableRng;
use std::path::{Path, PathBuf};

use recur::model_file::TensorFile;
use recur::{
    GruCell, GruCellConfig, LoadOptions, LstmCell, LstmCellConfig, Mode, Nonlinearity, Recurrent, RecurrentConfig,
    RnnCell, RnnCellConfig, Tensor,
};

const TOLERANCE: f32 = 1e-5;

fn fixtures(kind: &str) -> (PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind);
    let index = std::fs::read_to_string(dir.join("index.json")).expect("fixture index");
    let cases: Vec<String> = serde_json::from_str(&index).expect("index is a JSON list");
    assert!(!cases.is_empty());
    (dir, cases)
}

fn assert_close(case: &str, what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{case}: shape of {what}");
    let err = got.max_abs_diff(want).unwrap();
    assert!(err <= TOLERANCE, "{case}: {what} differs from PyTorch by {err}");
}

fn flag(io: &TensorFile, key: &str) -> bool {
    io.metadata.get(key).map(String::as_str) == Some("true")
}

#[test]
fn layers_match_pytorch() {
    let (dir, cases) = fixtures("layers");
    let mut with_metadata = 0;
    for case in &cases {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let config = RecurrentConfig::from_json(&io.metadata["config"]).unwrap();
        let model_path = dir.join(format!("{case}.model.safetensors"));
        let options = LoadOptions {
            batch_first: Some(config.batch_first),
            nonlinearity: Some(if config.mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh }),
        };
        let layer = Recurrent::load(&model_path, &options).unwrap_or_else(|e| panic!("{case}: {e}"));
        let loaded = layer.config();
        if TensorFile::read(&model_path).unwrap().metadata.contains_key("config") {
            with_metadata += 1;
            assert_eq!(loaded, &config, "{case}: config from metadata");
        } else {
            assert_eq!(loaded, &RecurrentConfig { dropout: 0.0, ..config.clone() }, "{case}: inferred config");
        }

        let t = |name: &str| io.tensors.get(name);
        let has_h0 = flag(&io, "has_h0");
        assert_eq!(has_h0, t("h0").is_some(), "{case}: h0 flag");
        let out = layer.forward(&io.tensors["input"], t("h0"), t("c0")).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_close(case, "output", &out.output, &io.tensors["output"]);
        assert_close(case, "h_n", &out.h_n, &io.tensors["h_n"]);
        match (out.c_n, t("c_n")) {
            (Some(got), Some(want)) => assert_close(case, "c_n", &got, want),
            (None, None) => {}
            _ => panic!("{case}: c_n presence differs"),
        }
    }
    assert!(with_metadata > 0 && with_metadata < cases.len(), "both loading paths are exercised");
}

#[derive(serde::Deserialize)]
struct CellConfig {
    mode: Mode,
    input_size: usize,
    hidden_size: usize,
    bias: bool,
}

#[test]
fn cells_match_pytorch() {
    let (dir, cases) = fixtures("cells");
    for case in &cases {
        let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let c: CellConfig = serde_json::from_str(&io.metadata["config"]).unwrap();
        let (input, h0, c0) = (&io.tensors["input"], io.tensors.get("h0"), io.tensors.get("c0"));
        let (i, h, bias) = (c.input_size, c.hidden_size, c.bias);
        let h1 = match c.mode {
            Mode::Lstm => {
                let config = LstmCellConfig { bias, ..LstmCellConfig::new(i, h) };
                let cell = LstmCell::from_state_dict(config, &model.tensors).unwrap();
                let state = h0.map(|h0| (h0, c0.expect("LSTM fixtures give h0 and c0 together")));
                let (h1, c1) = cell.forward(input, state).unwrap();
                assert_close(case, "c1", &c1, &io.tensors["c1"]);
                h1
            }
            Mode::Gru => {
                let cell = GruCell::from_state_dict(GruCellConfig { bias, ..GruCellConfig::new(i, h) }, &model.tensors);
                cell.unwrap().forward(input, h0).unwrap()
            }
            Mode::RnnTanh | Mode::RnnRelu => {
                let nonlinearity = if c.mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh };
                let config = RnnCellConfig { bias, nonlinearity, ..RnnCellConfig::new(i, h) };
                RnnCell::from_state_dict(config, &model.tensors).unwrap().forward(input, h0).unwrap()
            }
        };
        assert_close(case, "h1", &h1, &io.tensors["h1"]);
    }
}

/// Saving a loaded fixture and loading it again gives the same layer, and PyTorch's names are kept.
#[test]
fn save_and_load_round_trip() {
    let (dir, cases) = fixtures("layers");
    let tmp = std::env::temp_dir().join(format!("recur-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for case in cases.iter().step_by(7) {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let config = RecurrentConfig::from_json(&io.metadata["config"]).unwrap();
        let options = LoadOptions {
            batch_first: Some(config.batch_first),
            nonlinearity: Some(if config.mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh }),
        };
        let original = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        let layer = Recurrent::from_tensor_file(&original, &options).unwrap();
        let path = tmp.join(format!("{case}.safetensors"));
        layer.save(&path).unwrap();
        let saved = TensorFile::read(&path).unwrap();
        let names = |f: &TensorFile| {
            let mut n: Vec<String> = f.tensors.keys().cloned().collect();
            n.sort();
            n
        };
        assert_eq!(names(&saved), names(&original), "{case}: PyTorch names kept");
        let reloaded = Recurrent::load(&path, &LoadOptions::default()).unwrap();
        assert_eq!(reloaded, layer, "{case}: round trip");
    }
    std::fs::remove_dir_all(&tmp).ok();
    let _: HashMap<(), ()> = HashMap::new();
}

/// `max |got − want| / max(1, |want|)`.
fn relative_error(got: &Tensor, want: &Tensor) -> f32 {
    got.data().iter().zip(want.data()).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f32::max)
}

fn assert_grad_close(case: &str, what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{case}: shape of {what}");
    let err = relative_error(got, want);
    assert!(err <= TOLERANCE, "{case}: {what} differs from PyTorch by {err} (relative)");
}

/// A fixture's layer, loaded from its model file, with dropout off: PyTorch computed the gradients in eval mode.
/// Also returns the io file and the number of parameters.
fn eval_layer(dir: &Path, case: &str) -> (Recurrent, TensorFile, usize) {
    let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
    let config = RecurrentConfig::from_json(&io.metadata["config"]).unwrap();
    let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
    let mut layer = Recurrent::zeros(config).unwrap();
    recur::Module::load_state_dict(&mut layer, &model.tensors).unwrap();
    layer.set_dropout(0.0).unwrap();
    (layer, io, model.tensors.len())
}

/// Asserts the gradients of the input, the initial states (where the fixture has them) and every one of the
/// layer's `params` parameters against the fixture's.
fn assert_layer_grads(
    case: &str,
    grads: &recur::RecurrentGrads,
    layer: &mut Recurrent,
    io: &TensorFile,
    params: usize,
) {
    use recur::Trainable;
    assert_grad_close(case, "grad.input", &grads.input, &io.tensors["grad.input"]);
    if let Some(want) = io.tensors.get("grad.h0") {
        assert_grad_close(case, "grad.h0", &grads.h0, want);
    }
    if let Some(want) = io.tensors.get("grad.c0") {
        assert_grad_close(case, "grad.c0", grads.c0.as_ref().unwrap(), want);
    }
    let mut checked = 0;
    for p in layer.parameters() {
        let got = Tensor::new(p.shape.clone(), p.grad.to_vec()).unwrap();
        assert_grad_close(case, &format!("grad.{}", p.name), &got, &io.tensors[&format!("grad.{}", p.name)]);
        checked += 1;
    }
    assert_eq!(checked, params, "{case}: every parameter has a gradient");
}

#[test]
fn layer_gradients_match_pytorch() {
    let (dir, cases) = fixtures("layers");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for case in &cases {
        let (mut layer, io, params) = eval_layer(&dir, case);
        let t = |name: &str| io.tensors.get(name);
        let (out, cache) = layer.forward_train(&io.tensors["input"], t("h0"), t("c0"), &mut rng).unwrap();
        assert_close(case, "output", &out.output, &io.tensors["output"]);
        let grads = layer.backward(&cache, &io.tensors["grad_output"], t("grad_h_n"), t("grad_c_n")).unwrap();
        assert_layer_grads(case, &grads, &mut layer, &io, params);
    }
}

#[test]
fn gradients_accumulate_until_zeroed() {
    use recur::Trainable;
    let (dir, cases) = fixtures("layers");
    let case = cases.iter().find(|c| c.starts_with("lstm_l2_bi")).unwrap();
    let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
    let config = RecurrentConfig::from_json(&io.metadata["config"]).unwrap();
    let mut layer = Recurrent::with_seed(config.dropout(0.0), 1).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (_, cache) = layer.forward_train(&io.tensors["input"], None, None, &mut rng).unwrap();
    layer.backward(&cache, &io.tensors["grad_output"], None, None).unwrap();
    let once: Vec<f32> = layer.parameters().iter().flat_map(|p| p.grad.to_vec()).collect();
    layer.backward(&cache, &io.tensors["grad_output"], None, None).unwrap();
    let twice: Vec<f32> = layer.parameters().iter().flat_map(|p| p.grad.to_vec()).collect();
    assert!(once.iter().any(|g| *g != 0.0));
    for (a, b) in once.iter().zip(&twice) {
        assert!((2.0 * a - b).abs() <= 1e-6 * a.abs().max(1.0), "accumulates: {a} then {b}");
    }
    layer.zero_grad();
    assert!(layer.parameters().iter().all(|p| p.grad.iter().all(|g| *g == 0.0)));
}

#[test]
fn cell_gradients_match_pytorch() {
    use recur::Trainable;
    let (dir, cases) = fixtures("cells");
    for case in &cases {
        let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let c: CellConfig = serde_json::from_str(&io.metadata["config"]).unwrap();
        let (input, h0, c0) = (&io.tensors["input"], io.tensors.get("h0"), io.tensors.get("c0"));
        let grad_h = &io.tensors["grad_h1"];
        let (i, h, bias) = (c.input_size, c.hidden_size, c.bias);
        let (grads, params): (recur::layer::CellGrads, Vec<(String, Tensor)>) = match c.mode {
            Mode::Lstm => {
                let config = LstmCellConfig { bias, ..LstmCellConfig::new(i, h) };
                let mut cell = LstmCell::from_state_dict(config, &model.tensors).unwrap();
                let ((h1, _), cache) = cell.forward_train(input, h0.map(|h0| (h0, c0.unwrap()))).unwrap();
                assert_close(case, "h1", &h1, &io.tensors["h1"]);
                let g = cell.backward(&cache, grad_h, io.tensors.get("grad_c1")).unwrap();
                (
                    g,
                    cell.parameters()
                        .into_iter()
                        .map(|p| (p.name, Tensor::new(p.shape, p.grad.to_vec()).unwrap()))
                        .collect(),
                )
            }
            Mode::Gru => {
                let mut cell =
                    GruCell::from_state_dict(GruCellConfig { bias, ..GruCellConfig::new(i, h) }, &model.tensors)
                        .unwrap();
                let (_, cache) = cell.forward_train(input, h0).unwrap();
                let g = cell.backward(&cache, grad_h).unwrap();
                (
                    g,
                    cell.parameters()
                        .into_iter()
                        .map(|p| (p.name, Tensor::new(p.shape, p.grad.to_vec()).unwrap()))
                        .collect(),
                )
            }
            Mode::RnnTanh | Mode::RnnRelu => {
                let nonlinearity = if c.mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh };
                let config = RnnCellConfig { bias, nonlinearity, ..RnnCellConfig::new(i, h) };
                let mut cell = RnnCell::from_state_dict(config, &model.tensors).unwrap();
                let (_, cache) = cell.forward_train(input, h0).unwrap();
                let g = cell.backward(&cache, grad_h).unwrap();
                (
                    g,
                    cell.parameters()
                        .into_iter()
                        .map(|p| (p.name, Tensor::new(p.shape, p.grad.to_vec()).unwrap()))
                        .collect(),
                )
            }
        };
        assert_grad_close(case, "grad.input", &grads.input, &io.tensors["grad.input"]);
        if let Some(want) = io.tensors.get("grad.h0") {
            assert_grad_close(case, "grad.h0", &grads.h0, want);
        }
        if let Some(want) = io.tensors.get("grad.c0") {
            assert_grad_close(case, "grad.c0", grads.c0.as_ref().unwrap(), want);
        }
        for (name, got) in &params {
            assert_grad_close(case, &format!("grad.{name}"), got, &io.tensors[&format!("grad.{name}")]);
        }
        assert_eq!(params.len(), model.tensors.len());
    }
}

/// Padded batches with per-sequence lengths, against PyTorch's `pack_padded_sequence(enforce_sorted=False)` →
/// layer → `pad_packed_sequence`: outputs, final states and every gradient (the upstream gradient holds garbage at
/// padded positions, which PyTorch ignores).
#[test]
fn padded_batches_with_lengths_match_pytorch() {
    let (dir, cases) = fixtures("lengths");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for case in &cases {
        let (mut layer, io, params) = eval_layer(&dir, case);
        let lengths: Vec<usize> = io.tensors["lengths"].data().iter().map(|&l| l as usize).collect();
        let t = |name: &str| io.tensors.get(name);
        let input = &io.tensors["input"];

        let out = layer.forward_with_lengths(input, &lengths, t("h0"), t("c0")).unwrap();
        assert_close(case, "output", &out.output, &io.tensors["output"]);
        assert_close(case, "h_n", &out.h_n, &io.tensors["h_n"]);
        if let Some(want) = t("c_n") {
            assert_close(case, "c_n", out.c_n.as_ref().unwrap(), want);
        }

        let (train_out, cache) = layer.forward_train_with_lengths(input, &lengths, t("h0"), t("c0"), &mut rng).unwrap();
        assert_eq!(train_out, out, "{case}: training and inference forward agree");
        let grads = layer.backward(&cache, &io.tensors["grad_output"], t("grad_h_n"), t("grad_c_n")).unwrap();
        assert_layer_grads(case, &grads, &mut layer, &io, params);
    }
}
