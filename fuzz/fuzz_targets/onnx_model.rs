//! Any bytes as an ONNX file for `recur import` and as a `.pb` tensor: an error naming what is wrong, or a model
//! that then runs a short sequence, never a panic or an allocation of a size the file only declares.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use recur::Tensor;
use recur_onnx::{ImportedModel, InputValue, import_model, read_tensor, to_f32_tensor, to_integer_tensor};

fuzz_target!(|data: &[u8]| {
    if let Ok(tensor) = read_tensor(data) {
        let _ = to_f32_tensor(&tensor);
        let _ = to_integer_tensor(&tensor);
    }
    let Ok(imported) = import_model(data) else { return };
    let config = imported.recurrent().config();
    let (steps, batch) = (3, 2);
    let shape = if config.batch_first { [batch, steps] } else { [steps, batch] };
    let input = match &imported.model {
        ImportedModel::Sequence(model) if model.config().vocab.is_some() => {
            InputValue::Int(vec![0; steps * batch], shape.to_vec())
        }
        _ => {
            let len = steps * batch * config.input_size;
            InputValue::Float(Tensor::new([shape[0], shape[1], config.input_size], vec![0.5; len]).unwrap())
        }
    };
    let _ = imported.run(&HashMap::from([(imported.signature.input.clone(), input)]));
});
