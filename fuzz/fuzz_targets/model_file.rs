//! Any bytes as a model file: a recurrent layer (`config` metadata or none), a sequence model (`model`
//! metadata), and a forward pass of what loads. Loading must fail with an error or succeed, never panic, and
//! never allocate more than the file holds.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use recur::model_file::TensorFile;
use recur::{LoadOptions, Recurrent, SequenceInput, SequenceModel, Tensor};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TensorFile::from_bytes(data, Path::new("fuzz.safetensors")) else { return };
    if let Ok(layer) = Recurrent::from_tensor_file(&file, &LoadOptions::default()) {
        let x = Tensor::zeros([2, 1, layer.config().input_size]);
        let _ = layer.forward(&x, None, None);
    }
    if let Ok(model) = SequenceModel::from_tensor_file(&file) {
        let input = match model.config().vocab {
            Some(_) => SequenceInput::Tokens { ids: &[0, 0], steps: 2, batch: 1 },
            None => {
                let x = Tensor::zeros([2, 1, model.config().recurrent.input_size]);
                let _ = model.forward(SequenceInput::Features(&x), None, &Default::default());
                return;
            }
        };
        let _ = model.forward(input, None, &Default::default());
    }
});
