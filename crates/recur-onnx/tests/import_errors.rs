//! Graphs recur cannot import, and hostile files: each an error naming what is wrong (the node and its operator,
//! the tensor, the attribute), never a panic or an allocation of a size the file only declares.

use prost::Message;
use recur_onnx::proto::tensor_proto::DataType;
use recur_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
    attribute_proto::AttributeType,
};
use recur_onnx::{Error, import_model};

fn float(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: values,
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attributes: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// A one-layer GRU (input 2, hidden 3) over graph input `x`, then `extra` nodes.
fn gru_model(extra: Vec<NodeProto>, outputs: &[&str]) -> Vec<u8> {
    let (h, i) = (3usize, 2usize);
    let initializer = vec![float("W", &[1, 9, 2], vec![0.1; 3 * h * i]), float("R", &[1, 9, 3], vec![0.1; 3 * h * h])];
    let mut nodes = vec![node("GRU", "gru", &["x", "W", "R"], &["Y", "Y_h"], vec![int_attribute("hidden_size", 3)])];
    nodes.extend(extra);
    let graph = GraphProto {
        node: nodes,
        initializer,
        input: vec![ValueInfoProto { name: Some("x".into()), ..Default::default() }],
        output: outputs.iter().map(|o| ValueInfoProto { name: Some((*o).into()), ..Default::default() }).collect(),
        ..Default::default()
    };
    let opset = OperatorSetIdProto { domain: Some(String::new()), version: Some(14) };
    ModelProto { graph: Some(graph), opset_import: vec![opset], ir_version: Some(7), ..Default::default() }
        .encode_to_vec()
}

fn error(bytes: &[u8]) -> String {
    match import_model(bytes) {
        Ok(_) => panic!("imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_plain_gru_graph_imports() {
    let imported = import_model(&gru_model(vec![], &["Y", "Y_h"])).unwrap();
    assert_eq!(imported.recurrent().config().hidden_size, 3);
    assert!(!imported.recurrent().config().linear_before_reset, "ONNX's default is linear_before_reset = 0");
}

#[test]
fn unknown_ops_attributes_and_outputs_are_named() {
    let softmax = node("Softmax", "probabilities", &["Y"], &["p"], vec![]);
    let err = error(&gru_model(vec![softmax], &["p"]));
    assert!(err.contains("`probabilities` (Softmax)") && err.contains("operator Softmax"), "{err}");

    let mut bytes = gru_model(vec![], &["Y"]);
    let mut model = ModelProto::decode(&bytes[..]).unwrap();
    model.graph.as_mut().unwrap().node[0].attribute.push(int_attribute("output_width", 1));
    bytes = model.encode_to_vec();
    let err = error(&bytes);
    assert!(err.contains("`gru` (GRU)") && err.contains("attribute `output_width`"), "{err}");

    let err = error(&gru_model(vec![], &["W"]));
    assert!(err.contains("graph output `W` is none of the model's outputs"), "{err}");

    let mut model = ModelProto::decode(&gru_model(vec![], &["Y"])[..]).unwrap();
    model.graph.as_mut().unwrap().node[0].attribute[0] = int_attribute("hidden_size", 4);
    let err = error(&model.encode_to_vec());
    assert!(err.contains("hidden_size") && err.contains("3 (R's last dimension)"), "{err}");
}

#[test]
fn cycles_and_nodes_out_of_order_are_errors() {
    // The Transpose reads its own output: no order of the nodes makes it computable.
    let cycle = node("Transpose", "loop", &["t"], &["t"], vec![]);
    let err = error(&gru_model(vec![cycle], &["t"]));
    assert!(err.contains("`loop` (Transpose)") && err.contains("input `t` is made by no earlier node"), "{err}");
}

#[test]
fn hostile_sizes_are_refused_before_allocation() {
    let mut model = ModelProto::decode(&gru_model(vec![], &["Y"])[..]).unwrap();
    // W declares 2^40 × 2^20 values over 18 present.
    model.graph.as_mut().unwrap().initializer[0].dims = vec![1, 1 << 40, 1 << 20];
    let err = error(&model.encode_to_vec());
    assert!(err.contains("tensor `W`"), "{err}");

    // R consistent with itself but not with W: a shape error naming both sizes.
    let mut model = ModelProto::decode(&gru_model(vec![], &["Y"])[..]).unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.initializer[1] = float("R", &[1, 12, 4], vec![0.0; 48]);
    let err = error(&model.encode_to_vec());
    assert!(err.contains("input `W`") && err.contains("[1, 12, input_size]"), "{err}");

    let err = error(b"\x0a\xff\xff\xff\xff\x0f");
    assert!(err.contains("not a valid ModelProto"), "{err}");
    let err = error(&ModelProto::default().encode_to_vec());
    assert!(err.contains("the model has no graph"), "{err}");
    assert!(matches!(import_model(&[]), Err(Error::Unsupported { .. })));
}
