//! Writing recur's models as ONNX: a [`Recurrent`] stack ([`export_recurrent`]) or a whole [`SequenceModel`]
//! (embedding, recurrent stack, head: [`export_sequence_model`]), as a `ModelProto` that onnxruntime runs as it is.
//!
//! The graph has PyTorch's layouts and names:
//!
//! | | bare layer | sequence model |
//! |---|---|---|
//! | `input` | `FLOAT (time, batch, I)`, `(batch, time, I)` when `batch_first` | the same, or `INT64 (time, batch)` token ids (`(batch, time)`) with an embedding |
//! | `sequence_lens` ([`ExportOptions::sequence_lens`]) | `INT32 [batch]`, each in `1..=time` | the same |
//! | `h0`, `c0` ([`ExportOptions::initial_states`]) | `FLOAT (L·D, batch, H)` | the same |
//! | outputs | `output (time, batch, D·H)` (batch-first: `(batch, time, D·H)`), `h_n`, `c_n (L·D, batch, H)` | `predictions (rows, outputs)` as [`SequenceModel::forward`] returns them, `h_n`, `c_n` |
//!
//! `time` and `batch` are `dim_param`s, so one file serves any batch size and length; `rows` is `batch` for the
//! `last` and `mean` readouts and `time·batch` (in the input's order) for `every_step`.
//!
//! # The graph
//!
//! Everything between the input and the head is time-major. The weights are initializers named `W_l{k}`,
//! `R_l{k}`, `B_l{k}` and `P_l{k}` (under `rnn.` in a sequence model, beside `embedding.weight`, `head.weight`
//! and `head.bias` in PyTorch's layouts).
//!
//! ```text
//! input     batch-first: Transpose(perm [1, 0, 2]) (token ids: [1, 0]); never layout = 1, which onnxruntime's
//!           CPU kernels refuse
//! tokens    Gather(embedding.weight, ids, axis 0)
//! layer k   LSTM/GRU/RNN(x, W_lk, R_lk, B_lk or "", sequence_lens or "", h0_k or "", c0_k or "", P_lk)
//!             hidden_size; direction forward or bidirectional; activations (+ every activation_alpha and
//!             activation_beta, in order, for the functions that take them) only when not ONNX's defaults (a ReLU
//!             RNN writes ["Relu"] per direction); clip; input_forget = 1 when set; GRU: linear_before_reset 0 or 1
//!           h0_k, c0_k: Slice(h0, starts [k·D], ends [(k+1)·D], axes [0]), or h0 itself for one layer
//!           Y ─ Transpose(perm [0, 2, 1, 3]) ─ Reshape([0, 0, -1]) ─ (T, B, D·H): the next layer's x
//! h_n, c_n  Concat(Y_h of every layer, axis 0), Concat(Y_c …)
//! output    the last layer's (T, B, D·H), Transpose(perm [1, 0, 2]) when batch-first
//! head      every_step: [Transpose(perm [1, 0, 2]) when batch-first] ─ Reshape([-1, F])
//!           last: Slice(starts [-1], ends [i64::MAX], axes [0]) ─ Reshape([-1, F])
//!             with sequence_lens: GatherElements(out, Expand(Reshape(Cast(lens, INT64) − 1, [1, -1, 1]),
//!             [1, 1, F]), axis 0) ─ Reshape([-1, F])
//!           mean: ReduceMean(axes [0], keepdims 0) (axes as an input from opset 18)
//!             with sequence_lens: ReduceSum(out ⊙ Cast(Less(Range(0, T, 1) as a column, lens as a row)),
//!             axes [0], keepdims 0) / Cast(lens, FLOAT) as a column
//!           then Gemm(rows, head.weight, head.bias, transB = 1) → predictions
//! ```
//!
//! Gates are in ONNX's order (LSTM i, o, f, c; GRU z, r, h; peepholes i, o, f) and `B` is `[bias_ih, bias_hh]`
//! per direction (omitted without bias); [`crate::RecurrentNode`] reads such a node back.
//!
//! Not expressible, and refused with [`Error::ExportUnsupported`]: an LSTM with `proj_size > 0` and the
//! `attention` readout.

mod graph;
mod head;
mod layers;
mod tensors;

use prost::Message;
use recur::{Mode, Module, ReadoutName, Recurrent, RecurrentConfig, SequenceModel};

use self::graph::{Dim, GraphBuilder};
use self::layers::{StackInputs, check_exportable, recurrent_stack};
pub use self::tensors::{float_tensor, int32_tensor, int64_tensor, tensor_proto};
use crate::error::{Error, Result};
use crate::proto::tensor_proto::DataType;
use crate::proto::{ModelProto, OperatorSetIdProto};

/// The graph input of the sequences (features, or token ids).
pub const INPUT: &str = "input";
/// The optional graph input of the sequences' lengths.
pub const SEQUENCE_LENS: &str = "sequence_lens";
/// The optional graph input of the initial hidden state.
pub const H0: &str = "h0";
/// The optional graph input of the initial cell state (LSTM).
pub const C0: &str = "c0";
/// A bare layer's output of every step.
pub const OUTPUT: &str = "output";
/// The output of the final hidden states.
pub const H_N: &str = "h_n";
/// The output of the final cell states (LSTM).
pub const C_N: &str = "c_n";
/// A sequence model's output of the head's predictions.
pub const PREDICTIONS: &str = "predictions";
/// The `dim_param` of the batch axis.
pub const BATCH: &str = "batch";
/// The `dim_param` of the time axis.
pub const TIME: &str = "time";
/// The `dim_param` of an every-step head's prediction rows (`time · batch`).
pub const ROWS: &str = "rows";

/// The lowest opset written: the first with the recurrent operators' current form.
pub const MIN_OPSET: i64 = 14;
/// The highest opset written (the recurrent operators' latest version).
pub const MAX_OPSET: i64 = 22;
/// The opset written by default.
pub const DEFAULT_OPSET: i64 = 17;

/// What an export writes besides the model itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// ONNX's default-domain opset, [`MIN_OPSET`]`..=`[`MAX_OPSET`] (default [`DEFAULT_OPSET`]).
    pub opset: i64,
    /// Adds the graph input [`SEQUENCE_LENS`] (`INT32 [batch]`): a padded batch in which each sequence runs for
    /// its own length, as recur's `forward_with_lengths`.
    pub sequence_lens: bool,
    /// Adds the graph inputs [`H0`] (and [`C0`] for an LSTM), in PyTorch's `(L·D, batch, H)` layout.
    pub initial_states: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { opset: DEFAULT_OPSET, sequence_lens: false, initial_states: false }
    }
}

impl ExportOptions {
    /// The opset, after checking it is one recur writes.
    fn checked_opset(&self) -> Result<i64> {
        if (MIN_OPSET..=MAX_OPSET).contains(&self.opset) {
            Ok(self.opset)
        } else {
            Err(Error::ExportUnsupported {
                reason: format!("opset {}; expected {MIN_OPSET} to {MAX_OPSET}", self.opset),
            })
        }
    }
}

/// `layer` as an ONNX model with inputs `input` (and, as `options` ask, `sequence_lens`, `h0`, `c0`) and outputs
/// `output`, `h_n` (and `c_n`), which computes [`Recurrent::forward`] (or `forward_with_lengths`).
///
/// Fails with [`Error::ExportUnsupported`] for an opset out of range or an LSTM with `proj_size > 0`.
pub fn export_recurrent(layer: &Recurrent, options: &ExportOptions) -> Result<ModelProto> {
    let opset = options.checked_opset()?;
    let config = layer.config();
    check_exportable(config)?;
    let mut g = GraphBuilder::default();
    g.input(INPUT, DataType::Float, &sequence_dims(config, Some(config.input_size)));
    let x = time_major(&mut g, INPUT, config.batch_first, 3);
    let (lens, h0, c0) = state_inputs(&mut g, config, options);
    let inputs = StackInputs { x: &x, sequence_lens: lens, h0, c0 };
    let stack = recurrent_stack(&mut g, layer, "", &inputs)?;
    let output = time_major(&mut g, &stack.output, config.batch_first, 3);
    let features = config.directions() * config.hidden_size;
    g.output(&output, OUTPUT, DataType::Float, &sequence_dims(config, Some(features)));
    state_outputs(&mut g, config, stack.h_n, stack.c_n);
    Ok(model(g, "recur_recurrent", opset))
}

/// `model` as an ONNX model with inputs `input` (features, or `INT64` token ids when it has an embedding; and, as
/// `options` ask, `sequence_lens`, `h0`, `c0`) and outputs `predictions` (`rows × outputs`, as
/// [`SequenceModel::forward`] returns them), `h_n` (and `c_n`).
///
/// Fails with [`Error::ExportUnsupported`] for an opset out of range, an LSTM with `proj_size > 0` or the
/// `attention` readout.
pub fn export_sequence_model(model: &SequenceModel, options: &ExportOptions) -> Result<ModelProto> {
    let opset = options.checked_opset()?;
    let settings = model.config();
    let config = &settings.recurrent;
    check_exportable(config)?;
    if settings.readout == ReadoutName::Attention {
        return Err(head::attention_unsupported());
    }
    let params: std::collections::HashMap<String, (Vec<usize>, &[f32])> =
        model.named_params().into_iter().map(|p| (p.name, (p.shape, p.data))).collect();
    let param = |name: &str| -> Result<_> {
        params.get(name).ok_or_else(|| Error::ExportUnsupported { reason: format!("the model has no `{name}`") })
    };
    let mut g = GraphBuilder::default();
    let x = match settings.vocab {
        Some(_) => {
            g.input(INPUT, DataType::Int64, &sequence_dims(config, None));
            let ids = time_major(&mut g, INPUT, config.batch_first, 2);
            let (shape, data) = param("embedding.weight")?;
            let table = g.initializer(float_tensor("embedding.weight", shape, data));
            g.op("Gather", &[&table, &ids], vec![graph::int("axis", 0)])
        }
        None => {
            g.input(INPUT, DataType::Float, &sequence_dims(config, Some(config.input_size)));
            time_major(&mut g, INPUT, config.batch_first, 3)
        }
    };
    let (lens, h0, c0) = state_inputs(&mut g, config, options);
    let inputs = StackInputs { x: &x, sequence_lens: lens, h0, c0 };
    let stack = recurrent_stack(&mut g, model.recurrent(), "rnn.", &inputs)?;
    let features = config.directions() * config.hidden_size;
    let rows = head::readout(&mut g, settings.readout, &stack.output, features, config.batch_first, lens, opset)?;
    let (shape, data) = param("head.weight")?;
    let weight = g.initializer(float_tensor("head.weight", shape, data));
    let mut gemm_inputs = vec![rows.as_str(), weight.as_str()];
    let bias = match params.get("head.bias") {
        Some((shape, data)) => g.initializer(float_tensor("head.bias", shape, data)),
        None => String::new(),
    };
    if !bias.is_empty() {
        gemm_inputs.push(&bias);
    }
    let predictions = g.op("Gemm", &gemm_inputs, vec![graph::int("transB", 1)]);
    let row_dim = if settings.readout == ReadoutName::EveryStep { ROWS } else { BATCH };
    g.output(&predictions, PREDICTIONS, DataType::Float, &[Dim::Named(row_dim), Dim::Fixed(settings.outputs)]);
    state_outputs(&mut g, config, stack.h_n, stack.c_n);
    Ok(self::model(g, "recur_sequence_model", opset))
}

/// The bytes of an `.onnx` file holding `model`.
pub fn model_bytes(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// `(time, batch[, features])`, or `(batch, time[, features])` batch-first.
fn sequence_dims(config: &RecurrentConfig, features: Option<usize>) -> Vec<Dim> {
    let (time, batch) = (Dim::Named(TIME), Dim::Named(BATCH));
    let mut dims = if config.batch_first { vec![batch, time] } else { vec![time, batch] };
    dims.extend(features.map(Dim::Fixed));
    dims
}

/// `value` with its first two axes swapped when `batch_first` (a sequence of `rank` 2 or 3), else itself.
fn time_major(g: &mut GraphBuilder, value: &str, batch_first: bool, rank: usize) -> String {
    if !batch_first {
        return value.to_owned();
    }
    let perm: &[i64] = if rank == 2 { &[1, 0] } else { &[1, 0, 2] };
    g.op("Transpose", &[value], vec![graph::ints("perm", perm)])
}

/// Declares the optional inputs `options` ask for; returns their names.
fn state_inputs<'a>(
    g: &mut GraphBuilder,
    config: &RecurrentConfig,
    options: &ExportOptions,
) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
    let lens = options.sequence_lens.then(|| {
        g.input(SEQUENCE_LENS, DataType::Int32, &[Dim::Named(BATCH)]);
        SEQUENCE_LENS
    });
    let states = state_dims(config);
    let h0 = options.initial_states.then(|| {
        g.input(H0, DataType::Float, &states);
        H0
    });
    let c0 = (options.initial_states && config.mode == Mode::Lstm).then(|| {
        g.input(C0, DataType::Float, &states);
        C0
    });
    (lens, h0, c0)
}

/// `(L·D, batch, H)`.
fn state_dims(config: &RecurrentConfig) -> [Dim; 3] {
    [Dim::Fixed(config.num_layers * config.directions()), Dim::Named(BATCH), Dim::Fixed(config.hidden_size)]
}

/// Declares the outputs `h_n` and `c_n`.
fn state_outputs(g: &mut GraphBuilder, config: &RecurrentConfig, h_n: String, c_n: Option<String>) {
    let states = state_dims(config);
    g.output(&h_n, H_N, DataType::Float, &states);
    if let Some(c_n) = c_n {
        g.output(&c_n, C_N, DataType::Float, &states);
    }
}

/// The IR version that goes with `opset` (ONNX's versioning table).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn model(g: GraphBuilder, name: &str, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: Some(ir_version(opset)),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        producer_name: Some("recur".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(g.finish(name)),
        ..Default::default()
    }
}
