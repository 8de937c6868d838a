//! Models to export, and their inputs and recur's outputs as the tensors of an ONNX test case, shared by the
//! export tests.

use recur::cells::Activation;
use recur::model::CarriedState;
use recur::{Mode, ReadoutName, Recurrent, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig, Tensor};
use recur_onnx::ExportOptions;
use recur_onnx::export::{int32_tensor, int64_tensor, tensor_proto};
use recur_onnx::proto::{ModelProto, TensorProto};

/// What is exported.
pub enum Exported {
    /// A bare recurrent stack.
    Layer(Recurrent),
    /// A whole sequence model.
    Sequence(Box<SequenceModel>),
}

/// One model with its export options.
pub struct ExportCase {
    pub name: String,
    pub model: Exported,
    pub options: ExportOptions,
}

/// Deterministic values in about ±1.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|k| ((k as f64 * 0.731 + seed as f64 * 1.37).sin() * 0.9) as f32).collect()
}

/// Lengths in `1..=steps`, the first `steps`, the others shorter.
pub fn lengths(steps: usize, batch: usize) -> Vec<usize> {
    (0..batch).map(|b| steps - (2 * b) % steps).collect()
}

/// `(steps, batch, seed)` of each data set written for a case: two sizes through the same file, so that its batch
/// and time axes are shown to be dynamic.
pub const DATA_SETS: [(usize, usize, u64); 2] = [(5, 3, 1), (2, 4, 2)];

impl ExportCase {
    /// Writes the exported model and, for every one of [`DATA_SETS`], its inputs and recur's outputs in ONNX's
    /// node-test layout, into `dir/<name>/`; returns that folder.
    pub fn write_folder(&self, dir: &std::path::Path) -> std::path::PathBuf {
        use prost::Message;
        let folder = dir.join(&self.name);
        std::fs::create_dir_all(&folder).unwrap();
        let model = self.export().unwrap_or_else(|e| panic!("{}: {e}", self.name));
        std::fs::write(folder.join("model.onnx"), recur_onnx::model_bytes(&model)).unwrap();
        for (k, &(steps, batch, seed)) in DATA_SETS.iter().enumerate() {
            let data = folder.join(format!("test_data_set_{k}"));
            std::fs::create_dir_all(&data).unwrap();
            let (inputs, outputs) = self.data(steps, batch, seed);
            for (prefix, tensors) in [("input", inputs), ("output", outputs)] {
                for (n, tensor) in tensors.iter().enumerate() {
                    std::fs::write(data.join(format!("{prefix}_{n}.pb")), tensor.encode_to_vec()).unwrap();
                }
            }
        }
        folder
    }

    pub fn layer(name: &str, config: RecurrentConfig, options: ExportOptions) -> Self {
        let model = Exported::Layer(Recurrent::with_seed(config, name.len() as u64).unwrap());
        ExportCase { name: name.into(), model, options }
    }

    pub fn sequence(
        name: &str,
        vocab: Option<usize>,
        recurrent: RecurrentConfig,
        readout: ReadoutName,
        options: ExportOptions,
    ) -> Self {
        use rand::SeedableRng;
        let config = SequenceModelConfig { vocab, recurrent, readout, outputs: 3 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(name.len() as u64);
        let model = Exported::Sequence(Box::new(SequenceModel::new(config, &mut rng).unwrap()));
        ExportCase { name: name.into(), model, options }
    }

    pub fn config(&self) -> &RecurrentConfig {
        match &self.model {
            Exported::Layer(layer) => layer.config(),
            Exported::Sequence(model) => &model.config().recurrent,
        }
    }

    pub fn export(&self) -> recur_onnx::Result<ModelProto> {
        match &self.model {
            Exported::Layer(layer) => recur_onnx::export_recurrent(layer, &self.options),
            Exported::Sequence(model) => recur_onnx::export_sequence_model(model, &self.options),
        }
    }

    /// The graph's inputs and recur's outputs, in the graph's order, for `steps` × `batch`.
    pub fn data(&self, steps: usize, batch: usize, seed: u64) -> (Vec<TensorProto>, Vec<TensorProto>) {
        let config = self.config();
        let lens = self.options.sequence_lens.then(|| lengths(steps, batch));
        let states = [config.num_layers * config.directions(), batch, config.hidden_size];
        let (h0, c0) = if self.options.initial_states {
            let n = states.iter().product();
            let h0 = Tensor::new(states, values(n, seed + 1)).unwrap();
            let c0 = (config.mode == Mode::Lstm).then(|| Tensor::new(states, values(n, seed + 2)).unwrap());
            (Some(h0), c0)
        } else {
            (None, None)
        };
        let layout = |features: usize| {
            if config.batch_first { vec![batch, steps, features] } else { vec![steps, batch, features] }
        };
        let mut inputs = Vec::new();
        let (out, first) = match &self.model {
            Exported::Layer(layer) => {
                let x =
                    Tensor::new(layout(config.input_size), values(steps * batch * config.input_size, seed)).unwrap();
                inputs.push(tensor_proto("input", &x));
                let out = match &lens {
                    None => layer.forward(&x, h0.as_ref(), c0.as_ref()),
                    Some(l) => layer.forward_with_lengths(&x, l, h0.as_ref(), c0.as_ref()),
                }
                .unwrap();
                let output = tensor_proto("output", &out.output);
                (out, output)
            }
            Exported::Sequence(model) => {
                let state = match &h0 {
                    Some(h) => CarriedState::from_tensors(h.clone(), c0.clone()),
                    None => CarriedState::new(),
                };
                let (predictions, out) = match model.config().vocab {
                    Some(vocab) => {
                        let ids: Vec<usize> = (0..steps * batch).map(|k| (k * 7 + seed as usize) % vocab).collect();
                        let mut shape = layout(0);
                        shape.pop();
                        let as_i64: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
                        inputs.push(int64_tensor("input", &shape, &as_i64));
                        model.forward(SequenceInput::Tokens { ids: &ids, steps, batch }, lens.as_deref(), &state)
                    }
                    None => {
                        let x = Tensor::new(layout(config.input_size), values(steps * batch * config.input_size, seed))
                            .unwrap();
                        inputs.push(tensor_proto("input", &x));
                        model.forward(SequenceInput::Features(&x), lens.as_deref(), &state)
                    }
                }
                .unwrap();
                let outputs = model.config().outputs;
                let rows = predictions.len() / outputs;
                let predictions = Tensor::new([rows, outputs], predictions).unwrap();
                (out, tensor_proto("predictions", &predictions))
            }
        };
        if let Some(l) = &lens {
            let l: Vec<i32> = l.iter().map(|&n| n as i32).collect();
            inputs.push(int32_tensor("sequence_lens", &[batch], &l));
        }
        inputs.extend(h0.map(|h| tensor_proto("h0", &h)));
        inputs.extend(c0.map(|c| tensor_proto("c0", &c)));
        let mut outputs = vec![first, tensor_proto("h_n", &out.h_n)];
        outputs.extend(out.c_n.map(|c| tensor_proto("c_n", &c)));
        (inputs, outputs)
    }
}

fn options(opset: i64, sequence_lens: bool, initial_states: bool) -> ExportOptions {
    ExportOptions { opset, sequence_lens, initial_states }
}

/// ONNX's functions with parameters, per direction of each cell kind.
fn lstm_activations() -> Vec<Activation> {
    vec![
        Activation::HardSigmoid { alpha: 0.3, beta: 0.4 },
        Activation::ScaledTanh { alpha: 0.9, beta: 1.1 },
        Activation::Affine { alpha: 0.7, beta: 0.1 },
        Activation::Sigmoid,
        Activation::LeakyRelu { alpha: 0.05 },
        Activation::Softsign,
    ]
}

/// Every kind of model the export writes, each with some of the options.
pub fn cases() -> Vec<ExportCase> {
    use ReadoutName::*;
    let d = ExportOptions::default();
    let all = options(17, true, true);
    vec![
        ExportCase::layer(
            "lstm_two_layers_bidirectional",
            RecurrentConfig::lstm(3, 4).num_layers(2).bidirectional(true),
            d,
        ),
        ExportCase::layer(
            "lstm_peepholes_clip_lengths_states",
            RecurrentConfig::lstm(3, 4).peepholes(true).clip(0.8).bidirectional(true),
            all,
        ),
        ExportCase::layer("lstm_input_forget_no_bias", RecurrentConfig::lstm(2, 3).input_forget(true).bias(false), d),
        ExportCase::layer(
            "lstm_activations_bidirectional",
            RecurrentConfig::lstm(3, 4).bidirectional(true).activations(lstm_activations()),
            options(17, true, false),
        ),
        ExportCase::layer(
            "gru_batch_first_two_layers_lengths_states",
            RecurrentConfig::gru(3, 4).num_layers(2).batch_first(true),
            all,
        ),
        ExportCase::layer(
            "gru_linear_before_reset_false_bidirectional",
            RecurrentConfig::gru(3, 4).linear_before_reset(false).bidirectional(true),
            options(14, true, false),
        ),
        ExportCase::layer(
            "gru_activations_clip",
            RecurrentConfig::gru(3, 4)
                .clip(1.5)
                .activations(vec![Activation::ThresholdedRelu { alpha: 0.2 }, Activation::Elu { alpha: 0.8 }]),
            options(22, false, true),
        ),
        ExportCase::layer("rnn_tanh_no_bias_two_layers", RecurrentConfig::rnn(3, 4).num_layers(2).bias(false), d),
        ExportCase::layer(
            "rnn_relu_bidirectional_batch_first_lengths",
            RecurrentConfig::new(Mode::RnnRelu, 3, 4).bidirectional(true).batch_first(true).num_layers(2),
            options(18, true, true),
        ),
        ExportCase::layer(
            "rnn_affine_softplus",
            RecurrentConfig::rnn(3, 4)
                .bidirectional(true)
                .activations(vec![Activation::Affine { alpha: 0.5, beta: 0.2 }, Activation::Softplus]),
            d,
        ),
        ExportCase::sequence("seq_features_last", None, RecurrentConfig::lstm(3, 4).bidirectional(true), Last, d),
        ExportCase::sequence(
            "seq_features_last_batch_first_lengths",
            None,
            RecurrentConfig::lstm(3, 4).bidirectional(true).batch_first(true).num_layers(2),
            Last,
            options(17, true, false),
        ),
        ExportCase::sequence("seq_features_mean", None, RecurrentConfig::gru(3, 4), Mean, options(14, false, false)),
        ExportCase::sequence(
            "seq_features_mean_opset18",
            None,
            RecurrentConfig::gru(3, 4).batch_first(true).bidirectional(true),
            Mean,
            options(18, false, true),
        ),
        ExportCase::sequence(
            "seq_features_mean_lengths_bidirectional",
            None,
            RecurrentConfig::rnn(3, 4).bidirectional(true).num_layers(2),
            Mean,
            options(17, true, false),
        ),
        ExportCase::sequence(
            "seq_tokens_every_step_batch_first_states",
            Some(11),
            RecurrentConfig::lstm(5, 4).num_layers(2).batch_first(true),
            EveryStep,
            options(17, false, true),
        ),
        ExportCase::sequence(
            "seq_tokens_every_step_lengths",
            Some(11),
            RecurrentConfig::gru(5, 4).bidirectional(true),
            EveryStep,
            all,
        ),
        ExportCase::sequence("seq_tokens_last", Some(7), RecurrentConfig::rnn(4, 5), Last, options(22, false, false)),
        ExportCase::sequence(
            "seq_tokens_mean_lengths_batch_first",
            Some(7),
            RecurrentConfig::lstm(4, 3).batch_first(true).bidirectional(true),
            Mean,
            options(14, true, true),
        ),
    ]
}
