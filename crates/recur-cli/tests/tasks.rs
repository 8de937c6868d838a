//! Every `--task` through `recur train` on tiny settings: the metrics each reports, the data files' errors, and
//! `recur generate` on a character model.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn recur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur")).args(args).output().expect("run recur")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Trains 10 tiny steps and returns the final JSON line.
fn train(dir: &Path, task: &[&str]) -> Value {
    let mut args = vec!["train"];
    args.extend(task);
    args.extend(["--hidden", "6", "--batch", "4", "--steps", "10", "--eval-every", "5", "--quiet", "--json"]);
    args.extend(["--out", dir.to_str().unwrap()]);
    let o = recur(&args);
    assert!(o.status.success(), "{task:?}\n{}\n{}", text(&o.stdout), text(&o.stderr));
    serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap()
}

fn finite(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"));
    assert!(x.is_finite(), "{key} = {x}");
    x
}

#[test]
fn built_in_tasks_train_and_report_their_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--task", "copy", "--seq-len", "5"], &["eval_loss", "eval_accuracy"]),
        (&["--task", "reber"], &["eval_strings_correct", "eval_loss"]),
        (&["--task", "tagging", "--seq-len", "8", "--bidirectional"], &["eval_accuracy"]),
        (&["--task", "mackey-glass", "--seq-len", "10", "--horizon", "3"], &["eval_mse", "eval_mae", "eval_nrmse"]),
        (&["--task", "charlm", "--seq-len", "12", "--tbptt", "4", "--layers", "2"], &["eval_bpc"]),
    ];
    for (i, (task, metrics)) in cases.iter().enumerate() {
        let v = train(&tmp.path().join(i.to_string()), task);
        for m in *metrics {
            finite(&v, m);
        }
    }
    // Accuracies are fractions.
    let tagging = train(&tmp.path().join("t"), &["--task", "tagging", "--seq-len", "8"]);
    assert!((0.0..=1.0).contains(&finite(&tagging, "eval_accuracy")));
}

#[test]
fn csv_tasks_train_and_bad_data_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let series = tmp.path().join("series.csv");
    let rows: String = (0..300).map(|i| format!("{i},{}\n", (i as f32 * 0.3).sin())).collect();
    std::fs::write(&series, format!("t,value\n{rows}")).unwrap();
    let s = series.to_str().unwrap();
    let v = train(&tmp.path().join("f"), &["--task", "forecast", "--data", s, "--column", "value", "--window", "8"]);
    finite(&v, "eval_mse");
    let classes = tmp.path().join("classes.csv");
    let mut csv = String::from("id,label,x,y\n");
    for s in 0..12 {
        for t in 0..(2 + s % 3) {
            csv += &format!("s{s},{},{},{}\n", if s % 2 == 0 { "up" } else { "down" }, t as f32 * 0.1, s as f32);
        }
    }
    std::fs::write(&classes, csv).unwrap();
    let v = train(&tmp.path().join("c"), &["--task", "classify", "--data", classes.to_str().unwrap()]);
    assert!((0.0..=1.0).contains(&finite(&v, "eval_accuracy")));

    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "t,value\n0,1.5\n1,oops\n").unwrap();
    let o = recur(&[
        "train",
        "--task",
        "forecast",
        "--data",
        bad.to_str().unwrap(),
        "--column",
        "value",
        "--out",
        tmp.path().join("never").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("bad.csv") && err.contains("line 3") && err.contains("oops"), "{err}");
    assert!(!tmp.path().join("never").exists(), "a failed start leaves no run directory");
    let o = recur(&["train", "--task", "forecast", "--data", s, "--out", tmp.path().join("n2").to_str().unwrap()]);
    assert!(text(&o.stderr).contains("--column"), "{}", text(&o.stderr));
}

#[test]
fn generate_streams_text_from_the_vocabulary_in_the_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, "abcabcabd abcabcabd\n".repeat(20)).unwrap();
    let dir = tmp.path().join("lm");
    let v = train(&dir, &["--task", "charlm", "--data", corpus.to_str().unwrap(), "--seq-len", "10"]);
    finite(&v, "eval_bpc");
    assert!(finite(&v, "chars_per_s") > 0.0);
    let model = dir.join("model.safetensors");
    let m = model.to_str().unwrap();
    let o = recur(&["generate", "--model", m, "--prime", "ab", "--length", "40", "--seed", "1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let generated = out.strip_suffix('\n').unwrap();
    assert!(generated.starts_with("ab"));
    assert_eq!(generated.chars().count(), 42);
    assert!(generated.chars().all(|c| "abcd \n".contains(c)), "{generated:?}");
    let again = recur(&["generate", "--model", m, "--prime", "ab", "--length", "40", "--seed", "1"]);
    assert_eq!(text(&again.stdout), out, "the same seed gives the same text");
    let o = recur(&["generate", "--model", m, "--prime", "xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--prime"), "{}", text(&o.stderr));
}
