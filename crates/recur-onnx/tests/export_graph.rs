//! The exported graphs' structure (nodes, initializers, dynamic dimensions, attributes), and single-layer
//! exports read back by recur's own node importer ([`RecurrentNode`], [`RecurrentOp`]) and run against the layer
//! they came from. The onnxruntime check of the same models is `export_ort.rs`.

mod common;

use std::collections::HashMap;

use common::export::{ExportCase, Exported, cases, lengths, values};
use common::max_difference;
use recur::cells::Activation;
use recur::{Mode, ReadoutName, RecurrentConfig, Tensor};
use recur_onnx::export::{BATCH, MAX_OPSET, MIN_OPSET, TIME};
use recur_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use recur_onnx::proto::type_proto::Value as TypeValue;
use recur_onnx::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use recur_onnx::{Error, ExportOptions, OpInputs, RecurrentNode, RecurrentOp, read_model, to_f32_tensor};

fn graph(model: &ModelProto) -> &GraphProto {
    model.graph.as_ref().unwrap()
}

fn ops(graph: &GraphProto) -> Vec<&str> {
    graph.node.iter().map(NodeProto::op_type).collect()
}

/// A value's dimensions: a number, or the name of a dynamic one.
fn dims(value: &ValueInfoProto) -> Vec<String> {
    let Some(TypeValue::TensorType(t)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        panic!("`{}` is not a tensor", value.name())
    };
    let shape = t.shape.as_ref().unwrap();
    shape
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimValue::DimValue(n) => n.to_string(),
            DimValue::DimParam(p) => p.clone(),
        })
        .collect()
}

fn named<'a>(values: &'a [ValueInfoProto], name: &str) -> &'a ValueInfoProto {
    values.iter().find(|v| v.name() == name).unwrap_or_else(|| panic!("no `{name}`"))
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a recur_onnx::proto::AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

#[test]
fn every_model_exports_with_one_node_per_layer_in_onnx_layouts() {
    for case in cases() {
        let name = &case.name;
        let model = case.export().unwrap();
        // The bytes decode back to the same model.
        assert_eq!(read_model(&recur_onnx::model_bytes(&model)).unwrap(), model, "{name}");
        assert_eq!(model.opset_import[0].version(), case.options.opset, "{name}");
        let g = graph(&model);
        let config = case.config();
        let (d, h, gates) = (config.directions(), config.hidden_size, config.mode.gates());
        let op = match config.mode {
            Mode::Lstm => "LSTM",
            Mode::Gru => "GRU",
            Mode::RnnTanh | Mode::RnnRelu => "RNN",
        };
        let recurrent: Vec<&NodeProto> = g.node.iter().filter(|n| n.op_type() == op).collect();
        assert_eq!(recurrent.len(), config.num_layers, "{name}: {:?}", ops(g));
        let initializers: HashMap<&str, &[i64]> = g.initializer.iter().map(|t| (t.name(), &t.dims[..])).collect();
        let prefix = if matches!(case.model, Exported::Sequence(_)) { "rnn." } else { "" };
        for (l, node) in recurrent.iter().enumerate() {
            let shape = |role: &str| initializers.get(format!("{prefix}{role}_l{l}").as_str()).copied();
            let rows = (gates * h) as i64;
            let input = config.layer_input_size(l) as i64;
            assert_eq!(shape("W"), Some(&[d as i64, rows, input][..]), "{name} W_l{l}");
            assert_eq!(shape("R"), Some(&[d as i64, rows, h as i64][..]), "{name} R_l{l}");
            assert_eq!(shape("B"), config.bias.then_some(&[d as i64, 2 * rows][..]), "{name} B_l{l}");
            assert_eq!(shape("P"), config.peepholes.then_some(&[d as i64, 3 * h as i64][..]), "{name} P_l{l}");
            let direction = attribute(node, "direction").unwrap().s.as_deref().unwrap();
            assert_eq!(direction, if d == 2 { &b"bidirectional"[..] } else { b"forward" }, "{name}");
            assert_eq!(attribute(node, "hidden_size").unwrap().i, Some(h as i64), "{name}");
            assert!(attribute(node, "layout").is_none(), "{name}: onnxruntime's CPU kernels refuse layout = 1");
            if config.mode == Mode::Gru {
                let lbr = attribute(node, "linear_before_reset").unwrap().i;
                assert_eq!(lbr, Some(i64::from(config.linear_before_reset)), "{name}");
            }
            assert_eq!(attribute(node, "clip").and_then(|a| a.f), config.clip, "{name}");
            let lens = node.input.get(4).is_some_and(|n| n == "sequence_lens");
            assert_eq!(lens, case.options.sequence_lens, "{name}: sequence_lens");
        }
        // Inputs: the sequences with dynamic time and batch, then the options' inputs.
        let input = named(&g.input, "input");
        let time_batch = if config.batch_first { [BATCH, TIME] } else { [TIME, BATCH] };
        assert_eq!(dims(input)[..2], time_batch, "{name}");
        let mut expected_inputs = vec!["input"];
        if case.options.sequence_lens {
            expected_inputs.push("sequence_lens");
            assert_eq!(dims(named(&g.input, "sequence_lens")), [BATCH], "{name}");
        }
        if case.options.initial_states {
            expected_inputs.push("h0");
            if config.mode == Mode::Lstm {
                expected_inputs.push("c0");
            }
        }
        let input_names: Vec<&str> = g.input.iter().map(ValueInfoProto::name).collect();
        assert_eq!(input_names, expected_inputs, "{name}");
        let states = [(config.num_layers * d).to_string(), BATCH.into(), h.to_string()];
        assert_eq!(dims(named(&g.output, "h_n")), states, "{name}");
        // Batch-first sequences are transposed on the way in (never layout = 1).
        let transposed_input = g.node[0].op_type() == "Transpose" && g.node[0].input[0] == "input";
        assert_eq!(transposed_input, config.batch_first, "{name}");
        match &case.model {
            Exported::Layer(_) => {
                let output = dims(named(&g.output, "output"));
                assert_eq!(output[..2], time_batch, "{name}");
                assert_eq!(output[2], (d * h).to_string(), "{name}");
            }
            Exported::Sequence(model) => {
                let settings = model.config();
                let all = ops(g);
                assert_eq!(all.contains(&"Gather") && all[..2].contains(&"Gather"), settings.vocab.is_some(), "{name}");
                assert_eq!(*all.last().unwrap(), "Gemm", "{name}");
                let lens = case.options.sequence_lens;
                let readout_op = match (settings.readout, lens) {
                    (ReadoutName::Last, false) => "Slice",
                    (ReadoutName::Last, true) => "GatherElements",
                    (ReadoutName::Mean, false) => "ReduceMean",
                    (ReadoutName::Mean, true) => "Less",
                    (ReadoutName::EveryStep, _) => "Reshape",
                    (ReadoutName::Attention, _) => unreachable!(),
                };
                assert!(all.contains(&readout_op), "{name}: {all:?}");
                let rows = if settings.readout == ReadoutName::EveryStep { "rows" } else { BATCH };
                assert_eq!(dims(named(&g.output, "predictions")), [rows.to_string(), "3".into()], "{name}");
            }
        }
    }
}

/// Single layers of every mode and option, each with and without the optional inputs.
fn single_layers() -> Vec<RecurrentConfig> {
    vec![
        RecurrentConfig::rnn(3, 4),
        RecurrentConfig::new(Mode::RnnRelu, 3, 4).bidirectional(true),
        RecurrentConfig::rnn(3, 4).bias(false).clip(0.5),
        RecurrentConfig::rnn(2, 3).activations(vec![Activation::LeakyRelu { alpha: 0.1 }]),
        RecurrentConfig::lstm(3, 4),
        RecurrentConfig::lstm(3, 4).peepholes(true).bidirectional(true),
        RecurrentConfig::lstm(3, 4).bias(false).input_forget(true).clip(1.0),
        RecurrentConfig::lstm(3, 2).batch_first(true).activations(vec![
            Activation::HardSigmoid { alpha: 0.25, beta: 0.45 },
            Activation::Softsign,
            Activation::ScaledTanh { alpha: 1.2, beta: 0.8 },
        ]),
        RecurrentConfig::gru(3, 4),
        RecurrentConfig::gru(3, 4).linear_before_reset(false).bidirectional(true),
        RecurrentConfig::gru(3, 4).bias(false).linear_before_reset(false),
        RecurrentConfig::gru(3, 4).bidirectional(true).activations(vec![
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Affine { alpha: 0.6, beta: -0.1 },
            Activation::Elu { alpha: 0.7 },
        ]),
    ]
}

/// Swaps the first two axes of `(a, b, c)`.
fn swap(t: &Tensor) -> Tensor {
    let [a, b, c] = t.shape()[..] else { panic!("rank 3") };
    let mut out = Vec::with_capacity(t.len());
    for j in 0..b {
        for i in 0..a {
            out.extend_from_slice(&t.data()[(i * b + j) * c..(i * b + j + 1) * c]);
        }
    }
    Tensor::new([b, a, c], out).unwrap()
}

/// `Y (T, D, B, H)` as recur's `(T, B, D·H)`.
fn y_as_output(y: &Tensor) -> Tensor {
    let [t, d, b, h] = y.shape()[..] else { panic!("rank 4") };
    let mut out = Vec::with_capacity(y.len());
    for step in 0..t {
        for batch in 0..b {
            for dir in 0..d {
                let at = ((step * d + dir) * b + batch) * h;
                out.extend_from_slice(&y.data()[at..at + h]);
            }
        }
    }
    Tensor::new([t, b, d * h], out).unwrap()
}

#[test]
fn single_layer_nodes_read_back_by_recurs_importer_run_as_the_layer_does() {
    let (steps, batch) = (5, 3);
    for (k, config) in single_layers().into_iter().enumerate() {
        for (sequence_lens, initial_states) in [(false, false), (true, true)] {
            let options = ExportOptions { sequence_lens, initial_states, ..ExportOptions::default() };
            let case = ExportCase::layer(&format!("layer_{k}"), config.clone(), options);
            let Exported::Layer(layer) = &case.model else { unreachable!() };
            let model = case.export().unwrap();
            let g = graph(&model);
            let constants: HashMap<String, Tensor> =
                g.initializer.iter().filter_map(|t| Some((t.name().to_owned(), to_f32_tensor(t).ok()?))).collect();
            let node = g.node.iter().find(|n| matches!(n.op_type(), "LSTM" | "GRU" | "RNN")).unwrap();
            let imported = RecurrentNode::from_node(node, &constants).unwrap();
            let what = format!("{config:?} {options:?}");
            let c = &imported.config;
            assert_eq!(
                (c.mode, c.input_size, c.hidden_size, c.bidirectional, c.bias, c.peepholes),
                (
                    config.mode,
                    config.input_size,
                    config.hidden_size,
                    config.bidirectional,
                    config.bias,
                    config.peepholes
                ),
                "{what}"
            );
            assert_eq!(
                (c.clip, c.input_forget, c.linear_before_reset),
                (config.clip, config.input_forget, config.linear_before_reset),
                "{what}"
            );
            let op = RecurrentOp::new(imported).unwrap();

            let shape =
                if config.batch_first { [batch, steps, config.input_size] } else { [steps, batch, config.input_size] };
            let x = Tensor::new(shape, values(steps * batch * config.input_size, k as u64)).unwrap();
            let lens = sequence_lens.then(|| lengths(steps, batch));
            let states = [config.directions(), batch, config.hidden_size];
            let n = states.iter().product();
            let h0 = initial_states.then(|| Tensor::new(states, values(n, 7)).unwrap());
            let c0 = (initial_states && config.mode == Mode::Lstm).then(|| Tensor::new(states, values(n, 8)).unwrap());
            let want = match &lens {
                Some(l) => layer.forward_with_lengths(&x, l, h0.as_ref(), c0.as_ref()),
                None => layer.forward(&x, h0.as_ref(), c0.as_ref()),
            }
            .unwrap();
            // The node reads the graph's input after its Transpose to time-major.
            let x_node = if config.batch_first { swap(&x) } else { x.clone() };
            let lens64: Option<Vec<i64>> = lens.as_ref().map(|l| l.iter().map(|&n| n as i64).collect());
            let got = op
                .run(OpInputs {
                    x: Some(&x_node),
                    sequence_lens: lens64.as_deref(),
                    initial_h: h0.as_ref(),
                    initial_c: c0.as_ref(),
                })
                .unwrap();
            let want_output = if config.batch_first { swap(&want.output) } else { want.output.clone() };
            let mut worst = max_difference("Y", &y_as_output(&got.y), &want_output).unwrap();
            worst = worst.max(max_difference("Y_h", &got.y_h, &want.h_n).unwrap());
            if let Some(c_n) = &want.c_n {
                worst = worst.max(max_difference("Y_c", got.y_c.as_ref().unwrap(), c_n).unwrap());
            }
            assert!(worst <= 1e-6, "{what}: differs by {worst:e}");
        }
    }
}

#[test]
fn what_onnx_cannot_express_is_refused_with_the_reason() {
    let projected = recur::Recurrent::with_seed(RecurrentConfig::lstm(3, 4).proj_size(2), 0).unwrap();
    let err = recur_onnx::export_recurrent(&projected, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::ExportUnsupported { .. }) && err.to_string().contains("proj_size"), "{err}");

    let attention =
        ExportCase::sequence("a", None, RecurrentConfig::gru(3, 4), ReadoutName::Attention, ExportOptions::default());
    let err = attention.export().unwrap_err();
    assert!(err.to_string().contains("attention"), "{err}");

    let layer = recur::Recurrent::with_seed(RecurrentConfig::gru(3, 4), 0).unwrap();
    for opset in [MIN_OPSET - 1, MAX_OPSET + 1] {
        let err =
            recur_onnx::export_recurrent(&layer, &ExportOptions { opset, ..ExportOptions::default() }).unwrap_err();
        assert!(err.to_string().contains(&format!("opset {opset}; expected 14 to 22")), "{err}");
    }
}
