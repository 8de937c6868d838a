//! `recur quantize`: a trained model stored in bf16, f16 and int8 keeps its metadata, so `recur info`, `eval` and
//! `generate` read it as they read the f32 file; and what cannot be quantized is one line on standard error.

use std::process::{Command, Output};

fn recur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur")).args(args).output().expect("run recur")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = recur(args);
    assert!(o.status.success(), "{args:?}\n{}\n{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn a_quantized_character_model_evaluates_and_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, "abcabcabd abcabcabd\n".repeat(20)).unwrap();
    let run = tmp.path().join("lm");
    let run = run.to_str().unwrap();
    let data = corpus.to_str().unwrap();
    ok(&["train", "--task", "charlm", "--data", data, "--seq-len", "10", "--hidden", "16", "--batch", "4"]
        .into_iter()
        .chain(["--steps", "20", "--quiet", "--out", run])
        .collect::<Vec<_>>());
    for scheme in ["bf16", "f16", "int8", "int8-tensor"] {
        let out = tmp.path().join(format!("{scheme}.safetensors"));
        let out = out.to_str().unwrap();
        let said = ok(&["quantize", run, "-o", out, "--to", scheme]);
        assert!(said.contains(&format!("({scheme})")) && said.contains("max |Δ|"), "{said}");
        let info = ok(&["info", out]);
        assert!(info.contains(&format!("quantization: {scheme}")), "{info}");
        assert!(info.contains("rnn.weight_hh_l0  [64, 16]") && info.contains(" f32"), "{info}");
        let eval = ok(&["eval", "--model", out]);
        assert!(eval.contains("eval_bpc"), "{eval}");
        let generated = ok(&["generate", "--model", out, "--prime", "ab", "--length", "30", "--temperature", "0"]);
        assert_eq!(generated.trim_end_matches('\n').chars().count(), 32, "{generated:?}");

        // Quantizing twice is refused: the weights are no longer f32.
        let again = recur(&["quantize", out, "-o", out, "--to", "int8"]);
        assert_eq!(again.status.code(), Some(1));
        assert!(text(&again.stderr).contains("already stored"), "{}", text(&again.stderr));
    }
    let bad = recur(&["quantize", run, "-o", "x.safetensors", "--to", "int4"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(text(&bad.stderr).lines().count(), 1, "{}", text(&bad.stderr));
}
