//! `recur export`: trained run directories (a token model and a feature model) written as ONNX and, when
//! `RECUR_ONNX_PYTHON` names a Python with `tools/requirements-onnx.txt`, run by onnxruntime against recur's own
//! predictions; a layer file; and one-line errors for what cannot be exported.

use std::path::Path;
use std::process::Command;

use prost::Message;
use recur::model::CarriedState;
use recur::{SequenceInput, SequenceModel, Tensor};
use recur_onnx::export::{int32_tensor, int64_tensor, tensor_proto};
use recur_onnx::proto::ModelProto;
use recur_onnx::read_model;

mod common;

use common::{fails_with, ok, recur, stdout};

fn train(dir: &Path, task: &str, model: &str) {
    let out = dir.to_str().unwrap();
    let args = ["train", "--task", task, "--seq-len", "8", "--hidden", "6", "--batch", "8", "--steps", "10"];
    ok(recur(&[&args[..], &["--model", model, "--out", out, "--quiet"]].concat()));
}

fn names(values: &[recur_onnx::proto::ValueInfoProto]) -> Vec<&str> {
    values.iter().map(|v| v.name()).collect()
}

fn read(path: &Path) -> ModelProto {
    read_model(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes `case/test_data_set_0` with a padded batch of 3 sequences of up to 6 steps and recur's predictions and
/// final states for it.
fn write_data(model: &SequenceModel, case: &Path) {
    let (steps, batch) = (6, 3);
    let lengths = [6, 2, 4];
    let config = model.config();
    let data = case.join("test_data_set_0");
    std::fs::create_dir_all(&data).unwrap();
    let mut inputs = Vec::new();
    let (predictions, out) = match config.vocab {
        Some(vocab) => {
            let ids: Vec<usize> = (0..steps * batch).map(|k| (k * 5 + 1) % vocab).collect();
            let as_i64: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
            let shape = if config.recurrent.batch_first { [batch, steps] } else { [steps, batch] };
            inputs.push(int64_tensor("input", &shape, &as_i64));
            model.forward(SequenceInput::Tokens { ids: &ids, steps, batch }, Some(&lengths), &CarriedState::new())
        }
        None => {
            let i = config.recurrent.input_size;
            let shape = if config.recurrent.batch_first { [batch, steps, i] } else { [steps, batch, i] };
            let x = Tensor::new(shape, (0..steps * batch * i).map(|k| (k as f32 * 0.37).sin()).collect()).unwrap();
            inputs.push(tensor_proto("input", &x));
            model.forward(SequenceInput::Features(&x), Some(&lengths), &CarriedState::new())
        }
    }
    .unwrap();
    inputs.push(int32_tensor("sequence_lens", &[batch], &lengths.map(|n| n as i32)));
    let rows = predictions.len() / config.outputs;
    let mut outputs = vec![tensor_proto("predictions", &Tensor::new([rows, config.outputs], predictions).unwrap())];
    outputs.push(tensor_proto("h_n", &out.h_n));
    outputs.extend(out.c_n.map(|c| tensor_proto("c_n", &c)));
    for (prefix, tensors) in [("input", inputs), ("output", outputs)] {
        for (k, t) in tensors.iter().enumerate() {
            std::fs::write(data.join(format!("{prefix}_{k}.pb")), t.encode_to_vec()).unwrap();
        }
    }
}

#[test]
fn a_run_directorys_model_exports_and_onnxruntime_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases");
    for (task, model, outputs) in
        [("tagging", "gru", vec!["predictions", "h_n"]), ("adding", "lstm", vec!["predictions", "h_n", "c_n"])]
    {
        let run = tmp.path().join(task);
        train(&run, task, model);
        let case = cases.join(task);
        std::fs::create_dir_all(&case).unwrap();
        let file = case.join("model.onnx");
        let o = ok(recur(&["export", run.to_str().unwrap(), "-o", file.to_str().unwrap(), "--sequence-lens"]));
        let text = stdout(&o);
        assert!(text.starts_with(&format!("wrote {}", file.display())), "{text}");
        assert!(text.contains("sequence_lens int32 (batch)"), "{text}");
        let graph = read(&file).graph.unwrap();
        assert_eq!(names(&graph.input), ["input", "sequence_lens"]);
        assert_eq!(names(&graph.output), outputs);
        write_data(&SequenceModel::load(run.join("model.safetensors")).unwrap(), &case);
    }
    let Some(python) = std::env::var_os("RECUR_ONNX_PYTHON") else {
        eprintln!("skipped the onnxruntime check of the exported runs: RECUR_ONNX_PYTHON is not set");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/check_onnx_export.py");
    let out = Command::new(python).arg(script).arg(&cases).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the onnxruntime check failed:\n{report}");
}

#[test]
fn a_layer_file_exports_and_what_onnx_cannot_express_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur/tests/fixtures/layers");
    let layer = fixtures.join("lstm_l2_bi_bias0_bf1_h0_0_T1B2I4H3.model.safetensors");
    let file = tmp.path().join("layer.onnx");
    let (layer, file_str) = (layer.to_str().unwrap(), file.to_str().unwrap());
    let o = ok(recur(&["export", layer, "--output", file_str, "--opset", "14", "--initial-states"]));
    assert!(stdout(&o).contains("LSTM, 4 → 3, 2 layers, bidirectional, batch-first"), "{}", stdout(&o));
    let model = read(&file);
    assert_eq!(model.opset_import[0].version(), 14);
    let graph = model.graph.unwrap();
    assert_eq!(names(&graph.input), ["input", "h0", "c0"]);
    assert_eq!(names(&graph.output), ["output", "h_n", "c_n"]);
    assert_eq!(graph.node.iter().filter(|n| n.op_type() == "LSTM").count(), 2);

    let projected = fixtures.join("lstm_l2_bi_bias0_bf1_h0_0_proj_T2B1I1H4P1.model.safetensors");
    fails_with(recur(&["export", projected.to_str().unwrap(), "-o", file_str]), "proj_size");
    fails_with(recur(&["export", layer, "-o", file_str, "--opset", "13"]), "opset 13; expected 14 to 22");
    let missing = tmp.path().join("none.safetensors");
    fails_with(recur(&["export", missing.to_str().unwrap(), "-o", file_str]), "none.safetensors");
    let unwritable = tmp.path().join("no/such/dir/m.onnx");
    fails_with(recur(&["export", layer, "-o", unwritable.to_str().unwrap()]), "cannot write");
}
