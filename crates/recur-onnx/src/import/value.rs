//! What the importer knows of each value of a graph as it walks the nodes: a constant, a shape computed at run
//! time, or a stage of the recurrent model's data flow (the input sequence, a layer's outputs, final states, the
//! head's predictions).

use recur::Tensor;

/// A constant: from an initializer, a `Constant` node, or folded from constants.
#[derive(Clone, Debug)]
pub(crate) enum Const {
    /// Floating-point values.
    Float(Tensor),
    /// Integer values (any integer type), with their shape.
    Int(Vec<i64>),
}

impl Const {
    /// Whether every value is zero.
    pub fn is_zero(&self) -> bool {
        match self {
            Const::Float(t) => t.data().iter().all(|&v| v == 0.0),
            Const::Int(v) => v.iter().all(|&v| v == 0),
        }
    }

    /// The values as integers (floats that are whole numbers included).
    pub fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Const::Int(v) => Some(v.clone()),
            Const::Float(t) => t.data().iter().map(|&v| (v.fract() == 0.0).then_some(v as i64)).collect(),
        }
    }

    /// The single value of a scalar or one-element tensor, as an integer.
    pub fn scalar(&self) -> Option<i64> {
        match self.ints()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }
}

/// Which axis of a sequence is time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Axes {
    /// `(T, B, F)`.
    TimeMajor,
    /// `(B, T, F)`.
    BatchFirst,
    /// As the graph's input holds it, whichever that is: decided by the first layer's use of it.
    AsGiven,
}

/// A stage of the model's data flow.
#[derive(Clone, Debug)]
pub(crate) enum Flow {
    /// A float graph input not yet known to be the sequence or states.
    Input(String),
    /// An integer graph input: token ids, until a layer reads it as `sequence_lens`.
    Tokens(String),
    /// The token ids, transposed time-major from a batch-first input.
    TimeMajorTokens(String),
    /// The `sequence_lens` input.
    Lengths(String),
    /// Values computed from the lengths (and shapes): the indices of the last steps, a mask of the valid ones.
    LengthsExpr,
    /// The last layer's time-major output times a mask of valid steps.
    Masked,
    /// The sum over time of the masked output, `(B, F)`.
    SumStep,
    /// The last layer's output as rows of features, `(T·B, F)` in the order of `axes`.
    Rows { axes: Axes },
    /// A sequence of features: the model's input (`layer` none) or the output of layer `layer`.
    Sequence { axes: Axes, layer: Option<usize> },
    /// `Y` of layer `layer`, `(T, D, B, H)`; `transposed`: `(T, B, D, H)`.
    LayerY { layer: usize, transposed: bool },
    /// `Y_h` (`cell` false) or `Y_c` of layers `first..end`, concatenated: `((end − first)·D, B, H)`.
    States { cell: bool, first: usize, end: usize },
    /// Zero states, whatever their shape.
    Zeros,
    /// Rows `start..end` of a graph input holding initial states (`(L·D, B, H)`), or all of them (`None`).
    GivenStates { input: String, rows: Option<(usize, usize)> },
    /// The last step of the last layer's output, `(B, F)`, or `(1, B, F)` / `(B, 1, F)` with the time axis kept
    /// (`kept_axis`).
    LastStep { kept_axis: Option<i64> },
    /// The mean over time of the last layer's output, `(B, F)`.
    MeanStep,
    /// A linear head's product before its bias: `x Wᵀ` with `weight` `(outputs, F)`.
    HeadProduct { readout: Readout, weight: Tensor, rows: bool },
    /// A linear head's output: `rows` when the predictions are `(rows, outputs)` as recur returns them, else
    /// shaped as the readout's input.
    Head { readout: Readout, weight: Tensor, bias: Tensor, rows: bool },
}

/// Which steps a head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readout {
    /// Every step, the sequence's axes kept.
    EveryStep(Axes),
    /// The last step.
    Last,
    /// The mean of the steps.
    Mean,
}

/// What the importer knows of a value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A constant.
    Const(Const),
    /// Integers computed at run time from shapes: only ever a shape or an index.
    Shape,
    /// A stage of the model.
    Flow(Flow),
}
