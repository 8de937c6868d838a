//! ONNX's `LSTM`, `GRU` and `RNN` nodes in recur's terms: a one-layer [`RecurrentConfig`] and the layer's
//! parameters under recur's (PyTorch's) names and gate order.
//!
//! | | ONNX | recur |
//! |---|---|---|
//! | LSTM gates in `W`, `R`, `B` | i, o, f, c | i, f, g, o |
//! | LSTM peepholes `P` | i, o, f | `weight_peephole`: i, f, o |
//! | GRU gates | z, r, h | r, z, n |
//! | biases | `B = [Wb, Rb]` | `bias_ih`, `bias_hh` |
//!
//! A `reverse` node becomes a forward layer run over reversed time (see [`crate::op`]).

use std::collections::HashMap;

use recur::cells::Activation;
use recur::{Mode, RecurrentConfig, Tensor};

use crate::attributes::{Attributes, NodeLabel};
use crate::error::{Error, Result};
use crate::proto::NodeProto;

/// ONNX's `direction` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `forward` (the default).
    Forward,
    /// `reverse`: the sequence is read from its last valid step to its first.
    Reverse,
    /// `bidirectional`: both, outputs stacked forward first.
    Bidirectional,
}

impl Direction {
    /// Number of directions, `D` (`num_directions` in ONNX's shapes).
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional { 2 } else { 1 }
    }

    /// ONNX's name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
}

/// The names of a recurrent node's inputs and outputs that carry data rather than weights (empty when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataNames {
    /// `X`.
    pub x: String,
    /// `sequence_lens`.
    pub sequence_lens: String,
    /// `initial_h`.
    pub initial_h: String,
    /// `initial_c` (LSTM).
    pub initial_c: String,
    /// `Y`, `Y_h`, `Y_c`.
    pub outputs: [String; 3],
}

/// A recurrent node read into recur's terms.
#[derive(Clone, Debug)]
pub struct RecurrentNode {
    /// The node's name and operator, for errors.
    pub label: NodeLabel,
    /// ONNX's `direction`.
    pub direction: Direction,
    /// ONNX's `layout = 1`: `X`, `Y` and the states are batch-first.
    pub batch_first: bool,
    /// One layer, bidirectional when the node is; `batch_first` as the node's `layout`.
    pub config: RecurrentConfig,
    /// The layer's parameters under recur's names (`weight_ih_l0`, `weight_ih_l0_reverse`, …) in recur's gate
    /// order.
    pub params: Vec<(String, Tensor)>,
    /// The node's data inputs and outputs.
    pub names: DataNames,
}

/// ONNX's gate order in the rows of `W`, `R` and `B` for each of recur's gate blocks: recur's block `k` is
/// ONNX's block `order[k]`.
pub(crate) fn gate_order(mode: Mode) -> &'static [usize] {
    match mode {
        // recur (i, f, g, o) from ONNX (i, o, f, c).
        Mode::Lstm => &[0, 2, 3, 1],
        // recur (r, z, n) from ONNX (z, r, h).
        Mode::Gru => &[1, 0, 2],
        Mode::RnnTanh | Mode::RnnRelu => &[0],
    }
}

/// The inverse of [`gate_order`]: ONNX's block `j` is recur's block `inverse[j]`, so
/// `reorder(recur_rows, &inverse_gate_order(mode), block)` gives ONNX's rows.
pub(crate) fn inverse_gate_order(mode: Mode) -> Vec<usize> {
    let order = gate_order(mode);
    let mut inverse = vec![0; order.len()];
    for (recur_block, &onnx_block) in order.iter().enumerate() {
        inverse[onnx_block] = recur_block;
    }
    inverse
}

/// The LSTM peepholes' blocks: ONNX's `P` is (i, o, f) and recur's `weight_peephole` (i, f, o), so the same swap of
/// the last two blocks turns either into the other.
pub(crate) const PEEPHOLE_ORDER: [usize; 3] = [0, 2, 1];

/// The attributes each operator may carry; any other is refused rather than ignored.
fn is_known_attribute(mode: Mode, name: &str) -> bool {
    const COMMON: [&str; 7] =
        ["activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout"];
    COMMON.contains(&name)
        || (mode == Mode::Lstm && name == "input_forget")
        || (mode == Mode::Gru && name == "linear_before_reset")
}

impl RecurrentNode {
    /// Reads `node` (an `LSTM`, `GRU` or `RNN`), taking its weights (`W`, `R`, optional `B` and `P`) from
    /// `constants`, by input name. Every weight's shape is checked against the others and the attributes.
    pub fn from_node(node: &NodeProto, constants: &HashMap<String, Tensor>) -> Result<Self> {
        let label = NodeLabel::of(node);
        let mode = match node.op_type() {
            "LSTM" => Mode::Lstm,
            "GRU" => Mode::Gru,
            "RNN" => Mode::RnnTanh,
            other => return Err(label.unsupported(format!("expected an LSTM, GRU or RNN node, found {other}"))),
        };
        if !matches!(node.domain(), "" | "ai.onnx") {
            return Err(label.unsupported(format!("operator domain `{}`; expected ONNX's default", node.domain())));
        }
        let attributes = Attributes::of(node);
        if let Some(unknown) = attributes.names().find(|name| !is_known_attribute(mode, name)) {
            return Err(label.unsupported(format!("attribute `{unknown}` is not one of {}'s", label.op)));
        }
        let direction = match attributes.string("direction")?.as_deref() {
            None | Some("forward") => Direction::Forward,
            Some("reverse") => Direction::Reverse,
            Some("bidirectional") => Direction::Bidirectional,
            Some(other) => {
                return Err(label.attribute_error("direction", "forward, reverse or bidirectional", other));
            }
        };
        let batch_first = attributes.flag("layout", false)?;
        let input = |position: usize| node.input.get(position).cloned().unwrap_or_default();
        let weights = Weights::read(&label, mode, direction, constants, [input(1), input(2), input(3), input(7)])?;
        if let Some(declared) = attributes.int("hidden_size")?
            && usize::try_from(declared).ok() != Some(weights.hidden)
        {
            let found = declared.to_string();
            return Err(label.attribute_error(
                "hidden_size",
                format!("{} (R's last dimension)", weights.hidden),
                found,
            ));
        }
        let mut config = RecurrentConfig::new(mode, weights.input, weights.hidden)
            .bidirectional(direction == Direction::Bidirectional)
            .batch_first(batch_first)
            .bias(weights.b.is_some())
            .peepholes(weights.p.is_some());
        config.clip = attributes.float("clip")?;
        if mode == Mode::Lstm {
            config.input_forget = attributes.flag("input_forget", false)?;
        }
        if mode == Mode::Gru {
            config.linear_before_reset = attributes.flag("linear_before_reset", false)?;
        }
        config.activations = activations(&label, &attributes, mode, direction)?;
        if mode == Mode::RnnTanh
            && !config.activations.is_empty()
            && config.activations.iter().all(|a| *a == Activation::Relu)
        {
            config.mode = Mode::RnnRelu;
            config.activations.clear();
        }
        config.validate().map_err(|e| label.unsupported(e.to_string()))?;
        let params = weights.into_params(mode, direction);
        let names = DataNames {
            x: input(0),
            sequence_lens: input(4),
            initial_h: input(5),
            initial_c: if mode == Mode::Lstm { input(6) } else { String::new() },
            outputs: [0, 1, 2].map(|k| node.output.get(k).cloned().unwrap_or_default()),
        };
        if names.x.is_empty() {
            return Err(Error::MissingInput {
                node: Box::new(label),
                input: "X".into(),
                expected: "the input sequence as the node's first input".into(),
            });
        }
        Ok(RecurrentNode { label, direction, batch_first, config, params, names })
    }
}

/// ONNX's `activations` with their `activation_alpha` and `activation_beta`, as recur's per-direction list
/// (empty when they are the operator's defaults). As onnxruntime reads them, the two lists are consumed in the
/// functions' order, each value by the next function that takes one, and a function past their end takes
/// ONNX's default.
fn activations(
    label: &NodeLabel,
    attributes: &Attributes<'_>,
    mode: Mode,
    direction: Direction,
) -> Result<Vec<Activation>> {
    let names = attributes.strings("activations")?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let per_direction = mode.activation_count();
    let expected = per_direction * direction.count();
    if names.len() != expected {
        return Err(label.attribute_error(
            "activations",
            format!("{expected} functions ({per_direction} per direction)"),
            format!("{} functions", names.len()),
        ));
    }
    let (alphas, betas) = (attributes.floats("activation_alpha")?, attributes.floats("activation_beta")?);
    let (mut alphas, mut betas) = (alphas.into_iter(), betas.into_iter());
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        let default = Activation::from_name(name, None, None)
            .map_err(|_| label.attribute_error("activations", "ONNX's activation functions", name.as_str()))?;
        let (takes_alpha, takes_beta) = default.parameter_counts();
        let alpha = if takes_alpha > 0 { alphas.next() } else { None };
        let beta = if takes_beta > 0 { betas.next() } else { None };
        let activation = Activation::from_name(name, alpha, beta).map_err(|e| label.unsupported(e.to_string()))?;
        out.push(activation);
    }
    let defaults = match mode {
        Mode::Lstm => recur::cells::LSTM_ACTIVATIONS.as_slice(),
        Mode::Gru => recur::cells::GRU_ACTIVATIONS.as_slice(),
        Mode::RnnTanh | Mode::RnnRelu => &[Activation::Tanh],
    };
    if out.chunks(per_direction).all(|chunk| chunk == defaults) {
        return Ok(Vec::new());
    }
    Ok(out)
}

/// A node's weights, checked against each other.
struct Weights {
    input: usize,
    hidden: usize,
    directions: usize,
    w: Tensor,
    r: Tensor,
    b: Option<Tensor>,
    p: Option<Tensor>,
}

impl Weights {
    /// `W`, `R`, `B` and `P` by name (the last two may be empty names).
    fn read(
        label: &NodeLabel,
        mode: Mode,
        direction: Direction,
        constants: &HashMap<String, Tensor>,
        [w_name, r_name, b_name, p_name]: [String; 4],
    ) -> Result<Self> {
        let get = |role: &str, name: &str| -> Result<Option<Tensor>> {
            if name.is_empty() {
                return Ok(None);
            }
            constants.get(name).cloned().map(Some).ok_or_else(|| Error::MissingInput {
                node: Box::new(label.clone()),
                input: format!("{role} (`{name}`)"),
                expected: "a constant weight: an initializer, a Constant node's output or a given value".into(),
            })
        };
        let required = |role: &str, name: &str| -> Result<Tensor> {
            get(role, name)?.ok_or_else(|| Error::MissingInput {
                node: Box::new(label.clone()),
                input: role.into(),
                expected: format!("the {role} weight as an input of the node"),
            })
        };
        let (w, r) = (required("W", &w_name)?, required("R", &r_name)?);
        let (b, p) = (get("B", &b_name)?, if mode == Mode::Lstm { get("P", &p_name)? } else { None });
        let shape_error = |role: &str, tensor: &Tensor, expected: String| Error::InputShape {
            node: Box::new(label.clone()),
            input: role.into(),
            expected,
            found: tensor.shape().to_vec(),
        };
        let (d, gates) = (direction.count(), mode.gates());
        let [rd, rows, hidden] = r.shape()[..] else {
            return Err(shape_error("R", &r, "[num_directions, gates·hidden_size, hidden_size]".into()));
        };
        if rd != d || hidden == 0 || rows != gates * hidden {
            return Err(shape_error("R", &r, format!("[{d}, {gates}·hidden_size, hidden_size]")));
        }
        let [wd, w_rows, input] = w.shape()[..] else {
            return Err(shape_error("W", &w, format!("[{d}, {}, input_size]", gates * hidden)));
        };
        if wd != d || w_rows != gates * hidden || input == 0 {
            return Err(shape_error("W", &w, format!("[{d}, {}, input_size]", gates * hidden)));
        }
        if let Some(b) = &b
            && b.shape() != [d, 2 * gates * hidden]
        {
            return Err(shape_error("B", b, format!("[{d}, {}]", 2 * gates * hidden)));
        }
        if let Some(p) = &p
            && p.shape() != [d, 3 * hidden]
        {
            return Err(shape_error("P", p, format!("[{d}, {}]", 3 * hidden)));
        }
        Ok(Weights { input, hidden, directions: d, w, r, b, p })
    }

    /// The parameters under recur's names for layer 0.
    fn into_params(self, mode: Mode, direction: Direction) -> Vec<(String, Tensor)> {
        let order = gate_order(mode);
        let (h, input) = (self.hidden, self.input);
        let rows = order.len() * h;
        let mut params = Vec::new();
        for d in 0..self.directions {
            // A reverse node is a forward layer over reversed time: its parameters are the forward direction's.
            let suffix = if d == 1 && direction == Direction::Bidirectional { "_l0_reverse" } else { "_l0" };
            let block = |t: &Tensor, width: usize, offset: usize| -> Vec<f32> {
                let start = d * t.shape()[1..].iter().product::<usize>() + offset;
                reorder(&t.data()[start..start + rows * width], order, h * width)
            };
            let matrix = |data: Vec<f32>, width: usize| known_tensor(vec![rows, width], data);
            params.push((format!("weight_ih{suffix}"), matrix(block(&self.w, input, 0), input)));
            params.push((format!("weight_hh{suffix}"), matrix(block(&self.r, h, 0), h)));
            if let Some(b) = &self.b {
                params.push((format!("bias_ih{suffix}"), known_tensor(vec![rows], block(b, 1, 0))));
                params.push((format!("bias_hh{suffix}"), known_tensor(vec![rows], block(b, 1, rows))));
            }
            if let Some(p) = &self.p {
                // ONNX's (i, o, f) to recur's (i, f, o).
                let values = &p.data()[d * 3 * h..(d + 1) * 3 * h];
                let data = reorder(values, &PEEPHOLE_ORDER, h);
                params.push((format!("weight_peephole{suffix}"), known_tensor(vec![3, h], data)));
            }
        }
        params
    }
}

/// A tensor whose data was cut to its shape here.
pub(crate) fn known_tensor(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
    Tensor::new(shape, data).expect("the data was cut to the shape")
}

/// `data` cut in blocks of `block` values, taken in `order`.
pub(crate) fn reorder(data: &[f32], order: &[usize], block: usize) -> Vec<f32> {
    order.iter().flat_map(|&k| data[k * block..(k + 1) * block].iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_orders_are_permutations_that_undo_themselves_through_their_inverse() {
        for mode in [Mode::Lstm, Mode::Gru, Mode::RnnTanh] {
            let order = gate_order(mode);
            let mut sorted = order.to_vec();
            sorted.sort();
            assert_eq!(sorted, (0..mode.gates()).collect::<Vec<_>>(), "{mode}");
        }
        // recur's LSTM forget gate (block 1) is ONNX's block 2; its output gate (3) ONNX's block 1.
        let onnx: Vec<f32> = (0..4).map(|k| k as f32).collect();
        assert_eq!(reorder(&onnx, gate_order(Mode::Lstm), 1), [0.0, 2.0, 3.0, 1.0]);
        assert_eq!(reorder(&onnx[..3], gate_order(Mode::Gru), 1), [1.0, 0.0, 2.0]);
        for mode in [Mode::Lstm, Mode::Gru, Mode::RnnTanh] {
            let values: Vec<f32> = (0..mode.gates()).map(|k| k as f32).collect();
            let recur_order = reorder(&values, gate_order(mode), 1);
            assert_eq!(reorder(&recur_order, &inverse_gate_order(mode), 1), values, "{mode}");
        }
        // recur's (i, f, g, o) written as ONNX's (i, o, f, c).
        assert_eq!(inverse_gate_order(Mode::Lstm), [0, 3, 1, 2]);
    }
}
