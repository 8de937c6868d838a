//! `recur forward` end to end: PyTorch's fixtures through the binary, and every bad input as a one-line error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use npyz::WriterBuilder;
use recur::model_file::TensorFile;
use recur::{Mode, RecurrentConfig, Tensor};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur/tests/fixtures/layers")
}

fn write_npy(path: &Path, t: &Tensor) {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd().unwrap();
    w.extend(t.data().iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn recur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur")).args(args).output().expect("run recur")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs the binary on a fixture case, passing the flags a metadata-less file needs.
fn run_case(case: &str, dir: &Path) -> (Output, TensorFile, PathBuf) {
    run_case_with(case, dir, &[])
}

/// [`run_case`] with extra flags.
fn run_case_with(case: &str, dir: &Path, extra: &[&str]) -> (Output, TensorFile, PathBuf) {
    run_fixture(&fixture_dir(), case, dir, extra)
}

/// Runs the binary on case `case` of the fixture folder `folder`, with its input and initial states written as
/// `.npy` into `dir`, the flags a metadata-less model file needs, and `extra`.
fn run_fixture(folder: &Path, case: &str, dir: &Path, extra: &[&str]) -> (Output, TensorFile, PathBuf) {
    let io = TensorFile::read(folder.join(format!("{case}.io.safetensors"))).unwrap();
    let config = RecurrentConfig::from_json(&io.metadata["config"]).unwrap();
    let input = dir.join(format!("{case}.input.npy"));
    write_npy(&input, &io.tensors["input"]);
    let model = folder.join(format!("{case}.model.safetensors"));
    let out = dir.join(format!("{case}.out.safetensors"));
    let mut args: Vec<String> = ["forward", "--model", p(&model), "--input", p(&input), "--output", p(&out)]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for name in ["h0", "c0"] {
        if let Some(t) = io.tensors.get(name) {
            let path = dir.join(format!("{case}.{name}.npy"));
            write_npy(&path, t);
            args.extend([format!("--{name}"), p(&path).to_string()]);
        }
    }
    if config.batch_first {
        args.push("--batch-first".into());
    }
    if config.mode == Mode::RnnRelu {
        args.extend(["--nonlinearity".into(), "relu".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (recur(&args), io, out)
}

fn fixture_cases() -> Vec<String> {
    let index = std::fs::read_to_string(fixture_dir().join("index.json")).unwrap();
    serde_json::from_str(&index).unwrap()
}

/// Asserts that a run succeeded and wrote PyTorch's `output`, `h_n` and `c_n`, and nothing else.
fn assert_reproduces(case: &str, output: &Output, io: &TensorFile, out: &Path) {
    assert!(output.status.success(), "{case}: {}", String::from_utf8_lossy(&output.stderr));
    let got = TensorFile::read(out).unwrap();
    for name in ["output", "h_n", "c_n"] {
        match (got.tensors.get(name), io.tensors.get(name)) {
            (Some(g), Some(w)) => {
                assert_eq!(g.shape(), w.shape(), "{case}: {name}");
                assert!(g.max_abs_diff(w).unwrap() <= 1e-5, "{case}: {name}");
            }
            (None, None) => {}
            _ => panic!("{case}: {name} presence differs"),
        }
    }
    assert_eq!(got.tensors.len(), io.tensors.contains_key("c_n") as usize + 2, "{case}: unexpected outputs");
}

#[test]
fn forward_reproduces_pytorch_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    for case in fixture_cases().iter().step_by(5) {
        let (output, io, out) = run_case(case, dir.path());
        assert_reproduces(case, &output, &io, &out);
    }
}

/// `--stream` runs the model a step at a time and gives the same results, for every unidirectional case: every
/// mode, 1–3 layers, projections, batch-first, unbatched, with and without initial states.
#[test]
fn stream_reproduces_pytorch_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<String> = fixture_cases().into_iter().filter(|c| c.contains("_uni_")).collect();
    assert!(cases.len() > 100);
    let mut unbatched = 0;
    for case in &cases {
        let (output, io, out) = run_case_with(case, dir.path(), &["--stream"]);
        unbatched += (io.metadata.get("unbatched").map(String::as_str) == Some("true")) as usize;
        assert_reproduces(case, &output, &io, &out);
    }
    assert!(unbatched > 0, "some cases are unbatched");
}

#[test]
fn stream_with_a_bidirectional_model_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, _) = run_case_with("lstm_l2_bi_bias1_bf0_h0_1_T3B1I2H2", dir.path(), &["--stream"]);
    assert_one_line_error(&output, "streaming needs a unidirectional model");
    let (output, _, _) =
        run_case_with("lstm_l2_bi_bias1_bf0_h0_1_T3B1I2H2", dir.path(), &["--stream", "--grad-output", "g"]);
    assert!(!output.status.success(), "--stream and --grad-output together");
}

/// Asserts a failed run with one line on stderr that contains `needle`, and no panic.
fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "{stderr:?} should contain {needle:?}");
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let case = "lstm_l2_bi_bias1_bf0_h0_1_T3B1I2H2";
    let model = fixture_dir().join(format!("{case}.model.safetensors"));
    let io = TensorFile::read(fixture_dir().join(format!("{case}.io.safetensors"))).unwrap();
    let good = d.join("x.npy");
    write_npy(&good, &io.tensors["input"]);
    let out = d.join("out.safetensors");

    let wrong_features = d.join("wrong.npy");
    write_npy(&wrong_features, &Tensor::zeros([3, 1, 4]));
    let rank4 = d.join("rank4.npy");
    write_npy(&rank4, &Tensor::zeros([1, 3, 1, 2]));
    let bad_h0 = d.join("h0.npy");
    write_npy(&bad_h0, &Tensor::zeros([2, 1, 2]));
    let corrupt = d.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......").unwrap();
    let missing = d.join("missing.npy");

    let base = |model: &Path, input: &Path| {
        vec![
            "forward".to_string(),
            "--model".into(),
            p(model).into(),
            "--input".into(),
            p(input).into(),
            "--output".into(),
            p(&out).into(),
        ]
    };
    let run = |args: Vec<String>| recur(&args.iter().map(String::as_str).collect::<Vec<_>>());

    assert_one_line_error(&run(base(&model, &wrong_features)), "input: expected shape");
    assert_one_line_error(&run(base(&model, &rank4)), "found [1, 3, 1, 2]");
    assert_one_line_error(&run(base(&model, &missing)), "missing.npy");
    assert_one_line_error(&run(base(&corrupt, &good)), "corrupt.safetensors");
    let mut with_h0 = base(&model, &good);
    with_h0.extend(["--h0".into(), p(&bad_h0).into()]);
    assert_one_line_error(&run(with_h0), "h_0: expected shape [4, 1, 2]");
}

#[test]
fn help_names_every_flag() {
    let output = recur(&["forward", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--model", "--input", "--h0", "--c0", "--batch-first", "--nonlinearity", "--output", "--stream"] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
}

/// The README's example command works as written.
#[test]
fn readme_example_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let model = "crates/recur/tests/fixtures/layers/lstm_l2_uni_bias1_bf0_h0_0_T3B3I2H3.model.safetensors";
    assert!(readme.contains(model) && readme.contains("--input examples/x.npy"), "README names the example files");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let output = recur(&[
        "forward",
        "--model",
        p(&root.join(model)),
        "--input",
        p(&root.join("examples/x.npy")),
        "--output",
        p(&out),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = TensorFile::read(&out).unwrap();
    assert_eq!(got.tensors["output"].shape(), &[6, 3, 3]);
    assert_eq!(got.tensors["c_n"].shape(), &[2, 3, 3]);
}

/// Writes a fixture's upstream gradients as the file `--grad-output` reads.
fn write_upstream(io: &TensorFile, path: &Path) {
    let upstream: Vec<(String, Tensor)> = [("grad_output", "output"), ("grad_h_n", "h_n"), ("grad_c_n", "c_n")]
        .iter()
        .filter_map(|(from, to)| io.tensors.get(*from).map(|t| (to.to_string(), t.clone())))
        .collect();
    TensorFile::write(path, &upstream, &Default::default()).unwrap();
}

/// Asserts that a run succeeded and wrote every tensor of the fixture it names, within 1e-5 relative to
/// `max(1, |reference|)`, and nothing the fixture lacks.
fn assert_matches_fixture(case: &str, output: &Output, io: &TensorFile, out: &Path) {
    assert!(output.status.success(), "{case}: {}", String::from_utf8_lossy(&output.stderr));
    let got = TensorFile::read(out).unwrap();
    assert!(got.tensors.keys().any(|k| k.starts_with("grad.")), "{case}: gradients written");
    for (name, g) in &got.tensors {
        let w = io.tensors.get(name).unwrap_or_else(|| panic!("{case}: unexpected output {name}"));
        assert_eq!(g.shape(), w.shape(), "{case}: {name}");
        let err = g.data().iter().zip(w.data()).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max);
        assert!(err <= 1e-5, "{case}: {name} differs by {err}");
    }
}

/// `--grad-output` backpropagates through time and writes PyTorch's gradients.
#[test]
fn grad_output_reproduces_pytorch_gradients() {
    let dir = tempfile::tempdir().unwrap();
    for case in fixture_cases().iter().step_by(7) {
        let io = TensorFile::read(fixture_dir().join(format!("{case}.io.safetensors"))).unwrap();
        let grads = dir.path().join(format!("{case}.grads.safetensors"));
        write_upstream(&io, &grads);
        let (output, io, out) = run_case_with(case, dir.path(), &["--grad-output", p(&grads)]);
        assert_matches_fixture(case, &output, &io, &out);
        let expected = io.tensors.keys().filter(|k| k.starts_with("grad.")).count();
        let written = TensorFile::read(&out).unwrap().tensors.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(written, expected, "{case}: every gradient PyTorch computed");
    }
}

#[test]
fn grad_output_with_unknown_tensor_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let case = "lstm_l2_bi_bias1_bf0_h0_1_T3B1I2H2";
    let io = TensorFile::read(fixture_dir().join(format!("{case}.io.safetensors"))).unwrap();
    let input = d.path().join("x.npy");
    write_npy(&input, &io.tensors["input"]);
    let grads = d.path().join("g.safetensors");
    TensorFile::write(&grads, &[("outputs".to_string(), io.tensors["grad_output"].clone())], &Default::default())
        .unwrap();
    let model = fixture_dir().join(format!("{case}.model.safetensors"));
    let out = d.path().join("out.safetensors");
    let run = || {
        recur(&["forward", "--model", p(&model), "--input", p(&input), "--output", p(&out), "--grad-output", p(&grads)])
    };
    let output = run();
    assert_one_line_error(&output, "no tensor `output`");
    TensorFile::write(&grads, &[("output".to_string(), Tensor::zeros([3, 1, 5]))], &Default::default()).unwrap();
    let output = run();
    assert_one_line_error(&output, "grad_output: expected shape [3, 1, 4]");
}

fn write_lengths(path: &Path, lengths: &[i64]) {
    let mut bytes = Vec::new();
    let shape = [lengths.len() as u64];
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd().unwrap();
    w.extend(lengths.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `--lengths` reproduces PyTorch's packed-sequence fixtures, with and without `--grad-output`.
#[test]
fn lengths_reproduce_pytorch_packed_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lengths_dir = fixture_dir().join("../lengths");
    let cases: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(lengths_dir.join("index.json")).unwrap()).unwrap();
    for case in cases.iter().step_by(6) {
        let io = TensorFile::read(lengths_dir.join(format!("{case}.io.safetensors"))).unwrap();
        let lengths = d.join(format!("{case}.len.npy"));
        write_lengths(&lengths, &io.tensors["lengths"].data().iter().map(|&l| l as i64).collect::<Vec<_>>());
        let grads = d.join(format!("{case}.g.safetensors"));
        write_upstream(&io, &grads);
        let extra = ["--lengths", p(&lengths), "--grad-output", p(&grads)];
        let (output, io, out) = run_fixture(&lengths_dir, case, d, &extra);
        assert_matches_fixture(case, &output, &io, &out);
    }
}

#[test]
fn bad_lengths_fail_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let case = "lstm_l2_bi_bias1_bf0_h0_1_T3B1I2H2";
    let io = TensorFile::read(fixture_dir().join(format!("{case}.io.safetensors"))).unwrap();
    let input = d.path().join("x.npy");
    write_npy(&input, &io.tensors["input"]);
    let model = fixture_dir().join(format!("{case}.model.safetensors"));
    let out = d.path().join("out.safetensors");
    let lengths = d.path().join("l.npy");
    let run = || {
        recur(&["forward", "--model", p(&model), "--input", p(&input), "--lengths", p(&lengths), "--output", p(&out)])
    };
    write_lengths(&lengths, &[4]);
    assert_one_line_error(&run(), "lengths[0] = 4 is out of range (valid: 1..=3");
    write_lengths(&lengths, &[0]);
    assert_one_line_error(&run(), "lengths[0] = 0 is out of range");
    write_lengths(&lengths, &[1, 2]);
    assert_one_line_error(&run(), "lengths: expected shape [1]");
    write_npy(&lengths, &Tensor::zeros([1]));
    assert_one_line_error(&run(), "expected int64 or int32");
}

/// `--stream` checks the input and states as `forward` does, each failure one line.
#[test]
fn stream_bad_inputs_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = fixture_dir().join("lstm_l2_uni_bias1_bf0_h0_0_T3B3I2H3.model.safetensors");
    let out = d.join("out.safetensors");
    let npy = |name: &str, shape: &[usize]| {
        let path = d.join(name);
        write_npy(&path, &Tensor::zeros(shape));
        path
    };
    let run = |input: &Path, states: &[(&str, &Path)]| {
        let mut args = vec!["forward", "--stream", "--model", p(&model), "--input", p(input), "--output", p(&out)];
        for (flag, path) in states {
            args.extend([*flag, p(path)]);
        }
        recur(&args)
    };
    let (batched, unbatched) = (npy("x.npy", &[4, 1, 2]), npy("xu.npy", &[4, 2]));
    assert_one_line_error(&run(&npy("wrong.npy", &[3, 1, 4]), &[]), "input: expected shape [T, B, I]");
    assert_one_line_error(&run(&npy("empty.npy", &[0, 1, 2]), &[]), "T ≥ 1 and B ≥ 1");
    assert_one_line_error(&run(&batched, &[("--h0", &npy("h.npy", &[2, 3]))]), "h_0: expected shape (L, B, H)");
    assert_one_line_error(&run(&batched, &[("--c0", &npy("c.npy", &[2, 2, 3]))]), "c_0: expected shape [2, 1, 3]");
    let h0 = npy("hb.npy", &[2, 1, 3]);
    assert_one_line_error(&run(&unbatched, &[("--h0", &h0)]), "h_0: expected shape (L, H) for unbatched input");
    let output = run(&unbatched, &[("--h0", &npy("hu.npy", &[2, 3])), ("--c0", &npy("cu.npy", &[2, 3]))]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = TensorFile::read(&out).unwrap();
    assert_eq!(got.tensors["output"].shape(), &[4, 3]);
    assert_eq!(got.tensors["h_n"].shape(), &[2, 3]);
    assert_eq!(got.tensors["c_n"].shape(), &[2, 3]);
}

/// A model file whose `config` declares sizes its tensors do not have fails with one line naming the field,
/// before anything of the declared sizes is allocated (built as declared, these layers would need from 4 GiB to
/// more than `usize` holds).
#[test]
fn model_files_that_lie_about_their_sizes_fail_with_one_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let case = "lstm_l2_uni_bias1_bf0_h0_0_T3B3I2H3";
    let mut tensors: Vec<(String, Tensor)> = TensorFile::read(fixture_dir().join(format!("{case}.model.safetensors")))
        .unwrap()
        .tensors
        .into_iter()
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let io = TensorFile::read(fixture_dir().join(format!("{case}.io.safetensors"))).unwrap();
    let input = d.join("x.npy");
    write_npy(&input, &io.tensors["input"]);
    let out = d.join("out.safetensors");
    for (key, value) in [
        ("hidden_size", 1u64 << 27),
        ("hidden_size", 1 << 31),
        ("hidden_size", 1_000_000_000_000_000_000),
        ("input_size", (1 << 32) + 1),
        ("num_layers", 1 << 31),
    ] {
        let mut config = serde_json::json!({"mode": "LSTM", "input_size": 2, "hidden_size": 3, "num_layers": 2});
        config[key] = value.into();
        let model = d.join(format!("{key}-{value}.safetensors"));
        let metadata = std::collections::HashMap::from([("config".to_string(), config.to_string())]);
        TensorFile::write(&model, &tensors, &metadata).unwrap();
        let output = recur(&["forward", "--model", p(&model), "--input", p(&input), "--output", p(&out)]);
        assert_one_line_error(&output, &format!("`{key}` = {value} does not match the tensors"));
    }
}

/// A malformed `.npy` header is one line saying what was expected, not a parser's trace.
#[test]
fn malformed_npy_header_fails_with_one_line_saying_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture_dir().join("lstm_l2_uni_bias1_bf0_h0_0_T3B3I2H3.model.safetensors");
    let input = dir.path().join("bad.npy");
    let header = b"{'descr': '<f4' 'fortran_order': False, 'shape': (3, 3, 2)}\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    bytes.extend([0u8; 72]);
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out.safetensors");
    let output = recur(&["forward", "--model", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert_one_line_error(&output, "bad.npy: not a valid .npy file: the header is not a Python literal (at 1:");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected a header like {'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)}"));
}
