//! Every single-node case (ONNX's own node tests in `tests/data/node/`, and onnxruntime's outputs for the options
//! those leave out in `tests/data/ort/`) run by recur: `Y`, `Y_h` and `Y_c` match the expected outputs.

mod common;

use common::{Case, case_folders, max_difference};
use recur_onnx::{OpInputs, RecurrentNode, RecurrentOp, to_f32_tensor};

/// The expected outputs are float32 results of other implementations; recur's sums run in another order.
const TOLERANCE: f32 = 1e-5;

fn run_case(case: &Case) -> Result<f32, String> {
    let graph = case.model.graph.as_ref().unwrap();
    let [node] = graph.node.as_slice() else { return Err("expected one node".into()) };
    let values = case.float_values();
    let op = RecurrentNode::from_node(node, &values).and_then(RecurrentOp::new).map_err(|e| e.to_string())?;
    let names = &op.node().names;
    let get = |name: &str| (!name.is_empty()).then(|| values.get(name)).flatten();
    let lengths = (!names.sequence_lens.is_empty()).then(|| case.integers(&names.sequence_lens)).flatten();
    let inputs = OpInputs {
        x: get(&names.x),
        sequence_lens: lengths.as_deref(),
        initial_h: get(&names.initial_h),
        initial_c: get(&names.initial_c),
    };
    let out = op.run(inputs).map_err(|e| e.to_string())?;
    let mut worst = 0.0f32;
    for (name, expected) in &case.outputs {
        let expected = to_f32_tensor(expected).unwrap();
        let got = match names.outputs.iter().position(|n| n == name) {
            Some(0) => &out.y,
            Some(1) => &out.y_h,
            Some(2) => out.y_c.as_ref().ok_or("no Y_c")?,
            _ => return Err(format!("output `{name}` is not the node's")),
        };
        worst = worst.max(max_difference(name, got, &expected)?);
    }
    Ok(worst)
}

fn run_set(set: &str, at_least: usize) {
    let folders = case_folders(set);
    assert!(folders.len() >= at_least, "{set}: {} cases", folders.len());
    let mut failures = Vec::new();
    for folder in &folders {
        let case = Case::read(folder);
        match run_case(&case) {
            Ok(diff) if diff <= TOLERANCE => {}
            Ok(diff) => failures.push(format!("{}: differs by {diff:e}", case.name)),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases fail:\n{}", failures.len(), folders.len(), failures.join("\n"));
}

#[test]
fn onnx_node_tests_pass() {
    run_set("node", 21);
}

#[test]
fn onnxruntime_cases_pass() {
    run_set("ort", 40);
}
