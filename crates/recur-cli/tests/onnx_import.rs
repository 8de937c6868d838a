//! `recur import` end to end: a PyTorch export becomes a model file that recur loads with the same parameters, and
//! a graph recur cannot read is a one-line error naming the node.

mod common;

use std::path::{Path, PathBuf};

use common::{fails_with, ok, recur, stdout};
use recur::{Module, Recurrent, SequenceModel};

fn onnx_case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur-onnx/tests/data/torch").join(name).join("model.onnx")
}

#[test]
fn a_pytorch_language_model_imports_as_a_sequence_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lm.safetensors");
    let onnx = onnx_case("embedding_lstm_linear_lm_dynamic");
    let output = ok(recur(&["import", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()]));
    let text = stdout(&output);
    assert!(text.contains("a sequence model: embedding 10 × 3, LSTM × 2 layers"), "{text}");
    assert!(text.contains("outputs `logits` (predictions)"), "{text}");
    let model = SequenceModel::load(&out).unwrap();
    assert_eq!(model.config().vocab, Some(10));
    assert!(model.recurrent().config().batch_first);
}

#[test]
fn a_pytorch_layer_imports_with_its_state_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layer.safetensors");
    let onnx = onnx_case("gru_2layer_bidir_time_major_initial_states");
    let output = ok(recur(&["import", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()]));
    assert!(stdout(&output).contains("`h0` (h0)"), "{}", stdout(&output));
    let layer = Recurrent::load(&out, &Default::default()).unwrap();
    assert_eq!(layer.config().num_layers, 2);
    assert!(layer.config().bidirectional);
    assert_eq!(layer.state_dict().len(), 16);
}

#[test]
fn unreadable_graphs_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let out = out.to_str().unwrap();
    // ONNX's node tests feed the weights as inputs: no constant weight, no model.
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur-onnx/tests/data/node/test_gru_defaults/model.onnx");
    fails_with(recur(&["import", node.to_str().unwrap(), "-o", out]), "input `W");
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a protobuf at all").unwrap();
    fails_with(recur(&["import", garbage.to_str().unwrap(), "-o", out]), "not a valid ModelProto");
    fails_with(recur(&["import", "/nonexistent.onnx", "-o", out]), "/nonexistent.onnx");
}
