//! Exported models run by onnxruntime: every case of `common::export::cases` is written in ONNX's node-test
//! layout (the model and, at two batch sizes and lengths through the same file, its inputs and recur's outputs)
//! and checked by `tools/check_onnx_export.py` (`onnx.checker` with `full_check`, then onnxruntime within 1e-5).
//!
//! The check needs Python with `tools/requirements-onnx.txt`, named by `RECUR_ONNX_PYTHON` (`.ci/run` sets it);
//! without it the test says it skipped the check and passes.

mod common;

use std::path::Path;
use std::process::Command;

use common::export::cases;

#[test]
fn exported_models_pass_onnx_checker_and_match_recur_in_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    for case in &cases {
        case.write_folder(dir.path());
    }
    let Some(python) = std::env::var_os("RECUR_ONNX_PYTHON") else {
        eprintln!(
            "skipped the onnxruntime check of {} exported models: RECUR_ONNX_PYTHON is not set (`.ci/run` sets it)",
            cases.len()
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/check_onnx_export.py");
    let out = Command::new(&python).arg(&script).arg(dir.path()).output().expect("run RECUR_ONNX_PYTHON");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the onnxruntime check failed:\n{report}");
}
