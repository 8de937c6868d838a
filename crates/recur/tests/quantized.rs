//! Weights stored in bf16, f16 and int8: a quantized layer or model computes what its stored values stand for,
//! streams as it runs whole sequences, saves and loads as stored, and refuses bad files and bad weights with an
//! error naming the tensor.

use std::collections::HashMap;

use recur::model::CarriedState;
use recur::model_file::TensorFile;
use recur::{
    Error, Int8Scale, Mode, Module, ReadoutName, Recurrent, RecurrentConfig, Scheme, SequenceInput, SequenceModel,
    SequenceModelConfig, StreamState, Tensor,
};

const SCHEMES: [Scheme; 4] = Scheme::ALL;

fn input(steps: usize, batch: usize, size: usize) -> Tensor {
    let data = (0..steps * batch * size).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
    Tensor::new([steps, batch, size], data).unwrap()
}

/// The f32 layer that holds the values `quantized`'s stored weights stand for.
fn dequantized(quantized: &Recurrent) -> Recurrent {
    let mut layer = Recurrent::zeros(quantized.config().clone()).unwrap();
    let mut tensors: HashMap<String, Tensor> = quantized.state_dict().into_iter().collect();
    for (name, m) in quantized.stored_weights() {
        tensors.insert(name, Tensor::new([m.rows(), m.cols()], m.dequantize()).unwrap());
    }
    layer.load_state_dict(&tensors).unwrap();
    layer
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn configs() -> Vec<RecurrentConfig> {
    vec![
        RecurrentConfig::rnn(10, 24).num_layers(2),
        RecurrentConfig::new(Mode::RnnRelu, 10, 24),
        RecurrentConfig::lstm(10, 70).num_layers(2),
        RecurrentConfig::gru(10, 33).num_layers(2).bidirectional(true),
        RecurrentConfig::lstm(10, 16).peepholes(true),
    ]
}

#[test]
fn a_quantized_layer_computes_what_its_stored_weights_stand_for() {
    let x = input(6, 3, 10);
    for config in configs() {
        let f32_layer = Recurrent::with_seed(config.clone(), 3).unwrap();
        let want = f32_layer.forward(&x, None, None).unwrap();
        for scheme in SCHEMES {
            let q = f32_layer.quantize(scheme).unwrap();
            assert_eq!(q.scheme(), Some(scheme), "{config:?}");
            let got = q.forward(&x, None, None).unwrap();
            let reference = dequantized(&q).forward(&x, None, None).unwrap();
            // bf16 and f16 differ from their dequantized f32 layer only in the order of the sums; int8 also
            // quantizes each row of activations to 8 bits.
            let (to_reference, to_f32) = match scheme {
                Scheme::Int8(_) => (0.03, 0.06),
                Scheme::Bf16 => (1e-5, 0.03),
                Scheme::F16 => (1e-5, 5e-3),
            };
            let d = max_diff(got.output.data(), reference.output.data());
            assert!(d <= to_reference, "{scheme} {config:?}: {d} from the dequantized layer");
            let d = max_diff(got.output.data(), want.output.data());
            assert!(d <= to_f32, "{scheme} {config:?}: {d} from the f32 layer");
            assert!(d > 0.0, "{scheme}: the weights were not quantized");
        }
    }
}

#[test]
fn a_quantized_layer_streams_as_it_runs_whole_sequences() {
    let (steps, batch) = (7, 3);
    for config in configs().into_iter().filter(|c| !c.bidirectional) {
        for scheme in SCHEMES {
            let q = Recurrent::with_seed(config.clone(), 5).unwrap().quantize(scheme).unwrap();
            let x = input(steps, batch, 10);
            let whole = q.forward(&x, None, None).unwrap();
            let mut state = StreamState::new(&q, batch).unwrap();
            let streamed = state.step_chunk(&q, &x).unwrap();
            let d = max_diff(streamed.data(), whole.output.data());
            assert!(d <= 1e-6, "{scheme} {config:?}: streamed {d} from the whole sequence");
        }
    }
}

#[test]
fn quantized_files_round_trip_smaller_and_say_their_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Recurrent::with_seed(RecurrentConfig::lstm(32, 64).num_layers(2), 1).unwrap();
    let f32_path = dir.path().join("f32.safetensors");
    layer.save(&f32_path).unwrap();
    let f32_size = std::fs::metadata(&f32_path).unwrap().len();
    // Four gates of 64 units over inputs of 32 + 64, then 64 + 64, four bytes a value.
    let f32_weights = 4 * 64 * ((32 + 64) + (64 + 64)) * 4;
    assert_eq!(layer.weight_bytes(), f32_weights);
    let x = input(4, 2, 32);
    for scheme in SCHEMES {
        let q = layer.quantize(scheme).unwrap();
        let stored: usize = q.stored_weights().iter().map(|(_, m)| m.bytes()).sum();
        assert_eq!(q.weight_bytes(), stored, "{scheme}");
        assert!(q.weight_bytes() < f32_weights / 3 * 2, "{scheme}");
        let path = dir.path().join(format!("{scheme}.safetensors"));
        q.save(&path).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let limit = if scheme.bytes_per_value() == 1 { 0.3 } else { 0.55 };
        assert!((size as f64) < limit * f32_size as f64, "{scheme}: {size} bytes against {f32_size}");
        let file = TensorFile::read(&path).unwrap();
        assert_eq!(file.metadata["quantization"], scheme.name());
        assert_eq!(file.stored.len(), 4, "{scheme}");
        let loaded = Recurrent::load(&path, &Default::default()).unwrap();
        assert_eq!(loaded, q, "{scheme}");
        assert_eq!(loaded.forward(&x, None, None).unwrap(), q.forward(&x, None, None).unwrap());
    }
}

#[test]
fn a_quantized_sequence_model_round_trips_and_keeps_its_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let config = SequenceModelConfig {
        recurrent: RecurrentConfig::gru(16, 48).batch_first(true),
        vocab: Some(30),
        readout: ReadoutName::EveryStep,
        outputs: 30,
    };
    let model = SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(2)).unwrap();
    let ids: Vec<usize> = (0..2 * 9).map(|i| (i * 7) % 30).collect();
    let tokens = SequenceInput::Tokens { ids: &ids, steps: 9, batch: 2 };
    let carried = CarriedState::new();
    let want = model.forward(tokens, None, &carried).unwrap().0;
    for scheme in SCHEMES {
        let q = model.quantize(scheme).unwrap();
        assert_eq!(q.scheme(), Some(scheme));
        let names: Vec<String> = q.stored_weights().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight"]);
        let got = q.forward(SequenceInput::Tokens { ids: &ids, steps: 9, batch: 2 }, None, &carried).unwrap().0;
        let tol = if scheme == Scheme::F16 { 0.01 } else { 0.1 };
        assert!(max_diff(&got, &want) < tol, "{scheme}: {}", max_diff(&got, &want));
        let path = dir.path().join(format!("{scheme}.safetensors"));
        q.save(&path).unwrap();
        let loaded = SequenceModel::load(&path).unwrap();
        assert_eq!(loaded, q);
        let again = loaded.forward(SequenceInput::Tokens { ids: &ids, steps: 9, batch: 2 }, None, &carried).unwrap().0;
        assert_eq!(again, got);
    }
}

#[test]
fn a_quantized_layer_cannot_be_trained() {
    let q = Recurrent::with_seed(RecurrentConfig::gru(3, 4), 0).unwrap().quantize(Scheme::Bf16).unwrap();
    let err = q.forward_train(&input(2, 1, 3), None, None, &mut rand::rng()).unwrap_err();
    assert!(err.to_string().contains("stored as bf16"), "{err}");
}

#[test]
fn weights_that_cannot_be_stored_are_refused_by_name() {
    let mut layer = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).num_layers(2), 0).unwrap();
    let mut tensors: HashMap<String, Tensor> = layer.state_dict().into_iter().collect();
    tensors.get_mut("weight_hh_l1").unwrap().data_mut()[5] = f32::NAN;
    layer.load_state_dict(&tensors).unwrap();
    for scheme in SCHEMES {
        let err = layer.quantize(scheme).unwrap_err().to_string();
        assert!(err.contains("weight_hh_l1") && err.contains("NaN"), "{scheme}: {err}");
    }
    tensors.get_mut("weight_hh_l1").unwrap().data_mut()[5] = 1e6;
    layer.load_state_dict(&tensors).unwrap();
    let err = layer.quantize(Scheme::F16).unwrap_err().to_string();
    assert!(err.contains("weight_hh_l1") && err.contains("65504"), "{err}");
    layer.quantize(Scheme::Int8(Int8Scale::Row)).unwrap();

    let projected = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).proj_size(2), 0).unwrap();
    assert!(projected.quantize(Scheme::Bf16).unwrap_err().to_string().contains("proj_size"));
}

/// The bytes of an int8 layer's file with `edit` applied to its tensors (f32 ones and the int8 ones as raw
/// bytes) and metadata.
fn edited_int8_file(
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) -> Vec<u8> {
    edited_int8_file_of(RecurrentConfig::gru(3, 4), edit)
}

fn edited_int8_file_of(
    config: RecurrentConfig,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.safetensors");
    let layer = Recurrent::with_seed(config, 0).unwrap();
    layer.quantize(Scheme::Int8(Int8Scale::Row)).unwrap().save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = parsed
        .tensors()
        .into_iter()
        .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors, &mut metadata);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (name.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize(views, Some(metadata)).unwrap()
}

fn load_error(bytes: &[u8]) -> String {
    let file = TensorFile::from_bytes(bytes, std::path::Path::new("q.safetensors"));
    match file.and_then(|f| Recurrent::from_tensor_file(&f, &Default::default())) {
        Ok(_) => panic!("the file loaded"),
        Err(e) => e.to_string(),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn bad_quantized_files_are_errors_naming_the_tensor() {
    let ok = edited_int8_file(|_, _| {});
    let file = TensorFile::from_bytes(&ok, std::path::Path::new("q")).unwrap();
    Recurrent::from_tensor_file(&file, &Default::default()).unwrap();

    let missing = edited_int8_file(|t, _| t.retain(|(n, ..)| n != "weight_hh_l0_scale"));
    let e = load_error(&missing);
    assert!(e.contains("weight_hh_l0_scale") && e.contains("no scale"), "{e}");

    let short = edited_int8_file(|t, _| {
        let s = t.iter_mut().find(|(n, ..)| n == "weight_ih_l0_scale").unwrap();
        (s.2, s.3) = (vec![2], f32_bytes(&[0.1, 0.1]));
    });
    let e = load_error(&short);
    assert!(e.contains("weight_ih_l0_scale") && e.contains("[12]"), "{e}");

    let infinite = edited_int8_file(|t, _| {
        let s = t.iter_mut().find(|(n, ..)| n == "weight_ih_l0_scale").unwrap();
        s.3[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    });
    let e = load_error(&infinite);
    assert!(e.contains("weight_ih_l0_scale") && e.contains("inf"), "{e}");

    let unknown = edited_int8_file(|_, m| drop(m.insert("quantization".into(), "int4".into())));
    let e = load_error(&unknown);
    assert!(e.contains("int4") && e.contains("unknown quantization"), "{e}");

    let int8_peepholes = edited_int8_file_of(RecurrentConfig::lstm(3, 4).peepholes(true), |t, _| {
        let b = t.iter_mut().find(|(n, ..)| n == "weight_peephole_l0").unwrap();
        (b.1, b.3) = (safetensors::Dtype::I8, vec![1; 12]);
        t.push(("weight_peephole_l0_scale".into(), safetensors::Dtype::F32, vec![3], f32_bytes(&[0.5; 3])));
    });
    let e = load_error(&int8_peepholes);
    assert!(e.contains("weight_peephole_l0") && e.contains("must be F32"), "{e}");

    let flat_bias = edited_int8_file(|t, _| {
        let b = t.iter_mut().find(|(n, ..)| n == "bias_hh_l0").unwrap();
        (b.1, b.3) = (safetensors::Dtype::I8, vec![1; 12]);
    });
    let e = load_error(&flat_bias);
    assert!(e.contains("bias_hh_l0") && e.contains("2-D"), "{e}");

    let min = edited_int8_file(|t, _| t.iter_mut().find(|(n, ..)| n == "weight_ih_l0").unwrap().3[0] = 0x80);
    let e = load_error(&min);
    assert!(e.contains("weight_ih_l0") && e.contains("−128"), "{e}");

    let wrong_shape = edited_int8_file(|t, _| {
        let w = t.iter_mut().find(|(n, ..)| n == "weight_ih_l0").unwrap();
        w.2 = vec![9, 4];
        let s = t.iter_mut().find(|(n, ..)| n == "weight_ih_l0_scale").unwrap();
        (s.2, s.3) = (vec![9], f32_bytes(&[0.1; 9]));
    });
    assert!(matches!(
        TensorFile::from_bytes(&wrong_shape, std::path::Path::new("q"))
            .and_then(|f| Recurrent::from_tensor_file(&f, &Default::default())),
        Err(Error::DeclaredSize { .. } | Error::TensorShape { .. })
    ));
}
