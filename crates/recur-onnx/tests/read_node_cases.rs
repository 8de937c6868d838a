//! Reads every ONNX node-test case under `tests/data/node/` (see its README): the model, its single recurrent node
//! and all input and output tensors, and checks that the tensors' shapes agree with each other, with the graph's
//! declared shapes and with the node's attributes. The models are not run here.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use recur_onnx::proto::tensor_shape_proto::dimension::Value as DimensionValue;
use recur_onnx::proto::type_proto::Value as TypeValue;
use recur_onnx::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use recur_onnx::{read_model, read_tensor, to_f32_tensor, to_integer_tensor};

/// The twelve cases of the onnx 1.22.0 wheel and the nine generated reverse and bidirectional ones.
const CASES: usize = 21;

fn case_folders() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/node");
    let mut folders: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();
    folders
}

#[test]
fn every_case_reads_and_its_shapes_agree_with_the_node() {
    let folders = case_folders();
    assert_eq!(folders.len(), CASES, "case folders: {folders:?}");
    let failures: Vec<String> = folders
        .iter()
        .filter_map(|folder| check_case(folder).err().map(|e| format!("{}: {e}", folder.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_cases_cover_every_operator_and_direction() {
    let mut seen = Vec::new();
    for folder in case_folders() {
        let model = read_model(&fs::read(folder.join("model.onnx")).unwrap()).unwrap();
        let node = &model.graph.unwrap().node[0];
        seen.push((node.op_type().to_owned(), direction(node).unwrap()));
    }
    for op in ["LSTM", "GRU", "RNN"] {
        for dir in ["forward", "reverse", "bidirectional"] {
            assert!(seen.contains(&(op.to_owned(), dir.to_owned())), "no {dir} {op} case");
        }
    }
}

/// The sizes a recurrent node's tensors must share.
struct Sizes {
    gates: usize,
    directions: usize,
    hidden: usize,
    batch_first: bool,
}

fn check_case(folder: &Path) -> Result<(), String> {
    let model = read_model(&read(&folder.join("model.onnx"))?).map_err(|e| e.to_string())?;
    let graph = model.graph.ok_or("model has no graph")?;
    let [node] = graph.node.as_slice() else {
        return Err(format!("expected one node, found {}", graph.node.len()));
    };
    let gates = match node.op_type() {
        "LSTM" => 4,
        "GRU" => 3,
        "RNN" => 1,
        other => return Err(format!("expected an LSTM, GRU or RNN node, found {other}")),
    };
    let directions = if direction(node)? == "bidirectional" { 2 } else { 1 };
    let hidden = usize::try_from(int_attribute(node, "hidden_size")?.ok_or("no hidden_size attribute")?)
        .map_err(|e| e.to_string())?;
    let batch_first = int_attribute(node, "layout")?.unwrap_or(0) == 1;
    let sizes = Sizes { gates, directions, hidden, batch_first };

    let data = folder.join("test_data_set_0");
    let inputs = read_tensors(&data, "input", &graph.input)?;
    let outputs = read_tensors(&data, "output", &graph.output)?;
    check_declared_shapes(&graph, &inputs, &outputs)?;

    let x = inputs.get("X").ok_or("no X tensor")?;
    let [a, b, features] = x.dims[..] else { return Err(format!("X: expected rank 3, found {:?}", x.dims)) };
    let (steps, batch) = if batch_first { (b, a) } else { (a, b) };

    for (position, name) in node.input.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let tensor = inputs.get(name).ok_or_else(|| format!("node input `{name}` has no .pb file"))?;
        let expected = input_shape(position, &sizes, steps, batch, features)?;
        check_shape(name, &tensor.dims, &expected)?;
        if position == 4 {
            check_sequence_lens(name, tensor, steps)?;
        }
    }
    for (position, name) in node.output.iter().enumerate() {
        // An unnamed output is not produced; a named one may be left out of the test data.
        let Some(tensor) = outputs.get(name).filter(|_| !name.is_empty()) else { continue };
        let expected = output_shape(position, &sizes, steps, batch)?;
        check_shape(name, &tensor.dims, &expected)?;
    }
    Ok(())
}

/// The shape ONNX requires of the node's input at `position` (X, W, R, B, sequence_lens, initial_h, initial_c, P).
fn input_shape(position: usize, s: &Sizes, steps: usize, batch: usize, features: usize) -> Result<Vec<usize>, String> {
    let (d, g, h) = (s.directions, s.gates, s.hidden);
    let state = if s.batch_first { vec![batch, d, h] } else { vec![d, batch, h] };
    Ok(match position {
        0 if s.batch_first => vec![batch, steps, features],
        0 => vec![steps, batch, features],
        1 => vec![d, g * h, features],
        2 => vec![d, g * h, h],
        3 => vec![d, 2 * g * h],
        4 => vec![batch],
        5 | 6 => state,
        7 => vec![d, 3 * h],
        _ => return Err(format!("unexpected input at position {position}")),
    })
}

/// The shape ONNX requires of the node's output at `position` (Y, Y_h, Y_c).
fn output_shape(position: usize, s: &Sizes, steps: usize, batch: usize) -> Result<Vec<usize>, String> {
    let (d, h) = (s.directions, s.hidden);
    Ok(match position {
        0 if s.batch_first => vec![batch, steps, d, h],
        0 => vec![steps, d, batch, h],
        1 | 2 if s.batch_first => vec![batch, d, h],
        1 | 2 => vec![d, batch, h],
        _ => return Err(format!("unexpected output at position {position}")),
    })
}

fn check_shape(name: &str, found: &[usize], expected: &[usize]) -> Result<(), String> {
    if found == expected { Ok(()) } else { Err(format!("{name}: expected shape {expected:?}, found {found:?}")) }
}

fn check_sequence_lens(name: &str, tensor: &Converted, steps: usize) -> Result<(), String> {
    let lens = tensor.lengths.as_ref().ok_or_else(|| format!("{name}: expected an integer tensor"))?;
    match lens.iter().find(|&&len| len < 1 || len > steps as i64) {
        Some(len) => Err(format!("{name}: length {len} outside 1..={steps}")),
        None => Ok(()),
    }
}

/// A tensor read from a `.pb` file and converted: `f32` data, or integer data for `sequence_lens`.
struct Converted {
    dims: Vec<usize>,
    lengths: Option<Vec<i64>>,
}

/// Reads `<kind>_0.pb`, `<kind>_1.pb`, … in the order of the graph's `values`, checking each file's tensor name.
fn read_tensors(data: &Path, kind: &str, values: &[ValueInfoProto]) -> Result<HashMap<String, Converted>, String> {
    let mut tensors = HashMap::new();
    for (index, value) in values.iter().enumerate() {
        let path = data.join(format!("{kind}_{index}.pb"));
        let tensor = read_tensor(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        if tensor.name() != value.name() {
            return Err(format!("{}: expected tensor `{}`, found `{}`", path.display(), value.name(), tensor.name()));
        }
        tensors.insert(value.name().to_owned(), convert(&tensor).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let extra = data.join(format!("{kind}_{}.pb", values.len()));
    if extra.exists() {
        return Err(format!("{}: no graph {kind} for it", extra.display()));
    }
    Ok(tensors)
}

fn convert(tensor: &TensorProto) -> recur_onnx::Result<Converted> {
    if tensor.name() == "sequence_lens" {
        let lens = to_integer_tensor(tensor)?;
        Ok(Converted { dims: lens.shape().to_vec(), lengths: Some(lens.into_data()) })
    } else {
        let values = to_f32_tensor(tensor)?;
        Ok(Converted { dims: values.shape().to_vec(), lengths: None })
    }
}

/// Each tensor's shape equals the one the graph declares for it.
fn check_declared_shapes(
    graph: &GraphProto,
    inputs: &HashMap<String, Converted>,
    outputs: &HashMap<String, Converted>,
) -> Result<(), String> {
    for (values, tensors) in [(&graph.input, inputs), (&graph.output, outputs)] {
        for value in values {
            let declared = declared_shape(value)?;
            check_shape(&format!("declared {}", value.name()), &tensors[value.name()].dims, &declared)?;
        }
    }
    Ok(())
}

fn declared_shape(value: &ValueInfoProto) -> Result<Vec<usize>, String> {
    let name = value.name();
    let Some(TypeValue::TensorType(tensor)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(format!("{name}: expected a tensor type"));
    };
    let shape = tensor.shape.as_ref().ok_or_else(|| format!("{name}: no declared shape"))?;
    shape
        .dim
        .iter()
        .map(|dim| match dim.value {
            Some(DimensionValue::DimValue(size)) => usize::try_from(size).map_err(|e| format!("{name}: {e}")),
            _ => Err(format!("{name}: expected fixed dimensions, found {dim:?}")),
        })
        .collect()
}

fn direction(node: &NodeProto) -> Result<String, String> {
    match node.attribute.iter().find(|a| a.name() == "direction") {
        None => Ok("forward".to_owned()),
        Some(attribute) => String::from_utf8(attribute.s().to_vec()).map_err(|e| format!("direction: {e}")),
    }
}

fn int_attribute(node: &NodeProto, name: &str) -> Result<Option<i64>, String> {
    match node.attribute.iter().find(|a| a.name() == name) {
        None => Ok(None),
        Some(attribute) => attribute.i.map(Some).ok_or_else(|| format!("{name}: expected an integer attribute")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
