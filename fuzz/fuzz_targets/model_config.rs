//! Any bytes as the configuration JSON of three real model files (a two-layer LSTM saved from PyTorch, a small
//! sequence model and an attentional encoder–decoder): whatever sizes the configuration declares, loading must
//! refuse or succeed without panicking and without allocating more than the tensors hold; what loads runs a
//! forward pass (the encoder–decoder decodes a few tokens).

#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recur::model_file::TensorFile;
use recur::seq2seq::{DecodeOptions, Seq2Seq};
use recur::{LoadOptions, Recurrent, SequenceInput, SequenceModel, Tensor};

fn read(bytes: &[u8]) -> TensorFile {
    TensorFile::from_bytes(bytes, Path::new("seed.safetensors")).expect("a valid seed")
}

fn files() -> &'static (TensorFile, TensorFile, TensorFile) {
    static FILES: OnceLock<(TensorFile, TensorFile, TensorFile)> = OnceLock::new();
    FILES.get_or_init(|| {
        let layer = read(include_bytes!(
            "../../crates/recur/tests/fixtures/layers/lstm_l2_uni_bias1_bf0_h0_0_T3B3I2H3.model.safetensors"
        ));
        let model = read(include_bytes!("../corpus/model_file/sequence_model_tokens.safetensors"));
        let seq2seq = read(include_bytes!(
            "../../crates/recur/tests/fixtures/attention/seq2seq_lstm_general_two_layers.model.safetensors"
        ));
        (layer, model, seq2seq)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else { return };
    let (layer, model, seq2seq) = files();
    let with = |file: &TensorFile, key: &str| TensorFile {
        tensors: file.tensors.clone(),
        metadata: HashMap::from([(key.to_string(), json.to_string())]),
    };
    if let Ok(layer) = Recurrent::from_tensor_file(&with(layer, "config"), &LoadOptions::default()) {
        let _ = layer.forward(&Tensor::zeros([2, 1, layer.config().input_size]), None, None);
    }
    if let Ok(model) = SequenceModel::from_tensor_file(&with(model, "model")) {
        let x = Tensor::zeros([2, 1, model.config().recurrent.input_size]);
        let input = match model.config().vocab {
            Some(_) => SequenceInput::Tokens { ids: &[0, 1], steps: 2, batch: 1 },
            None => SequenceInput::Features(&x),
        };
        let _ = model.forward(input, None, &Default::default());
    }
    if let Ok(model) = Seq2Seq::from_tensor_file(&with(seq2seq, "config")) {
        let options = DecodeOptions { beam: 2, max_len: 3, bos: 0, eos: 0, length_penalty: 1.0 };
        let _ = model.decode(&[0, 1], &options);
    }
});
