//! The graph under construction: nodes in order, initializers, graph inputs and outputs, fresh value names, and
//! the attribute constructors the other modules use.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_proto::DataType;
use crate::proto::tensor_shape_proto::{Dimension, dimension};
use crate::proto::type_proto::{self, Value};
use crate::proto::{AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto};

use super::tensors::int64_tensor;

/// One dimension of a graph input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    /// A size fixed by the model (features, layers).
    Fixed(usize),
    /// A size chosen at each run, named (ONNX's `dim_param`).
    Named(&'static str),
}

/// Nodes, initializers and the graph's signature, built in order.
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    count: usize,
}

impl GraphBuilder {
    /// A new name `hint_N`, unique in the graph.
    pub fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{hint}_{}", self.count)
    }

    /// Adds a node of `op` reading `inputs` (an empty name for an omitted optional input) and writing `outputs`.
    pub fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            name: Some(name),
            op_type: Some(op.to_owned()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    /// Adds a node of `op` with one output, under a fresh name, and returns that name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node(op, inputs, &[&out], attribute);
        out
    }

    /// Adds an initializer and returns its name.
    pub fn initializer(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name().to_owned();
        self.initializers.push(tensor);
        name
    }

    /// A constant 1-D `INT64` initializer, under a fresh name.
    pub fn ints(&mut self, hint: &str, values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializer(int64_tensor(&name, &[values.len()], values))
    }

    /// A constant `INT64` scalar initializer, under a fresh name.
    pub fn scalar(&mut self, hint: &str, value: i64) -> String {
        let name = self.fresh(hint);
        self.initializer(int64_tensor(&name, &[], &[value]))
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, element: DataType, dims: &[Dim]) {
        self.inputs.push(value_info(name, element, dims));
    }

    /// Declares a graph output, renaming the value `value` to `name` where it is produced and read.
    pub fn output(&mut self, value: &str, name: &str, element: DataType, dims: &[Dim]) {
        for node in &mut self.nodes {
            for v in node.input.iter_mut().chain(node.output.iter_mut()) {
                if v == value {
                    *v = name.to_owned();
                }
            }
        }
        self.outputs.push(value_info(name, element, dims));
    }

    /// The finished graph.
    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            name: Some(name.to_owned()),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }
}

fn value_info(name: &str, element: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Fixed(n) => dimension::Value::DimValue(n as i64),
                Dim::Named(p) => dimension::Value::DimParam(p.to_owned()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: Some(element as i32), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto { value: Some(Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

fn attribute(name: &str, r#type: AttributeType) -> AttributeProto {
    AttributeProto { name: Some(name.to_owned()), r#type: Some(r#type as i32), ..Default::default() }
}

/// An `INT` attribute.
pub(crate) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { i: Some(value), ..attribute(name, AttributeType::Int) }
}

/// A `FLOAT` attribute.
pub(crate) fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { f: Some(value), ..attribute(name, AttributeType::Float) }
}

/// A `STRING` attribute.
pub(crate) fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto { s: Some(value.as_bytes().to_vec()), ..attribute(name, AttributeType::String) }
}

/// A `STRINGS` attribute.
pub(crate) fn strings(name: &str, values: &[&str]) -> AttributeProto {
    let strings = values.iter().map(|s| s.as_bytes().to_vec()).collect();
    AttributeProto { strings, ..attribute(name, AttributeType::Strings) }
}

/// A `FLOATS` attribute.
pub(crate) fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto { floats: values, ..attribute(name, AttributeType::Floats) }
}

/// An `INTS` attribute.
pub(crate) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto { ints: values.to_vec(), ..attribute(name, AttributeType::Ints) }
}
