//! `recur train`, `eval`, `info`, `demo`, `demo attention` and `gradflow` on tiny settings: the files they write,
//! exact resumption (also after Ctrl-C), and one-line errors for bad input.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use recur::model_file::TensorFile;
use serde_json::Value;

mod common;

use common::{fails_with, ok, recur, stderr, stdout};

const TINY: [&str; 12] =
    ["--task", "adding", "--seq-len", "8", "--hidden", "6", "--batch", "8", "--eval-every", "10", "--log-every", "5"];

fn train(dir: &Path, steps: u64, extra: &[&str]) -> Output {
    let steps = steps.to_string();
    let out = dir.to_str().unwrap();
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["--steps", &steps, "--out", out, "--quiet"]);
    args.extend(extra);
    recur(&args)
}

/// The records without their timing (the only field that may differ between two runs).
fn records(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("steps_per_s");
            v
        })
        .collect()
}

#[test]
fn train_writes_a_run_that_eval_and_info_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = ok(train(&dir, 20, &["--json", "--model", "gru"]));
    for file in ["run.json", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "curves.png"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let last: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(last["steps"], 20);
    assert_eq!(last["model"], "gru");
    let mse = last["eval_mse"].as_f64().unwrap();
    let recs = records(&dir);
    assert_eq!(recs.iter().map(|r| r["step"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 10, 15, 20]);
    for key in ["loss", "lr", "grad_norm"] {
        assert!(recs.iter().all(|r| r[key].as_f64().is_some_and(f64::is_finite)), "{key}");
    }
    assert!(recs[1]["eval_mse"].is_f64() && recs[0].get("eval_mse").is_none());
    assert_eq!(recs[3]["eval_mse"].as_f64(), Some(mse));
    // eval scores the same evaluation set from the model file alone.
    let e = ok(recur(&["eval", "--model", dir.to_str().unwrap(), "--json"]));
    let v: Value = serde_json::from_str(stdout(&e).trim()).unwrap();
    assert!((v["eval_mse"].as_f64().unwrap() - mse).abs() < 1e-9, "{v} vs {mse}");
    fails_with(recur(&["eval", "--model", dir.to_str().unwrap(), "--task", "copy"]), "does not fit");
    let longer = ok(recur(&["eval", "--model", dir.to_str().unwrap(), "--seq-len", "30", "--json"]));
    assert_ne!(stdout(&longer), stdout(&e));
    let info = stdout(&ok(recur(&["info", dir.join("model.safetensors").to_str().unwrap()])));
    for needle in ["\"mode\": \"GRU\"", "rnn.weight_hh_l0", "[18, 6]", "recur.task", "head.weight"] {
        assert!(info.contains(needle), "{needle} not in\n{info}");
    }
    // A second run into the same directory would mix two runs.
    fails_with(train(&dir, 20, &[]), "--resume");
}

#[test]
fn resuming_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    ok(train(&whole, 40, &["--dropout", "0.0"]));
    ok(train(&split, 20, &["--dropout", "0.0"]));
    ok(recur(&["train", "--resume", split.to_str().unwrap(), "--steps", "40", "--quiet"]));
    assert_eq!(records(&split), records(&whole));
    // The same tensors and metadata (the header's key order may differ: it is a map).
    let a = TensorFile::read(whole.join("model.safetensors")).unwrap();
    let b = TensorFile::read(split.join("model.safetensors")).unwrap();
    assert_eq!(a.tensors, b.tensors, "the resumed run's model differs");
    assert_eq!(a.metadata, b.metadata);
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("interrupted");
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(TINY.iter().map(|s| s.to_string()));
    args.extend(["--steps", "1000000", "--out", dir.to_str().unwrap(), "--quiet"].map(String::from));
    let child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once a few records are written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < 4 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("checkpoint saved"), "{}", stdout(&o));
    let info = stdout(&ok(recur(&["info", dir.join("checkpoint.safetensors").to_str().unwrap()])));
    let step: u64 = info.lines().find_map(|l| l.strip_prefix("trainer.step: ")).unwrap().trim().parse().unwrap();
    assert!(step >= 10);
    // Continue to a round number of steps past the interruption, and compare with a run that never stopped.
    let total = (step / 10 + 2) * 10;
    ok(recur(&["train", "--resume", dir.to_str().unwrap(), "--steps", &total.to_string(), "--quiet"]));
    let whole = tmp.path().join("whole");
    ok(train(&whole, total, &[]));
    assert_eq!(records(&dir), records(&whole));
}

/// ONNX's cell options train from the command line, and the model file carries them.
#[test]
fn a_peephole_lstm_and_a_reset_before_gru_train() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra, tensor, key) in [
        ("peepholes", ["--model", "lstm", "--peepholes"], Some("rnn.weight_peephole_l0"), "\"peepholes\":true"),
        ("reset", ["--model", "gru", "--reset-before"], None, "\"linear_before_reset\":false"),
    ] {
        let dir = tmp.path().join(name);
        ok(train(&dir, 20, &extra));
        let file = TensorFile::read(dir.join("model.safetensors")).unwrap();
        assert!(file.metadata["model"].contains(key), "{name}: {}", file.metadata["model"]);
        if let Some(tensor) = tensor {
            assert_eq!(file.tensors[tensor].shape(), [3, 6]);
        }
        let last = records(&dir).pop().unwrap();
        assert!(last["eval_mse"].as_f64().unwrap().is_finite(), "{name}: {last}");
    }
}

#[test]
fn bad_options_and_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    fails_with(train(&dir, 10, &["--layers", "0"]), "--layers");
    fails_with(train(&dir, 10, &["--model", "transformer"]), "transformer");
    fails_with(train(&dir, 10, &["--lr=-1"]), "--lr");
    fails_with(train(&dir, 10, &["--tbptt", "4"]), "--tbptt");
    fails_with(train(&dir, 10, &["--model", "gru", "--forget-bias", "1"]), "--forget-bias");
    fails_with(train(&dir, 10, &["--model", "gru", "--peepholes"]), "--peepholes is an LSTM option");
    fails_with(train(&dir, 10, &["--model", "lstm", "--reset-before"]), "--reset-before is a GRU option");
    fails_with(recur(&["train", "--resume", tmp.path().join("none").to_str().unwrap()]), "run.json");
    fails_with(recur(&["eval", "--model", tmp.path().join("none.safetensors").to_str().unwrap()]), "none.safetensors");
    fails_with(recur(&["info", tmp.path().join("none.safetensors").to_str().unwrap()]), "none.safetensors");
    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a model").unwrap();
    fails_with(recur(&["info", garbage.to_str().unwrap()]), "garbage.safetensors");
}

#[test]
fn demo_and_gradflow_write_their_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = ok(recur(&[
        "demo",
        "--steps",
        "10",
        "--hidden",
        "4",
        "--batch",
        "4",
        "--lengths",
        "4,6",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let text = stdout(&o);
    for needle in ["T=4", "T=6", "rnn", "lstm", "gru", "0.167"] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    let results: Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 6);
    assert!(results.as_array().unwrap().iter().all(|r| r["test_mse"].as_f64().is_some_and(f64::is_finite)));
    for png in ["demo.png", "gradflow.png"] {
        assert!(std::fs::metadata(out.join(png)).unwrap().len() > 5_000, "{png}");
    }
    let g = tmp.path().join("g");
    ok(recur(&[
        "gradflow",
        "--seq-len",
        "12",
        "--models",
        "rnn,gru",
        "--hidden",
        "5",
        "--steps",
        "5",
        "--out",
        g.to_str().unwrap(),
        "--quiet",
    ]));
    let flows: Value = serde_json::from_slice(&std::fs::read(g.join("gradflow.json")).unwrap()).unwrap();
    let rnn = flows[0]["initial"].as_array().unwrap();
    assert_eq!(rnn.len(), 12);
    // A vanilla RNN at initialisation: the gradient shrinks going back in time.
    assert!(rnn[0].as_f64().unwrap() < rnn[11].as_f64().unwrap());
    assert!(g.join("gradflow.png").is_file());
}

#[test]
fn demo_attention_writes_its_table_plots_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("attention");
    let o = ok(recur(&[
        "demo",
        "attention",
        "--steps",
        "4",
        "--hidden",
        "6",
        "--batch",
        "4",
        "--lengths",
        "3,5",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let text = stdout(&o);
    for needle in ["exact match", "T=3", "T=5", "none", "additive"] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    let results: Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        for key in ["exact_match", "token_accuracy"] {
            assert!(r[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{key} of {r}");
        }
    }
    let attention: Vec<&str> = results.iter().map(|r| r["attention"].as_str().unwrap()).collect();
    assert_eq!(attention, ["none", "additive", "none", "additive"]);
    for png in ["accuracy.png", "attention.png"] {
        assert!(std::fs::metadata(out.join(png)).unwrap().len() > 2_000, "{png}");
    }
    // The adding-problem demo's options do not mix with another demo's.
    fails_with(recur(&["demo", "--full", "attention"]), "");
}
