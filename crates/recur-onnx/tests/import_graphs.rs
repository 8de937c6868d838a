//! Whole graphs imported as recur models and run on their own inputs: files from `torch.onnx.export`
//! (`tests/data/torch/`, PyTorch's outputs) and the single-node cases (`tests/data/node/`, `tests/data/ort/`).
//! Graphs recur cannot express as a model (a reverse-only layer, `layout = 1`) are errors naming the node.

mod common;

use common::{Case, case_folders, max_difference};
use prost::Message;
use recur_onnx::{Error, import_model, to_f32_tensor};

const TOLERANCE: f32 = 1e-5;

/// The case's model with the weights it is fed (`W`, `R`, `B`, `P` of a single-node case) made initializers, as a
/// trained model holds them.
fn model_bytes(folder: &std::path::Path) -> Vec<u8> {
    let case = Case::read(folder);
    if case.model.graph.as_ref().unwrap().node.len() > 1 {
        return std::fs::read(folder.join("model.onnx")).unwrap();
    }
    let mut model = case.model.clone();
    let graph = model.graph.as_mut().unwrap();
    let node = graph.node[0].clone();
    let weights: Vec<String> = [1, 2, 3, 7].iter().filter_map(|&k| node.input.get(k).cloned()).collect();
    for name in weights.iter().filter(|n| case.inputs.contains_key(*n)) {
        let mut tensor = case.inputs[name].clone();
        tensor.name = Some(name.clone());
        graph.initializer.push(tensor);
        graph.input.retain(|i| i.name() != name);
    }
    model.encode_to_vec()
}

/// Imports the case's model and compares every output of every data set it has; the largest difference.
fn check(folder: &std::path::Path) -> Result<f32, String> {
    let imported = import_model(&model_bytes(folder)).map_err(|e| format!("import: {e}"))?;
    let mut worst = 0.0f32;
    for set in 0.. {
        let Some(case) = Case::read_set(folder, set) else { break };
        let outputs = imported.run(&case.input_values()).map_err(|e| format!("set {set}: {e}"))?;
        for (name, expected) in &case.outputs {
            let got = outputs.get(name).ok_or_else(|| format!("set {set}: no output `{name}`"))?;
            worst = worst.max(max_difference(&format!("set {set} {name}"), got, &to_f32_tensor(expected).unwrap())?);
        }
    }
    Ok(worst)
}

fn failures(folders: &[std::path::PathBuf], skip: impl Fn(&str) -> bool) -> Vec<String> {
    let mut failures = Vec::new();
    for folder in folders {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        if skip(&name) {
            continue;
        }
        match check(folder) {
            Ok(diff) if diff <= TOLERANCE => {}
            Ok(diff) => failures.push(format!("{name}: differs by {diff:e}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    failures
}

/// Every model `recur export` writes in the tests (`common::export::cases`) reads back, and gives the outputs recur
/// gave, at two batch sizes and lengths through the same file.
#[test]
fn recurs_own_exports_import_and_give_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let folders: Vec<_> = common::export::cases().iter().map(|case| case.write_folder(dir.path())).collect();
    let failures = failures(&folders, |_| false);
    assert!(failures.is_empty(), "{} of {} fail:\n{}", failures.len(), folders.len(), failures.join("\n"));
}

#[test]
fn pytorch_exports_import_and_give_pytorchs_outputs() {
    let folders = case_folders("torch");
    assert!(folders.len() >= 24, "{} torch cases", folders.len());
    let failures = failures(&folders, |_| false);
    assert!(failures.is_empty(), "{} of {} fail:\n{}", failures.len(), folders.len(), failures.join("\n"));
}

/// Whether a single-node case's node runs backwards only or batch-first, which a recur model cannot express.
fn not_a_model(folder: &std::path::Path) -> Option<&'static str> {
    let case = Case::read(folder);
    let node = &case.model.graph.as_ref().unwrap().node[0];
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name() == name);
    if attribute("direction").and_then(|a| a.s.as_deref()) == Some(b"reverse") {
        return Some("reverse-only");
    }
    if attribute("layout").and_then(|a| a.i) == Some(1) {
        return Some("layout = 1");
    }
    None
}

#[test]
fn single_node_graphs_import_as_layers() {
    let mut folders = case_folders("node");
    folders.extend(case_folders("ort"));
    let mut refused = 0;
    for folder in &folders {
        if let Some(why) = not_a_model(folder) {
            let err = import_model(&model_bytes(folder)).unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{}: {err}", folder.display());
            let text = err.to_string();
            assert!(text.contains("reverse-only") || text.contains("layout = 1"), "{why}: {text}");
            refused += 1;
        }
    }
    assert!(refused >= 5, "{refused} refused");
    let failures =
        failures(&folders, |name| not_a_model(&folders.iter().find(|f| f.ends_with(name)).unwrap().clone()).is_some());
    assert!(failures.is_empty(), "{} fail:\n{}", failures.len(), failures.join("\n"));
}
