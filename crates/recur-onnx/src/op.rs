//! One recurrent node run by recur with ONNX's shapes: `X`, `sequence_lens`, `initial_h`, `initial_c` in;
//! `Y (T, D, B, H)`, `Y_h (D, B, H)`, `Y_c` out (batch-first, `(B, T, D, H)` and `(B, D, H)`, with `layout = 1`).
//!
//! The node becomes a [`Recurrent`] layer, so it runs at recur's native speed; this module only moves axes. A
//! `reverse` node runs a forward layer over each sequence read backwards (its own valid steps only) and puts the
//! outputs back in time order.

use std::collections::HashMap;

use recur::{Module, Recurrent, Tensor};

use crate::error::{Error, Result};
use crate::recurrent::{Direction, RecurrentNode, known_tensor};

/// The data inputs of a recurrent node.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpInputs<'a> {
    /// `X`: `(T, B, I)`, or `(B, T, I)` with `layout = 1`.
    pub x: Option<&'a Tensor>,
    /// `sequence_lens`: `B` lengths, each in `1..=T`; every sequence is `T` long when absent.
    pub sequence_lens: Option<&'a [i64]>,
    /// `initial_h`: `(D, B, H)`, or `(B, D, H)` with `layout = 1`; zeros when absent.
    pub initial_h: Option<&'a Tensor>,
    /// `initial_c` (LSTM): as `initial_h`.
    pub initial_c: Option<&'a Tensor>,
}

/// The outputs of a recurrent node.
#[derive(Clone, Debug, PartialEq)]
pub struct OpOutputs {
    /// `Y`: `(T, D, B, H)`, or `(B, T, D, H)` with `layout = 1`; zeros past each sequence's length.
    pub y: Tensor,
    /// `Y_h`: `(D, B, H)`, or `(B, D, H)` with `layout = 1`: each sequence's last state.
    pub y_h: Tensor,
    /// `Y_c` (LSTM): as `Y_h`, the cell state.
    pub y_c: Option<Tensor>,
}

/// A recurrent node ready to run.
#[derive(Clone, Debug)]
pub struct RecurrentOp {
    node: RecurrentNode,
    layer: Recurrent,
}

impl RecurrentOp {
    /// Builds the node's layer from its parameters.
    pub fn new(node: RecurrentNode) -> Result<Self> {
        let mut layer = Recurrent::zeros(node.config.clone())?;
        let tensors: HashMap<String, Tensor> = node.params.iter().cloned().collect();
        layer.load_state_dict(&tensors)?;
        Ok(RecurrentOp { node, layer })
    }

    /// The node this runs.
    pub fn node(&self) -> &RecurrentNode {
        &self.node
    }

    /// The layer that runs it.
    pub fn layer(&self) -> &Recurrent {
        &self.layer
    }

    /// Runs the node over `inputs`, as ONNX defines it.
    pub fn run(&self, inputs: OpInputs<'_>) -> Result<OpOutputs> {
        let node = &self.node;
        let x = inputs.x.ok_or_else(|| Error::MissingInput {
            node: Box::new(node.label.clone()),
            input: format!("X (`{}`)", node.names.x),
            expected: "the input sequence".into(),
        })?;
        let [a, b, _] = x.shape()[..] else {
            return Err(self.shape_error(
                "X",
                x,
                if node.batch_first { "[B, T, input_size]" } else { "[T, B, input_size]" },
            ));
        };
        let (steps, batch) = if node.batch_first { (b, a) } else { (a, b) };
        let lengths = inputs.sequence_lens.map(|l| self.lengths(l, steps, batch)).transpose()?;
        let lengths = lengths.filter(|l| l.iter().any(|&n| n != steps));
        let geometry = Geometry { steps, batch, batch_first: node.batch_first };
        let h0 = inputs.initial_h.map(|t| self.states_in(t, "initial_h")).transpose()?;
        let c0 = inputs.initial_c.map(|t| self.states_in(t, "initial_c")).transpose()?;

        let reverse = node.direction == Direction::Reverse;
        let all_steps = vec![steps; batch];
        let reversal = |t: &Tensor| geometry.reverse_each(t, lengths.as_deref().unwrap_or(&all_steps));
        let x_run = if reverse { reversal(x) } else { x.clone() };
        let out = match &lengths {
            Some(l) => self.layer.forward_with_lengths(&x_run, l, h0.as_ref(), c0.as_ref())?,
            None => self.layer.forward(&x_run, h0.as_ref(), c0.as_ref())?,
        };
        let output = if reverse { reversal(&out.output) } else { out.output };
        let d = node.direction.count();
        let hidden = node.config.hidden_size;
        Ok(OpOutputs {
            y: geometry.y_from_output(output, d, hidden),
            y_h: self.states_out(out.h_n),
            y_c: out.c_n.map(|c| self.states_out(c)),
        })
    }

    fn shape_error(&self, role: &str, tensor: &Tensor, expected: &str) -> Error {
        Error::InputShape {
            node: Box::new(self.node.label.clone()),
            input: role.into(),
            expected: expected.into(),
            found: tensor.shape().to_vec(),
        }
    }

    fn lengths(&self, lengths: &[i64], steps: usize, batch: usize) -> Result<Vec<usize>> {
        let valid = |&n: &i64| usize::try_from(n).ok().filter(|n| (1..=steps).contains(n));
        match lengths.iter().map(valid).collect::<Option<Vec<usize>>>() {
            Some(l) if l.len() == batch => Ok(l),
            _ => Err(self
                .node
                .label
                .unsupported(format!("sequence_lens must hold {batch} lengths in 1..={steps}, found {lengths:?}"))),
        }
    }

    /// ONNX's states (`(D, B, H)`, or `(B, D, H)` batch-first) as recur's `(D, B, H)`.
    fn states_in(&self, states: &Tensor, role: &str) -> Result<Tensor> {
        let (d, hidden) = (self.node.direction.count(), self.node.config.hidden_size);
        let expected =
            if self.node.batch_first { format!("[B, {d}, {hidden}]") } else { format!("[{d}, B, {hidden}]") };
        match states.shape()[..] {
            [a, b, h] if h == hidden && (if self.node.batch_first { b } else { a }) == d => {
                Ok(if self.node.batch_first { swap_outer(states) } else { states.clone() })
            }
            _ => Err(self.shape_error(role, states, &expected)),
        }
    }

    /// recur's `(D, B, H)` states in ONNX's layout.
    fn states_out(&self, states: Tensor) -> Tensor {
        if self.node.batch_first { swap_outer(&states) } else { states }
    }
}

/// `(a, b, c)` → `(b, a, c)`.
fn swap_outer(t: &Tensor) -> Tensor {
    let [a, b, c] = t.shape()[..] else { unreachable!("checked to be rank 3") };
    let data = t.data();
    let mut out = Vec::with_capacity(data.len());
    for j in 0..b {
        for i in 0..a {
            out.extend_from_slice(&data[(i * b + j) * c..(i * b + j + 1) * c]);
        }
    }
    known_tensor(vec![b, a, c], out)
}

/// Steps, batch and layout of one run.
struct Geometry {
    steps: usize,
    batch: usize,
    batch_first: bool,
}

impl Geometry {
    /// Where step `t` of sequence `b` starts, in values of `width`.
    fn at(&self, t: usize, b: usize, width: usize) -> usize {
        if self.batch_first { (b * self.steps + t) * width } else { (t * self.batch + b) * width }
    }

    /// Each sequence's first `lengths[b]` steps in reverse order; the padding stays where it is.
    fn reverse_each(&self, t: &Tensor, lengths: &[usize]) -> Tensor {
        let width = t.shape()[2];
        let mut out = t.data().to_vec();
        for (b, &n) in lengths.iter().enumerate() {
            for step in 0..n {
                let (to, from) = (self.at(step, b, width), self.at(n - 1 - step, b, width));
                out[to..to + width].copy_from_slice(&t.data()[from..from + width]);
            }
        }
        known_tensor(t.shape().to_vec(), out)
    }

    /// recur's output (`(T, B, D·H)` or `(B, T, D·H)`) as ONNX's `Y` (`(T, D, B, H)` or `(B, T, D, H)`).
    fn y_from_output(&self, output: Tensor, d: usize, hidden: usize) -> Tensor {
        if self.batch_first {
            return known_tensor(vec![self.batch, self.steps, d, hidden], output.into_data());
        }
        time_major_y(&output, d, hidden)
    }
}

/// A time-major output `(T, B, D·H)` as ONNX's `Y`, `(T, D, B, H)`: the directions moved before the batch.
pub(crate) fn time_major_y(output: &Tensor, d: usize, hidden: usize) -> Tensor {
    let [steps, batch, _] = output.shape()[..] else { unreachable!("a time-major output is rank 3") };
    let data = output.data();
    let mut y = Vec::with_capacity(data.len());
    for t in 0..steps {
        for dir in 0..d {
            for b in 0..batch {
                let at = (t * batch + b) * d * hidden + dir * hidden;
                y.extend_from_slice(&data[at..at + hidden]);
            }
        }
    }
    known_tensor(vec![steps, d, batch, hidden], y)
}
