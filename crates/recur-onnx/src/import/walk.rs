//! The walk over a graph's nodes, in their order (ONNX requires a topological one): each node's outputs become
//! [`Value`]s from its inputs', by the patterns exporters write around recurrent layers (see the
//! [module documentation](super)). A node that fits no pattern is an error naming it.

use std::collections::HashMap;

use recur::Tensor;

use super::value::{Axes, Const, Flow, Readout, Value};
use crate::attributes::{Attributes, NodeLabel};
use crate::error::Result;
use crate::proto::{GraphProto, NodeProto, TensorProto, tensor_proto::DataType};
use crate::recurrent::{Direction, RecurrentNode, known_tensor};
use crate::tensor::{to_f32_tensor, to_integer_tensor};

/// Where a layer's initial states come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StateSource {
    /// Zeros (absent, or built as zeros).
    Zeros,
    /// Rows `rows` (`None`: all) of a graph input.
    Given { input: String, rows: Option<(usize, usize)> },
}

/// A recurrent node of the walk, with where its inputs came from.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub node: RecurrentNode,
    pub initial_h: StateSource,
    pub initial_c: StateSource,
}

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub values: HashMap<String, Value>,
    pub layers: Vec<Layer>,
    /// Whether the model's input is batch-first, once a layer or a transpose told.
    pub batch_first: Option<bool>,
    /// The embedding's weight and the token input's name.
    pub embedding: Option<(Tensor, String)>,
    /// The `sequence_lens` input's name.
    pub lengths: Option<String>,
}

/// The graph's constants (initializers) and inputs, then every node.
pub(crate) fn walk(graph: &GraphProto) -> Result<Walk> {
    let mut walk = Walk::default();
    for init in &graph.initializer {
        walk.values.insert(init.name().to_owned(), Value::Const(constant(init)?));
    }
    for input in &graph.input {
        let name = input.name().to_owned();
        if walk.values.contains_key(&name) {
            continue;
        }
        let elem = input.r#type.as_ref().and_then(|t| match &t.value {
            Some(crate::proto::type_proto::Value::TensorType(tensor)) => tensor.elem_type,
            _ => None,
        });
        let flow = match elem.and_then(|e| DataType::try_from(e).ok()) {
            Some(DataType::Int64 | DataType::Int32) => Flow::Tokens(name.clone()),
            _ => Flow::Input(name.clone()),
        };
        walk.values.insert(name, Value::Flow(flow));
    }
    for node in &graph.node {
        walk.node(node)?;
    }
    Ok(walk)
}

/// An initializer or a `Constant` node's tensor.
fn constant(tensor: &TensorProto) -> Result<Const> {
    match DataType::try_from(tensor.data_type.unwrap_or(0)) {
        Ok(DataType::Float | DataType::Double) => Ok(Const::Float(to_f32_tensor(tensor)?)),
        _ => Ok(Const::Int(to_integer_tensor(tensor)?.into_data())),
    }
}

impl Walk {
    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let label = NodeLabel::of(node);
        if !matches!(node.domain(), "" | "ai.onnx") {
            return Err(label.unsupported(format!("operator domain `{}`; expected ONNX's default", node.domain())));
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        for name in &node.input {
            inputs.push(match name.as_str() {
                "" => None,
                name => Some(self.values.get(name).cloned().ok_or_else(|| {
                    label.unsupported(format!(
                        "input `{name}` is made by no earlier node (the graph is not in topological order, or has a \
                         cycle)"
                    ))
                })?),
            });
        }
        let outputs = self.apply(node, &label, &inputs)?;
        for (name, value) in node.output.iter().zip(outputs) {
            if !name.is_empty() {
                self.values.insert(name.clone(), value);
            }
        }
        Ok(())
    }

    /// The values of a node's outputs, in order.
    fn apply(&mut self, node: &NodeProto, label: &NodeLabel, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let attributes = Attributes::of(node);
        let input = |k: usize| inputs.get(k).cloned().flatten();
        let all_shapes = !inputs.is_empty()
            && inputs.iter().flatten().all(|v| matches!(v, Value::Shape | Value::Const(Const::Int(_))));
        let unsupported = |what: &str| {
            Err(label.unsupported(format!(
                "{what}; recur imports LSTM, GRU and RNN layers with the reshapes, transposes, state slices, \
                 embedding and linear head exporters write around them"
            )))
        };
        let one = |v: Value| Ok(vec![v]);
        let is_lengths = |v: &Value| matches!(v, Value::Flow(Flow::Lengths(_) | Flow::LengthsExpr));
        let lengths_arithmetic = inputs.iter().flatten().any(is_lengths)
            && inputs.iter().flatten().all(|v| is_lengths(v) || matches!(v, Value::Shape | Value::Const(_)));
        match node.op_type() {
            "LSTM" | "GRU" | "RNN" => self.layer(node, label, inputs),
            "Constant" => one(Value::Const(constant_node(&attributes, label)?)),
            "Identity" | "Dropout" => match input(0) {
                Some(v) => one(v),
                None => unsupported("no input"),
            },
            "Shape" | "Size" => one(Value::Shape),
            "Cast" | "Sub" | "Add" | "Mul" | "Div" | "Reshape" | "Expand" | "Unsqueeze" | "Squeeze" | "Less"
            | "Greater" | "Range" | "Concat"
                if lengths_arithmetic =>
            {
                one(Value::Flow(Flow::LengthsExpr))
            }
            "GatherElements" => match (input(0), input(1)) {
                (
                    Some(Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer })),
                    Some(Value::Flow(Flow::LengthsExpr)),
                ) if self.is_last_layer(layer) && attributes.int("axis")?.unwrap_or(0) == 0 => {
                    one(Value::Flow(Flow::LastStep { kept_axis: Some(0) }))
                }
                _ => unsupported("a GatherElements other than of each sequence's last step"),
            },
            "ReduceSum" => match input(0) {
                Some(Value::Flow(Flow::Masked)) if !attributes.flag("keepdims", true)? => {
                    one(Value::Flow(Flow::SumStep))
                }
                _ => unsupported("a ReduceSum other than of the masked output over time (keepdims 0)"),
            },
            // A cast of the lengths is lengths arithmetic, above.
            "Cast" => match input(0) {
                Some(v @ (Value::Flow(Flow::Tokens(_)) | Value::Shape | Value::Const(_))) => one(v),
                _ => unsupported("a Cast of data"),
            },
            "Unsqueeze" | "Concat" | "Mul" | "Sub" | "Div" | "Equal" | "Where" | "Range" | "Max" | "Min"
                if all_shapes =>
            {
                one(Value::Shape)
            }
            "Concat" => self.concat(label, &attributes, inputs),
            "Gather" => self.gather(label, &attributes, inputs),
            "Slice" => self.slice(label, inputs),
            "Squeeze" => self.squeeze(label, &attributes, inputs),
            "Transpose" => self.transpose(label, &attributes, input(0)),
            "Reshape" => match (input(0), input(1)) {
                (Some(Value::Flow(Flow::LayerY { layer, transposed: true })), Some(Value::Shape | Value::Const(_))) => {
                    one(Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer: Some(layer) }))
                }
                (Some(Value::Flow(Flow::Sequence { axes, layer })), Some(Value::Const(target)))
                    if self.is_last_layer(layer) && target.ints().is_some_and(|t| t.len() == 2 && t[0] == -1) =>
                {
                    one(Value::Flow(Flow::Rows { axes }))
                }
                (Some(Value::Flow(Flow::LastStep { .. })), Some(Value::Const(_) | Value::Shape)) => {
                    one(Value::Flow(Flow::LastStep { kept_axis: None }))
                }
                (Some(Value::Shape | Value::Const(Const::Int(_))), _) => one(Value::Shape),
                _ => unsupported("a Reshape other than the merge of a layer's directions"),
            },
            "ConstantOfShape" => match attributes_tensor(&attributes, "value", label)? {
                None => one(Value::Flow(Flow::Zeros)),
                Some(c) if c.is_zero() => one(Value::Flow(Flow::Zeros)),
                Some(_) => unsupported("a ConstantOfShape of non-zero values"),
            },
            "Expand" => match input(0) {
                Some(Value::Const(c)) if c.is_zero() => one(Value::Flow(Flow::Zeros)),
                Some(Value::Flow(Flow::Zeros)) => one(Value::Flow(Flow::Zeros)),
                _ => unsupported("an Expand of anything but zeros"),
            },
            "Add" if all_shapes => one(Value::Shape),
            "Mul" => match (input(0), input(1)) {
                (
                    Some(Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer })),
                    Some(Value::Flow(Flow::LengthsExpr)),
                ) if self.is_last_layer(layer) => one(Value::Flow(Flow::Masked)),
                _ => unsupported("a Mul other than the output by a mask of valid steps"),
            },
            "Div" => match (input(0), input(1)) {
                (Some(Value::Flow(Flow::SumStep)), Some(Value::Flow(Flow::LengthsExpr))) => {
                    one(Value::Flow(Flow::MeanStep))
                }
                _ => unsupported("a Div other than a sum over valid steps by the lengths"),
            },
            "Add" => self.add(label, inputs),
            "MatMul" => self.matmul(label, inputs),
            "Gemm" => self.gemm(label, &attributes, inputs),
            "ReduceMean" => self.reduce_mean(label, &attributes, inputs),
            other => unsupported(&format!("operator {other} is not one recur imports")),
        }
    }

    /// The index of the last layer so far, and whether `layer` is it.
    fn is_last_layer(&self, layer: Option<usize>) -> bool {
        layer.is_some() && layer == self.layers.len().checked_sub(1)
    }

    /// The time axis of a sequence with `axes`, once the model's layout is known.
    fn time_axis(&self, axes: Axes) -> Option<i64> {
        match axes {
            Axes::TimeMajor => Some(0),
            Axes::BatchFirst => Some(1),
            Axes::AsGiven => None,
        }
    }

    fn layer(&mut self, node: &NodeProto, label: &NodeLabel, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let k = self.layers.len();
        let constants: HashMap<String, Tensor> = node
            .input
            .iter()
            .zip(inputs)
            .filter_map(|(name, v)| match v {
                Some(Value::Const(Const::Float(t))) => Some((name.clone(), t.clone())),
                _ => None,
            })
            .collect();
        let parsed = RecurrentNode::from_node(node, &constants)?;
        if parsed.batch_first {
            return Err(label.unsupported("layout = 1 inside a graph; recur imports time-major recurrent nodes"));
        }
        if parsed.direction == Direction::Reverse {
            return Err(label.unsupported(
                "a reverse-only layer has no recur equivalent in a model (recur's layers run forward or both ways); \
                 run the node alone with recur_onnx::RecurrentOp",
            ));
        }
        match inputs.first().cloned().flatten() {
            Some(Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer })) if layer == k.checked_sub(1) => {}
            Some(Value::Flow(Flow::Sequence { axes: Axes::AsGiven, layer: None })) if k == 0 => {
                self.set_batch_first(false, label)?;
            }
            Some(Value::Flow(Flow::Input(_))) if k == 0 => self.set_batch_first(false, label)?,
            _ => {
                let expected =
                    if k == 0 { "the model's input".to_owned() } else { format!("layer {}'s output", k - 1) };
                return Err(label.unsupported(format!("X of layer {k} is not {expected}, time-major")));
            }
        }
        if let Some(Value::Flow(Flow::Input(name) | Flow::Tokens(name) | Flow::Lengths(name))) =
            inputs.get(4).cloned().flatten()
        {
            match &self.lengths {
                Some(previous) if *previous != name => {
                    return Err(label.unsupported("layers read different sequence_lens"));
                }
                _ => self.lengths = Some(name.clone()),
            }
            self.values.insert(name.clone(), Value::Flow(Flow::Lengths(name)));
        } else if inputs.get(4).cloned().flatten().is_some() {
            return Err(label.unsupported("sequence_lens is not a graph input"));
        }
        let state = |position: usize| -> Result<StateSource> {
            match inputs.get(position).cloned().flatten() {
                None | Some(Value::Flow(Flow::Zeros)) => Ok(StateSource::Zeros),
                Some(Value::Const(c)) if c.is_zero() => Ok(StateSource::Zeros),
                Some(Value::Flow(Flow::Input(input))) => Ok(StateSource::Given { input, rows: None }),
                Some(Value::Flow(Flow::GivenStates { input, rows })) => Ok(StateSource::Given { input, rows }),
                Some(_) => Err(label.unsupported(format!(
                    "initial state (input {position}) is neither zeros nor a slice of a graph input"
                ))),
            }
        };
        let (initial_h, initial_c) = (state(5)?, state(6)?);
        self.layers.push(Layer { node: parsed, initial_h, initial_c });
        Ok(vec![
            Value::Flow(Flow::LayerY { layer: k, transposed: false }),
            Value::Flow(Flow::States { cell: false, first: k, end: k + 1 }),
            Value::Flow(Flow::States { cell: true, first: k, end: k + 1 }),
        ])
    }

    fn set_batch_first(&mut self, batch_first: bool, label: &NodeLabel) -> Result<()> {
        match self.batch_first {
            Some(known) if known != batch_first => {
                Err(label.unsupported("the model's input is read both time-major and batch-first"))
            }
            _ => {
                self.batch_first = Some(batch_first);
                Ok(())
            }
        }
    }

    fn concat(
        &mut self,
        label: &NodeLabel,
        attributes: &Attributes<'_>,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>> {
        let mut merged: Option<(bool, usize, usize)> = None;
        for v in inputs {
            let Some(Value::Flow(Flow::States { cell, first, end })) = v else {
                return Err(label.unsupported("a Concat of anything but shapes or the layers' final states"));
            };
            merged = match merged {
                None => Some((*cell, *first, *end)),
                Some((c, f, e)) if c == *cell && e == *first => Some((c, f, *end)),
                Some(_) => return Err(label.unsupported("a Concat of final states out of layer order")),
            };
        }
        if attributes.int("axis")? != Some(0) {
            return Err(label.attribute_error(
                "axis",
                "0 (the final states' layer axis)",
                format!("{:?}", attributes.int("axis")?),
            ));
        }
        let (cell, first, end) = merged.ok_or_else(|| label.unsupported("a Concat of nothing"))?;
        Ok(vec![Value::Flow(Flow::States { cell, first, end })])
    }

    fn gather(
        &mut self,
        label: &NodeLabel,
        attributes: &Attributes<'_>,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>> {
        let axis = attributes.int("axis")?.unwrap_or(0);
        let data = inputs.first().cloned().flatten();
        let indices = inputs.get(1).cloned().flatten();
        match (data, indices) {
            (
                Some(Value::Const(Const::Float(weight))),
                Some(Value::Flow(ids @ (Flow::Tokens(_) | Flow::TimeMajorTokens(_)))),
            ) if axis == 0 => {
                if weight.shape().len() != 2 || self.embedding.is_some() {
                    return Err(label.unsupported("an embedding must be one 2-D table"));
                }
                let (axes, name) = match ids {
                    Flow::TimeMajorTokens(name) => (Axes::TimeMajor, name),
                    Flow::Tokens(name) => (Axes::AsGiven, name),
                    _ => unreachable!("matched above"),
                };
                self.embedding = Some((weight, name));
                Ok(vec![Value::Flow(Flow::Sequence { axes, layer: None })])
            }
            (Some(Value::Flow(Flow::Sequence { axes, layer })), Some(Value::Const(index)))
                if self.is_last_layer(layer) && index.scalar() == Some(-1) && self.time_axis(axes) == Some(axis) =>
            {
                Ok(vec![Value::Flow(Flow::LastStep { kept_axis: None })])
            }
            (Some(Value::Shape | Value::Const(Const::Int(_))), _) => Ok(vec![Value::Shape]),
            _ => Err(label
                .unsupported("a Gather other than an embedding lookup, the last step of the output, or of a shape")),
        }
    }

    fn slice(&mut self, label: &NodeLabel, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let get = |k: usize| inputs.get(k).cloned().flatten();
        let ints = |k: usize| match get(k) {
            Some(Value::Const(c)) => c.ints(),
            _ => None,
        };
        let (starts, ends, axes) = (ints(1), ints(2), ints(3).unwrap_or_else(|| vec![0]));
        let steps_one = ints(4).is_none_or(|s| s.iter().all(|&v| v == 1));
        match get(0) {
            Some(Value::Shape | Value::Const(Const::Int(_))) => Ok(vec![Value::Shape]),
            Some(Value::Flow(Flow::Zeros)) => Ok(vec![Value::Flow(Flow::Zeros)]),
            Some(Value::Flow(Flow::Input(input) | Flow::GivenStates { input, rows: None })) => {
                match (starts.as_deref(), ends.as_deref(), axes.as_slice()) {
                    (Some(&[start]), Some(&[end]), &[0]) if steps_one && 0 <= start && start < end => {
                        let rows = Some((start as usize, end as usize));
                        Ok(vec![Value::Flow(Flow::GivenStates { input, rows })])
                    }
                    _ => Err(label.unsupported("a Slice of an input other than whole layers of initial states")),
                }
            }
            Some(Value::Flow(Flow::Sequence { axes: seq_axes, layer })) if self.is_last_layer(layer) => {
                let axis = self.time_axis(seq_axes);
                match (starts.as_deref(), ends.as_deref(), axes.as_slice()) {
                    (Some(&[-1]), Some(&[end]), &[a]) if steps_one && end >= i32::MAX as i64 && Some(a) == axis => {
                        Ok(vec![Value::Flow(Flow::LastStep { kept_axis: Some(a) })])
                    }
                    _ => Err(label.unsupported("a Slice of the output other than its last step")),
                }
            }
            _ => Err(label.unsupported("a Slice of data")),
        }
    }

    fn squeeze(
        &mut self,
        label: &NodeLabel,
        attributes: &Attributes<'_>,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>> {
        let axes = axes(attributes, inputs)?;
        match inputs.first().cloned().flatten() {
            Some(Value::Shape | Value::Const(Const::Int(_))) => Ok(vec![Value::Shape]),
            Some(Value::Flow(Flow::LayerY { layer, transposed: false }))
                if axes == [1] && self.layers[layer].node.direction.count() == 1 =>
            {
                Ok(vec![Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer: Some(layer) })])
            }
            Some(Value::Flow(Flow::LastStep { kept_axis: Some(a) })) if axes == [a] => {
                Ok(vec![Value::Flow(Flow::LastStep { kept_axis: None })])
            }
            _ => Err(label.unsupported("a Squeeze other than of a one-direction layer's output or the last step")),
        }
    }

    fn transpose(
        &mut self,
        label: &NodeLabel,
        attributes: &Attributes<'_>,
        input: Option<Value>,
    ) -> Result<Vec<Value>> {
        let perm = attributes.ints("perm")?;
        let swap = perm == [1, 0, 2];
        let value = match input {
            Some(Value::Flow(Flow::Input(_) | Flow::Sequence { axes: Axes::AsGiven, layer: None })) if swap => {
                self.set_batch_first(true, label)?;
                Flow::Sequence { axes: Axes::TimeMajor, layer: None }
            }
            Some(Value::Flow(Flow::Sequence { axes: Axes::TimeMajor, layer })) if swap && self.is_last_layer(layer) => {
                Flow::Sequence { axes: Axes::BatchFirst, layer }
            }
            Some(Value::Flow(Flow::LayerY { layer, transposed: false })) if perm == [0, 2, 1, 3] => {
                Flow::LayerY { layer, transposed: true }
            }
            Some(Value::Flow(Flow::Tokens(ids))) if perm == [1, 0] => {
                self.set_batch_first(true, label)?;
                Flow::TimeMajorTokens(ids)
            }
            _ => {
                return Err(label.unsupported(format!(
                    "a Transpose (perm {perm:?}) other than of the batch-first input, the last output, or a layer's \
                     directions"
                )));
            }
        };
        Ok(vec![Value::Flow(value)])
    }

    fn reduce_mean(
        &mut self,
        label: &NodeLabel,
        attributes: &Attributes<'_>,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>> {
        let axes = axes(attributes, inputs)?;
        let keep = attributes.flag("keepdims", true)?;
        match inputs.first().cloned().flatten() {
            Some(Value::Flow(Flow::Sequence { axes: seq_axes, layer }))
                if self.is_last_layer(layer)
                    && !keep
                    && axes.len() == 1
                    && self.time_axis(seq_axes) == Some(axes[0]) =>
            {
                Ok(vec![Value::Flow(Flow::MeanStep)])
            }
            _ => Err(label.unsupported("a ReduceMean other than over the output's time axis (keepdims 0)")),
        }
    }

    fn matmul(&mut self, label: &NodeLabel, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let Some((readout, rows)) = self.head_input(inputs.first().cloned().flatten()) else {
            return Err(label.unsupported("a MatMul other than a linear head on the output"));
        };
        match inputs.get(1).cloned().flatten() {
            Some(Value::Const(Const::Float(w))) if w.shape().len() == 2 => {
                Ok(vec![Value::Flow(Flow::HeadProduct { readout, weight: transposed(&w), rows })])
            }
            _ => Err(label.unsupported("a linear head whose weight is not a constant matrix")),
        }
    }

    fn add(&mut self, label: &NodeLabel, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        match (inputs.first().cloned().flatten(), inputs.get(1).cloned().flatten()) {
            (
                Some(Value::Flow(Flow::HeadProduct { readout, weight, rows })),
                Some(Value::Const(Const::Float(bias))),
            )
            | (
                Some(Value::Const(Const::Float(bias))),
                Some(Value::Flow(Flow::HeadProduct { readout, weight, rows })),
            ) => Ok(vec![Value::Flow(Flow::Head { readout, weight, bias, rows })]),
            _ => Err(label.unsupported("an Add other than a linear head's bias or of shapes")),
        }
    }

    fn gemm(&mut self, label: &NodeLabel, attributes: &Attributes<'_>, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let (readout, rows) = match self.head_input(inputs.first().cloned().flatten()) {
            Some((readout, rows)) if rows || !matches!(readout, Readout::EveryStep(_)) => (readout, rows),
            _ => return Err(label.unsupported("a Gemm other than a linear head on rows of the output")),
        };
        let plain = attributes.float("alpha")?.unwrap_or(1.0) == 1.0
            && attributes.float("beta")?.unwrap_or(1.0) == 1.0
            && !attributes.flag("transA", false)?;
        let (Some(Value::Const(Const::Float(b))), bias) =
            (inputs.get(1).cloned().flatten(), inputs.get(2).cloned().flatten())
        else {
            return Err(label.unsupported("a Gemm whose weight is not a constant"));
        };
        if !plain || b.shape().len() != 2 {
            return Err(label.unsupported("a Gemm other than y = x Wᵀ + b"));
        }
        let weight = if attributes.flag("transB", false)? { b } else { transposed(&b) };
        let bias = match bias {
            Some(Value::Const(Const::Float(bias))) => bias,
            None => Tensor::zeros([weight.shape()[0]]),
            Some(_) => return Err(label.unsupported("a Gemm whose bias is not a constant")),
        };
        Ok(vec![Value::Flow(Flow::Head { readout, weight, bias, rows })])
    }

    /// What a linear head on `input` reads, and whether its predictions are rows `(rows, outputs)`.
    fn head_input(&self, input: Option<Value>) -> Option<(Readout, bool)> {
        match input? {
            Value::Flow(Flow::Sequence { axes, layer }) if self.is_last_layer(layer) && axes != Axes::AsGiven => {
                Some((Readout::EveryStep(axes), false))
            }
            Value::Flow(Flow::Rows { axes }) => Some((Readout::EveryStep(axes), true)),
            Value::Flow(Flow::LastStep { kept_axis: None }) => Some((Readout::Last, false)),
            Value::Flow(Flow::MeanStep) => Some((Readout::Mean, false)),
            _ => None,
        }
    }
}

/// The `axes` of a Squeeze or a reduction: its second input from opset 13 (18 for reductions), an attribute before.
fn axes(attributes: &Attributes<'_>, inputs: &[Option<Value>]) -> Result<Vec<i64>> {
    match inputs.get(1).cloned().flatten() {
        Some(Value::Const(c)) => Ok(c.ints().unwrap_or_default()),
        _ => attributes.ints("axes"),
    }
}

/// A `Constant` node's value.
fn constant_node(attributes: &Attributes<'_>, label: &NodeLabel) -> Result<Const> {
    if let Some(c) = attributes_tensor(attributes, "value", label)? {
        return Ok(c);
    }
    if let Some(v) = attributes.float("value_float")? {
        return Ok(Const::Float(known_tensor(vec![], vec![v])));
    }
    let floats = attributes.floats("value_floats")?;
    if !floats.is_empty() {
        return Ok(Const::Float(known_tensor(vec![floats.len()], floats)));
    }
    if let Some(v) = attributes.int("value_int")? {
        return Ok(Const::Int(vec![v]));
    }
    let ints = attributes.ints("value_ints")?;
    if !ints.is_empty() {
        return Ok(Const::Int(ints));
    }
    Err(label.unsupported("a Constant without a tensor, float or integer value"))
}

/// A tensor attribute as a constant.
fn attributes_tensor(attributes: &Attributes<'_>, name: &str, label: &NodeLabel) -> Result<Option<Const>> {
    match attributes.tensor(name)? {
        None => Ok(None),
        Some(t) => constant(t).map(Some).map_err(|e| label.unsupported(format!("attribute `{name}`: {e}"))),
    }
}

/// The transpose of a matrix.
fn transposed(m: &Tensor) -> Tensor {
    let (rows, cols) = (m.shape()[0], m.shape()[1]);
    let data = m.data();
    let t = (0..cols).flat_map(|c| (0..rows).map(move |r| data[r * cols + c])).collect();
    known_tensor(vec![cols, rows], t)
}
