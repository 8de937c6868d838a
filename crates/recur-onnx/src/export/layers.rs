//! A [`Recurrent`] stack as ONNX nodes: one `LSTM`, `GRU` or `RNN` node per layer (bidirectional when the layer
//! is), its weights converted to ONNX's gate order, and the reshaping between layers.
//!
//! ```text
//! x (T, B, I) ─ LSTM/GRU/RNN ─ Y (T, D, B, H) ─ Transpose(0, 2, 1, 3) ─ Reshape([0, 0, -1]) ─ (T, B, D·H) ─ next layer
//!                           └─ Y_h, Y_c (D, B, H) of every layer ─ Concat(axis 0) ─ h_n, c_n (L·D, B, H)
//! ```

use std::collections::HashMap;

use recur::cells::{Activation, GRU_ACTIVATIONS, LSTM_ACTIVATIONS};
use recur::{Mode, Module, Recurrent, RecurrentConfig};

use super::graph::{self, GraphBuilder};
use super::tensors::float_tensor;
use crate::error::{Error, Result};
use crate::proto::AttributeProto;
use crate::recurrent::{PEEPHOLE_ORDER, inverse_gate_order, reorder};

/// The data a recurrent stack reads, by value name (all time-major).
pub(crate) struct StackInputs<'a> {
    /// `(T, B, I)`.
    pub x: &'a str,
    /// `INT32 [B]`, each sequence's length.
    pub sequence_lens: Option<&'a str>,
    /// `(L·D, B, H)`.
    pub h0: Option<&'a str>,
    /// `(L·D, B, H)`, LSTM only.
    pub c0: Option<&'a str>,
}

/// The values a recurrent stack writes.
pub(crate) struct StackOutputs {
    /// The last layer's output, `(T, B, D·H)`.
    pub output: String,
    /// `(L·D, B, H)`.
    pub h_n: String,
    /// `(L·D, B, H)`, LSTM only.
    pub c_n: Option<String>,
}

/// Checks that ONNX's operators can express `config`.
pub(crate) fn check_exportable(config: &RecurrentConfig) -> Result<()> {
    if config.proj_size > 0 {
        return Err(Error::ExportUnsupported {
            reason: format!(
                "an LSTM with proj_size = {} (ONNX's LSTM has no projection of h); export a layer with \
                 proj_size = 0",
                config.proj_size
            ),
        });
    }
    Ok(())
}

/// Adds the nodes of `layer` reading `inputs`; parameters become initializers named `{prefix}W_l{k}`, `R`, `B`
/// and `P`.
pub(crate) fn recurrent_stack(
    g: &mut GraphBuilder,
    layer: &Recurrent,
    prefix: &str,
    inputs: &StackInputs<'_>,
) -> Result<StackOutputs> {
    let config = layer.config();
    check_exportable(config)?;
    let params: HashMap<String, Vec<f32>> =
        layer.named_params().into_iter().map(|p| (p.name, p.data.to_vec())).collect();
    let (d, h) = (config.directions(), config.hidden_size);
    let op = match config.mode {
        Mode::Lstm => "LSTM",
        Mode::Gru => "GRU",
        Mode::RnnTanh | Mode::RnnRelu => "RNN",
    };
    let mut x = inputs.x.to_owned();
    let (mut y_hs, mut y_cs) = (Vec::new(), Vec::new());
    for l in 0..config.num_layers {
        let weights = LayerWeights::of(config, l, &params);
        let name = |role: &str| format!("{prefix}{role}_l{l}");
        let w = g.initializer(float_tensor(&name("W"), &[d, weights.rows, config.layer_input_size(l)], &weights.w));
        let r = g.initializer(float_tensor(&name("R"), &[d, weights.rows, h], &weights.r));
        let b = weights.b.map(|b| g.initializer(float_tensor(&name("B"), &[d, 2 * weights.rows], &b)));
        let p = weights.p.map(|p| g.initializer(float_tensor(&name("P"), &[d, 3 * h], &p)));
        let h0 = inputs.h0.map(|s| layer_states(g, s, config, l));
        let c0 = inputs.c0.map(|s| layer_states(g, s, config, l));
        let mut node_inputs = vec![
            x.as_str(),
            &w,
            &r,
            b.as_deref().unwrap_or(""),
            inputs.sequence_lens.unwrap_or(""),
            h0.as_deref().unwrap_or(""),
            c0.as_deref().unwrap_or(""),
            p.as_deref().unwrap_or(""),
        ];
        while node_inputs.last() == Some(&"") {
            node_inputs.pop();
        }
        let (y, y_h) = (g.fresh("Y"), g.fresh("Y_h"));
        let mut outputs = vec![y.clone(), y_h.clone()];
        if config.mode == Mode::Lstm {
            let y_c = g.fresh("Y_c");
            outputs.push(y_c.clone());
            y_cs.push(y_c);
        }
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        g.node(op, &node_inputs, &outputs, attributes(config));
        y_hs.push(y_h);
        let steps_first = g.op("Transpose", &[&y], vec![graph::ints("perm", &[0, 2, 1, 3])]);
        let shape = g.ints("merge_directions", &[0, 0, -1]);
        x = g.op("Reshape", &[&steps_first, &shape], Vec::new());
    }
    let concat = |g: &mut GraphBuilder, states: &[String]| {
        let states: Vec<&str> = states.iter().map(String::as_str).collect();
        g.op("Concat", &states, vec![graph::int("axis", 0)])
    };
    let h_n = concat(g, &y_hs);
    let c_n = (config.mode == Mode::Lstm).then(|| concat(g, &y_cs));
    Ok(StackOutputs { output: x, h_n, c_n })
}

/// Layer `l`'s `(D, B, H)` slice of the `(L·D, B, H)` states `states`: the states themselves for one layer.
fn layer_states(g: &mut GraphBuilder, states: &str, config: &RecurrentConfig, l: usize) -> String {
    if config.num_layers == 1 {
        return states.to_owned();
    }
    let d = config.directions() as i64;
    let l = l as i64;
    let starts = g.ints("starts", &[l * d]);
    let ends = g.ints("ends", &[(l + 1) * d]);
    let axes = g.ints("axes", &[0]);
    g.op("Slice", &[states, &starts, &ends, &axes], Vec::new())
}

/// The node's attributes: `hidden_size`, `direction`, the activations when they are not ONNX's defaults (with
/// every `activation_alpha` and `activation_beta` written out), `clip`, `input_forget` and `linear_before_reset`.
fn attributes(config: &RecurrentConfig) -> Vec<AttributeProto> {
    let direction = if config.bidirectional { "bidirectional" } else { "forward" };
    let mut out = vec![graph::int("hidden_size", config.hidden_size as i64), graph::string("direction", direction)];
    let activations = direction_activations(config);
    let onnx_defaults: &[Activation] = match config.mode {
        Mode::Lstm => &LSTM_ACTIVATIONS,
        Mode::Gru => &GRU_ACTIVATIONS,
        Mode::RnnTanh | Mode::RnnRelu => &[Activation::Tanh],
    };
    if activations.chunks(onnx_defaults.len()).any(|chunk| chunk != onnx_defaults) {
        let names: Vec<&str> = activations.iter().map(|a| a.name()).collect();
        out.push(graph::strings("activations", &names));
        // onnxruntime hands the values out in order, each to the next function taking one, and gives a function
        // past the list's end 0 rather than ONNX's default: every function's values are written.
        let alphas: Vec<f32> = activations.iter().filter_map(|a| a.parameters().0).collect();
        let betas: Vec<f32> = activations.iter().filter_map(|a| a.parameters().1).collect();
        if !alphas.is_empty() {
            out.push(graph::floats("activation_alpha", alphas));
        }
        if !betas.is_empty() {
            out.push(graph::floats("activation_beta", betas));
        }
    }
    if let Some(clip) = config.clip {
        out.push(graph::float("clip", clip));
    }
    if config.mode == Mode::Lstm && config.input_forget {
        out.push(graph::int("input_forget", 1));
    }
    if config.mode == Mode::Gru {
        out.push(graph::int("linear_before_reset", i64::from(config.linear_before_reset)));
    }
    out
}

/// Every direction's activations, forward first, as the layer runs them.
fn direction_activations(config: &RecurrentConfig) -> Vec<Activation> {
    (0..config.directions())
        .flat_map(|direction| match config.direction_activations(direction) {
            Some(list) => list.to_vec(),
            None => match config.mode {
                Mode::Lstm => LSTM_ACTIVATIONS.to_vec(),
                Mode::Gru => GRU_ACTIVATIONS.to_vec(),
                Mode::RnnTanh => vec![Activation::Tanh],
                Mode::RnnRelu => vec![Activation::Relu],
            },
        })
        .collect()
}

/// One layer's `W`, `R`, `B` and `P` in ONNX's layout and gate order, both directions stacked.
struct LayerWeights {
    /// `gates · H`.
    rows: usize,
    w: Vec<f32>,
    r: Vec<f32>,
    b: Option<Vec<f32>>,
    p: Option<Vec<f32>>,
}

impl LayerWeights {
    fn of(config: &RecurrentConfig, l: usize, params: &HashMap<String, Vec<f32>>) -> Self {
        let h = config.hidden_size;
        let order = inverse_gate_order(config.mode);
        let rows = order.len() * h;
        let input = config.layer_input_size(l);
        let mut weights = LayerWeights {
            rows,
            w: Vec::new(),
            r: Vec::new(),
            b: config.bias.then(Vec::new),
            p: config.peepholes.then(Vec::new),
        };
        for direction in 0..config.directions() {
            let suffix = if direction == 1 { format!("_l{l}_reverse") } else { format!("_l{l}") };
            let get = |name: &str| -> &[f32] {
                params.get(&format!("{name}{suffix}")).expect("the layer has every parameter its config declares")
            };
            weights.w.extend(reorder(get("weight_ih"), &order, h * input));
            weights.r.extend(reorder(get("weight_hh"), &order, h * h));
            if let Some(b) = &mut weights.b {
                b.extend(reorder(get("bias_ih"), &order, h));
                b.extend(reorder(get("bias_hh"), &order, h));
            }
            if let Some(p) = &mut weights.p {
                p.extend(reorder(get("weight_peephole"), &PEEPHOLE_ORDER, h));
            }
        }
        weights
    }
}
