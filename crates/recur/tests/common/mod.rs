//! What the parity tests share: reading a folder of PyTorch fixtures (`index.json` and one safetensors file a case)
//! and comparing recur's numbers with them. Each test crate uses part of it.

#![allow(dead_code)]

use std::path::Path;

use recur::Tensor;
use recur::model_file::TensorFile;

/// recur's numbers must match PyTorch's to this, relative to `max(1, |PyTorch's|)`.
pub const TOLERANCE: f32 = 1e-5;

/// One fixture: its tensors and string metadata.
pub struct Case {
    pub name: String,
    pub file: TensorFile,
}

impl Case {
    pub fn tensor(&self, key: &str) -> &Tensor {
        self.file.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor `{key}`", self.name))
    }

    pub fn data(&self, key: &str) -> &[f32] {
        self.tensor(key).data()
    }

    pub fn optional(&self, key: &str) -> Option<&[f32]> {
        self.file.tensors.get(key).map(Tensor::data)
    }

    pub fn meta(&self, key: &str) -> &str {
        self.file.metadata.get(key).unwrap_or_else(|| panic!("{}: no metadata `{key}`", self.name))
    }

    pub fn integers(&self, key: &str) -> Vec<i64> {
        self.data(key).iter().map(|&v| v as i64).collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        match self.meta(key) {
            "true" => true,
            "false" => false,
            other => panic!("{}: `{key}` is {other:?}", self.name),
        }
    }

    pub fn size(&self, key: &str) -> usize {
        self.meta(key).parse().unwrap_or_else(|e| panic!("{}: `{key}`: {e}", self.name))
    }

    /// Checks `got` against the reference `key` and returns the largest relative error.
    pub fn compare(&self, key: &str, got: &[f32]) -> f32 {
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

/// The cases of `tests/fixtures/<folder>` whose metadata `kind` is `kind` (at least one).
pub fn cases(folder: &str, kind: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(folder);
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
    assert!(!cases.is_empty(), "no `{kind}` fixtures in {folder}");
    cases
}

/// Prints the largest error of a kind of case, for the test log.
pub fn report(what: &str, errors: impl IntoIterator<Item = f32>) {
    let max = errors.into_iter().fold(0.0, f32::max);
    println!("{what}: max relative error vs PyTorch {max:.3e}");
}
