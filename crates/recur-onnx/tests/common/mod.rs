//! Reading a case folder of ONNX's node-test format: `model.onnx` and `test_data_set_0/{input,output}_N.pb`,
//! the `.pb` files in the order of the graph's inputs and outputs.

#![allow(dead_code)]

pub mod export;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use recur::Tensor;
use recur_onnx::proto::{ModelProto, TensorProto};
use recur_onnx::{read_model, read_tensor, to_f32_tensor, to_integer_tensor};

/// One case: its model and its named tensors.
pub struct Case {
    pub name: String,
    pub model: ModelProto,
    /// The graph's inputs, by name.
    pub inputs: HashMap<String, TensorProto>,
    /// The graph's outputs, by name, in order.
    pub outputs: Vec<(String, TensorProto)>,
}

impl Case {
    /// The case in `folder` with its first data set.
    pub fn read(folder: &Path) -> Case {
        Self::read_set(folder, 0).expect("a case has test_data_set_0")
    }

    /// The case in `folder` with data set `set`, if it has one.
    pub fn read_set(folder: &Path, set: usize) -> Option<Case> {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let model = read_model(&fs::read(folder.join("model.onnx")).unwrap()).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let data = folder.join(format!("test_data_set_{set}"));
        if !data.is_dir() {
            return None;
        }
        let read = |prefix: &str, k: usize| {
            let path = data.join(format!("{prefix}_{k}.pb"));
            path.exists().then(|| read_tensor(&fs::read(&path).unwrap()).unwrap())
        };
        // Initializers may also be listed as inputs; only those with a file were fed.
        let inputs = graph
            .input
            .iter()
            .enumerate()
            .filter_map(|(k, v)| read("input", k).map(|t| (v.name().to_owned(), t)))
            .collect();
        let outputs = graph
            .output
            .iter()
            .enumerate()
            .filter_map(|(k, v)| read("output", k).map(|t| (v.name().to_owned(), t)))
            .collect();
        Some(Case { name, model, inputs, outputs })
    }

    /// The inputs as an imported model takes them.
    pub fn input_values(&self) -> HashMap<String, recur_onnx::InputValue> {
        self.inputs
            .iter()
            .map(|(name, t)| {
                let value = match to_f32_tensor(t) {
                    Ok(f) => recur_onnx::InputValue::Float(f),
                    Err(_) => {
                        let ints = to_integer_tensor(t).unwrap();
                        let shape = ints.shape().to_vec();
                        recur_onnx::InputValue::Int(ints.into_data(), shape)
                    }
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// Every float input and initializer, by name.
    pub fn float_values(&self) -> HashMap<String, Tensor> {
        let graph = self.model.graph.as_ref().unwrap();
        let fed = self.inputs.iter().filter_map(|(n, t)| to_f32_tensor(t).ok().map(|t| (n.clone(), t)));
        let init = graph.initializer.iter().filter_map(|t| to_f32_tensor(t).ok().map(|v| (t.name().to_owned(), v)));
        init.chain(fed).collect()
    }

    /// An integer input's values.
    pub fn integers(&self, name: &str) -> Option<Vec<i64>> {
        self.inputs.get(name).map(|t| to_integer_tensor(t).unwrap().into_data())
    }
}

/// The case folders under `tests/data/<set>/`, sorted.
pub fn case_folders(set: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(set);
    let Ok(entries) = fs::read_dir(&root) else { return Vec::new() };
    let mut folders: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    folders.sort();
    folders
}

/// The largest absolute difference between two tensors of the same shape, or an error naming the mismatch.
pub fn max_difference(what: &str, got: &Tensor, want: &Tensor) -> Result<f32, String> {
    if got.shape() != want.shape() {
        return Err(format!("{what}: shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    Ok(got.data().iter().zip(want.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
}
