//! `recur train` on a sequence-to-sequence task, then `recur eval` and `recur translate` on its run, on tiny
//! settings; and the one-line errors of bad input.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;

use common::{fails_with, last_json, ok, recur, stdout};

/// Trains `reverse` on sequences of up to 4 letters with a small GRU encoder-decoder.
fn train_reverse(dir: &Path, steps: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--task",
        "reverse",
        "--seq-len",
        "4",
        "--hidden",
        "16",
        "--batch",
        "16",
        "--steps",
        steps,
        "--eval-every",
        "20",
        "--log-every",
        "10",
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(extra);
    recur(&args)
}

fn fraction(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing from {v}"));
    assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    x
}

#[test]
fn train_eval_and_translate_a_reverse_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = ok(train_reverse(&dir, "40", &["--json", "--attention", "general", "--bidirectional"]));
    let v = last_json(&o);
    assert_eq!(
        (v["task"].as_str(), v["attention"].as_str(), v["steps"].as_u64()),
        (Some("reverse"), Some("general"), Some(40))
    );
    let (exact, tokens) = (fraction(&v, "exact_match"), fraction(&v, "token_accuracy"));
    for key in ["loss", "eval_loss", "seconds"] {
        assert!(v[key].as_f64().is_some_and(|x| x.is_finite() && x >= 0.0), "{key} in {v}");
    }
    for file in ["run.json", "metrics.jsonl", "model.safetensors", "curves.png"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let records = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 4);
    assert!(records.lines().last().unwrap().contains("eval_exact_match"));

    // eval rebuilds the same held-out set from the model file alone.
    let e = last_json(&ok(recur(&["eval", "--model", dir.to_str().unwrap(), "--json"])));
    assert_eq!(e["exact_match"].as_f64(), Some(exact));
    assert_eq!(e["token_accuracy"].as_f64(), Some(tokens));
    assert_eq!(e["count"].as_u64(), Some(200));
    let other = last_json(&ok(recur(&["eval", "--model", dir.to_str().unwrap(), "--json", "--seed", "5"])));
    fraction(&other, "exact_match");
    fails_with(recur(&["eval", "--model", dir.to_str().unwrap(), "--task", "sort"]), "--task sort");

    // translate, greedily and by beam search, with a heatmap of the attention.
    let model = dir.join("model.safetensors");
    let heatmap = tmp.path().join("attention.png");
    for beam in ["1", "3"] {
        let t = last_json(&ok(recur(&[
            "translate",
            "--model",
            model.to_str().unwrap(),
            "--input",
            "abcd",
            "--beam",
            beam,
            "--json",
            "--heatmap",
            heatmap.to_str().unwrap(),
        ])));
        let output = t["output"].as_str().unwrap();
        assert!(output.chars().all(|c| ('a'..='j').contains(&c)), "{output:?}");
        assert!(t["log_prob"].as_f64().unwrap() <= 0.0);
        assert_eq!(&std::fs::read(&heatmap).unwrap()[1..4], b"PNG");
    }
    let plain = ok(recur(&["translate", "--model", dir.to_str().unwrap(), "--input", "jihg"]));
    assert_eq!(stdout(&plain).lines().count(), 1);

    fails_with(recur(&["translate", "--model", dir.to_str().unwrap(), "--input", "abzc"]), "'z'");
    fails_with(recur(&["translate", "--model", dir.to_str().unwrap(), "--input", "abc", "--beam", "0"]), "--beam");
    fails_with(recur(&["train", "--resume", dir.to_str().unwrap()]), "cannot be resumed");
}

#[test]
fn attention_none_and_bad_options_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain");
    let v = last_json(&ok(train_reverse(&dir, "2", &["--json", "--attention", "none", "--model", "lstm"])));
    assert_eq!((v["attention"].as_str(), v["model"].as_str()), (Some("none"), Some("lstm")));
    fraction(&v, "exact_match");
    let heatmap = tmp.path().join("h.png");
    fails_with(
        recur(&[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            "ab",
            "--heatmap",
            heatmap.to_str().unwrap(),
        ]),
        "no attention",
    );
    let bad = tmp.path().join("bad");
    fails_with(
        recur(&["train", "--task", "adding", "--attention", "additive", "--out", bad.to_str().unwrap()]),
        "--attention",
    );
    fails_with(train_reverse(&bad, "2", &["--attention", "cosine"]), "cosine");
    fails_with(train_reverse(&bad, "2", &["--dropout", "0.1"]), "--dropout");
    fails_with(
        recur(&["train", "--task", "add", "--seq-len", "2", "--steps", "1", "--out", bad.to_str().unwrap()]),
        "--seq-len",
    );
    assert!(!bad.join("run.json").exists(), "a rejected run leaves no run behind");
}
