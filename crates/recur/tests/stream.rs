//! Streaming through the public API: a sequence fed a step (or a chunk) at a time gives what the full-sequence
//! forward gives, in every mode; states reset, clone, park as bytes and resume; a batch of streams loses and gains
//! members without disturbing the others; every misuse is an `Err`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::{Error, Mode, Recurrent, RecurrentConfig, StreamState, Tensor};

const MODES: [Mode; 4] = [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru];

fn random(shape: &[usize], rng: &mut StdRng) -> Tensor {
    let len = shape.iter().product();
    Tensor::new(shape, (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

/// Asserts `|a − b| ≤ 1e-6 · max(1, |b|)` element-wise.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}[{k}]: {a} vs {b}");
    }
}

/// Every configuration the parity test runs: each mode with 1–3 layers, with and without bias, the LSTM also
/// with a projection, and each mode with ONNX's options.
fn configs() -> Vec<RecurrentConfig> {
    let mut out = onnx_configs();
    out.extend(pytorch_configs());
    out
}

/// Each mode with ONNX's options beyond PyTorch's, 2 layers.
fn onnx_configs() -> Vec<RecurrentConfig> {
    use recur::cells::Activation::*;
    vec![
        RecurrentConfig::lstm(4, 5).num_layers(2).peepholes(true).input_forget(true).clip(0.7).activations(vec![
            HardSigmoid { alpha: 0.2, beta: 0.5 },
            Softsign,
            Elu { alpha: 1.0 },
        ]),
        RecurrentConfig::gru(4, 5).num_layers(2).linear_before_reset(false).clip(0.8),
        RecurrentConfig::gru(4, 5).linear_before_reset(false).activations(vec![Sigmoid, Softplus]),
        RecurrentConfig::rnn(4, 5).num_layers(2).clip(0.5).activations(vec![LeakyRelu { alpha: 0.1 }]),
    ]
}

/// PyTorch's configurations.
fn pytorch_configs() -> Vec<RecurrentConfig> {
    let mut out = Vec::new();
    for mode in MODES {
        for layers in 1..=3 {
            let projections: &[usize] = if mode == Mode::Lstm { &[0, 2] } else { &[0] };
            for &proj in projections {
                for bias in [true, false] {
                    out.push(RecurrentConfig::new(mode, 4, 5).num_layers(layers).proj_size(proj).bias(bias));
                }
            }
        }
    }
    out
}

#[test]
fn steps_match_the_full_sequence_forward() {
    let mut rng = StdRng::seed_from_u64(1);
    let steps = 7;
    for (k, config) in configs().into_iter().enumerate() {
        let model = Recurrent::with_seed(config.clone(), k as u64).unwrap();
        let (layers, out, hidden) = (config.num_layers, config.output_size(), config.hidden_size);
        for batch in [1, 3] {
            for given in [false, true] {
                let what = format!("{config:?} B{batch} h0={given}");
                let x = random(&[steps, batch, 4], &mut rng);
                let h0 = given.then(|| random(&[layers, batch, out], &mut rng));
                let c0 = (given && config.mode == Mode::Lstm).then(|| random(&[layers, batch, hidden], &mut rng));
                let want = model.forward(&x, h0.as_ref(), c0.as_ref()).unwrap();

                let mut state = StreamState::with_initial(&model, batch, h0.as_ref(), c0.as_ref()).unwrap();
                let row = batch * 4;
                for (t, x_t) in x.data().chunks_exact(row).enumerate() {
                    let y = state.step(&model, x_t).unwrap();
                    let w = &want.output.data()[t * batch * out..(t + 1) * batch * out];
                    assert_close(y, w, &format!("{what}: output at t={t}"));
                }
                assert_close(state.h_n().data(), want.h_n.data(), &format!("{what}: h_n"));
                assert_eq!(state.h_n().shape(), want.h_n.shape());
                match (state.c_n(), &want.c_n) {
                    (Some(c), Some(w)) => {
                        assert_eq!(c.shape(), w.shape());
                        assert_close(c.data(), w.data(), &format!("{what}: c_n"));
                    }
                    (None, None) => {}
                    _ => panic!("{what}: c_n presence differs"),
                }
            }
        }
    }
}

#[test]
fn chunks_match_the_full_sequence_forward() {
    let mut rng = StdRng::seed_from_u64(2);
    for (k, config) in configs().into_iter().enumerate().step_by(3) {
        let model = Recurrent::with_seed(config.clone(), k as u64).unwrap();
        let x = random(&[9, 3, 4], &mut rng);
        let want = model.forward(&x, None, None).unwrap();
        let mut state = StreamState::new(&model, 3).unwrap();
        // Chunks of 4, 1 and 4 steps: the state carries over between them.
        let mut got = Vec::new();
        for (start, len) in [(0, 4), (4, 1), (5, 4)] {
            let chunk = &x.data()[start * 12..(start + len) * 12];
            let y = state.step_chunk(&model, &Tensor::new([len, 3, 4], chunk.to_vec()).unwrap()).unwrap();
            assert_eq!(y.shape(), &[len, 3, config.output_size()]);
            got.extend_from_slice(y.data());
        }
        assert_close(&got, want.output.data(), &format!("{config:?}: chunked output"));
        assert_close(state.h_n().data(), want.h_n.data(), &format!("{config:?}: chunked h_n"));
    }
}

#[test]
fn unbatched_tensors_match_the_unbatched_forward() {
    let mut rng = StdRng::seed_from_u64(3);
    let model = Recurrent::with_seed(RecurrentConfig::lstm(4, 6).num_layers(2).proj_size(3), 0).unwrap();
    let x = random(&[5, 4], &mut rng); // (T, I)
    let h0 = random(&[2, 3], &mut rng); // (L, H_out)
    let c0 = random(&[2, 6], &mut rng); // (L, H)
    let want = model.forward(&x, Some(&h0), Some(&c0)).unwrap();

    let mut state = StreamState::with_initial(&model, 1, Some(&h0), Some(&c0)).unwrap();
    for t in 0..5 {
        let x_t = Tensor::new([4], x.data()[t * 4..(t + 1) * 4].to_vec()).unwrap();
        let y = state.step_tensor(&model, &x_t).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert_close(y.data(), &want.output.data()[t * 3..(t + 1) * 3], "unbatched step");
    }
    let mut chunked = StreamState::with_initial(&model, 1, Some(&h0), Some(&c0)).unwrap();
    let y = chunked.step_chunk(&model, &x).unwrap();
    assert_eq!(y.shape(), want.output.shape());
    assert_close(y.data(), want.output.data(), "unbatched chunk");
}

#[test]
fn a_batch_first_layer_streams_time_major_chunks() {
    let mut rng = StdRng::seed_from_u64(4);
    let model = Recurrent::with_seed(RecurrentConfig::gru(4, 5).batch_first(true), 0).unwrap();
    let x = random(&[6, 2, 4], &mut rng); // (T, B, I)
    let mut batch_first = vec![0.0; x.len()];
    for t in 0..6 {
        for b in 0..2 {
            let (src, dst) = ((t * 2 + b) * 4, (b * 6 + t) * 4);
            batch_first[dst..dst + 4].copy_from_slice(&x.data()[src..src + 4]);
        }
    }
    let want = model.forward(&Tensor::new([2, 6, 4], batch_first).unwrap(), None, None).unwrap();
    let mut state = StreamState::new(&model, 2).unwrap();
    let y = state.step_chunk(&model, &x).unwrap();
    for t in 0..6 {
        for b in 0..2 {
            let got = &y.data()[(t * 2 + b) * 5..(t * 2 + b + 1) * 5];
            assert_close(got, &want.output.data()[(b * 6 + t) * 5..(b * 6 + t + 1) * 5], "batch-first");
        }
    }
}

#[test]
fn a_bidirectional_layer_cannot_stream() {
    let model = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).bidirectional(true), 0).unwrap();
    let err = StreamState::new(&model, 1).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("unidirectional") && message.contains("reverse direction"), "{message}");
    assert!(!message.contains('\n'));
    let uni = Recurrent::with_seed(RecurrentConfig::lstm(3, 4), 0).unwrap();
    let bytes = StreamState::new(&uni, 1).unwrap().to_bytes();
    assert!(StreamState::from_bytes(&model, &bytes).is_err());
}

/// Runs `steps` steps of the same per-stream inputs: stream `b` reads `inputs[b]`.
fn run(state: &mut StreamState, model: &Recurrent, inputs: &[Vec<f32>], steps: std::ops::Range<usize>) -> Vec<f32> {
    let i = model.config().input_size;
    let mut out = Vec::new();
    for t in steps {
        let x: Vec<f32> = inputs.iter().flat_map(|s| s[t * i..(t + 1) * i].iter().copied()).collect();
        out.extend_from_slice(state.step(model, &x).unwrap());
    }
    out
}

/// The rows of streams `keep` out of step outputs of `batch` streams.
fn rows(out: &[f32], batch: usize, width: usize, keep: &[usize]) -> Vec<f32> {
    out.chunks_exact(batch * width)
        .flat_map(|step| keep.iter().flat_map(move |&b| &step[b * width..(b + 1) * width]))
        .copied()
        .collect()
}

fn stream_inputs(count: usize, steps: usize, input: usize, rng: &mut StdRng) -> Vec<Vec<f32>> {
    (0..count).map(|_| (0..steps * input).map(|_| rng.random_range(-1.0..1.0)).collect()).collect()
}

#[test]
fn removing_and_adding_streams_leaves_the_others_unchanged_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(5);
    // Small, odd and large sizes: the product kernel takes different paths for them, and odd sizes put the rows of
    // a batch at every alignment.
    for (mode, i, h) in MODES.into_iter().flat_map(|m| [(m, 4, 6), (m, 5, 7), (m, 32, 64)]) {
        // A projected LSTM's gate pass ends in a product of its own.
        let proj = if mode == Mode::Lstm { h / 2 } else { 0 };
        let model = Recurrent::with_seed(RecurrentConfig::new(mode, i, h).num_layers(2).proj_size(proj), 0).unwrap();
        let width = model.config().output_size();
        let inputs = stream_inputs(4, 12, i, &mut rng);
        let mut reference = StreamState::new(&model, 4).unwrap();
        run(&mut reference, &model, &inputs, 0..4);
        let mut state = reference.clone();
        let after = run(&mut reference, &model, &inputs, 4..12);

        // Remove stream 1: streams 0, 2, 3 go on exactly as they would have.
        let removed = state.remove(1).unwrap();
        assert_eq!((state.batch(), removed.batch()), (3, 1));
        let kept = [inputs[0].clone(), inputs[2].clone(), inputs[3].clone()];
        let got = run(&mut state, &model, &kept, 4..8);
        assert_eq!(got, rows(&after[..4 * 4 * width], 4, width, &[0, 2, 3]), "{mode}: after a removal");

        // Add a fresh stream and bring back the removed one: the three others still go on as before.
        state.append(&StreamState::new(&model, 1).unwrap()).unwrap();
        state.append(&removed).unwrap();
        assert_eq!(state.batch(), 5);
        let fresh = stream_inputs(1, 12, i, &mut rng).remove(0);
        let all = [inputs[0].clone(), inputs[2].clone(), inputs[3].clone(), fresh.clone(), inputs[1].clone()];
        let got = run(&mut state, &model, &all, 8..12);
        assert_eq!(rows(&got, 5, width, &[0, 1, 2]), rows(&after[4 * 4 * width..], 4, width, &[0, 2, 3]), "{mode}");
        // The resumed stream missed steps 4–7 and the fresh one began at step 8: each gives what it gives alone.
        let mut lone = removed.clone();
        let lone_out = run(&mut lone, &model, &[inputs[1].clone()], 8..12);
        assert_eq!(rows(&got, 5, width, &[4]), lone_out, "{mode}: resumed stream");
        let mut lone = StreamState::new(&model, 1).unwrap();
        let lone_out = run(&mut lone, &model, &[fresh], 8..12);
        assert_eq!(rows(&got, 5, width, &[3]), lone_out, "{mode}: added stream");
    }
}

#[test]
fn streams_moved_through_a_working_batch_step_as_they_would_alone() {
    // A server keeps each stream's state in a store of its own and, at each moment, moves the streams whose inputs
    // have arrived into one working batch: a stream steps exactly as it would in a state of its own.
    let mut rng = StdRng::seed_from_u64(8);
    for mode in MODES {
        let model = Recurrent::with_seed(RecurrentConfig::new(mode, 5, 12).num_layers(2), 0).unwrap();
        let inputs = stream_inputs(5, 6, 5, &mut rng);
        let alone: Vec<Vec<f32>> = inputs
            .iter()
            .map(|stream| run(&mut StreamState::new(&model, 1).unwrap(), &model, std::slice::from_ref(stream), 0..6))
            .collect();
        let mut work = StreamState::new(&model, 0).unwrap();
        let mut stores = vec![vec![0.0; work.stream_len()]; 5];
        let mut outputs = vec![Vec::new(); 5];
        let mut taken = [0usize; 5];
        // Streams take their steps in different groups, as their inputs would arrive.
        for group in [&[0, 1, 2, 3, 4][..], &[4, 2], &[0, 1, 2], &[3], &[4, 3, 2, 1, 0], &[0, 1, 3, 4], &[2, 0]] {
            work.set_batch(group.len());
            for (row, &s) in group.iter().enumerate() {
                work.write_stream(row, &stores[s]).unwrap();
            }
            let x: Vec<f32> =
                group.iter().flat_map(|&s| inputs[s][taken[s] * 5..(taken[s] + 1) * 5].to_vec()).collect();
            let h = work.step(&model, &x).unwrap().to_vec();
            for (row, &s) in group.iter().enumerate() {
                outputs[s].extend_from_slice(&h[row * 12..(row + 1) * 12]);
                work.read_stream(row, &mut stores[s]).unwrap();
                taken[s] += 1;
            }
        }
        for s in 0..5 {
            assert_eq!(outputs[s], alone[s][..taken[s] * 12], "{mode}: stream {s}");
        }
        // Lengths and indices are checked.
        let want = if mode == Mode::Lstm { 2 * 12 + 2 * 12 } else { 2 * 12 };
        assert_eq!(work.stream_len(), want);
        assert!(work.read_stream(0, &mut vec![0.0; want + 1]).is_err());
        assert!(work.write_stream(0, &vec![0.0; want - 1]).is_err());
        assert!(work.write_stream(work.batch(), &vec![0.0; want]).is_err());
    }
}

#[test]
fn resets_return_streams_to_the_zero_state() {
    let mut rng = StdRng::seed_from_u64(6);
    let model = Recurrent::with_seed(RecurrentConfig::lstm(4, 5).num_layers(2), 0).unwrap();
    let inputs = stream_inputs(2, 6, 4, &mut rng);
    let mut fresh = StreamState::new(&model, 2).unwrap();
    let from_zero = run(&mut fresh, &model, &inputs, 0..3);

    let mut state = StreamState::new(&model, 2).unwrap();
    run(&mut state, &model, &inputs, 3..6);
    state.reset();
    assert!(state.h_n().data().iter().chain(state.c_n().unwrap().data()).all(|&v| v == 0.0));
    assert_eq!(run(&mut state, &model, &inputs, 0..3), from_zero);

    // Reset stream 1 only: stream 0 keeps its state.
    let mut state = StreamState::new(&model, 2).unwrap();
    run(&mut state, &model, &inputs, 3..6);
    let before = state.h_n();
    state.reset_stream(1).unwrap();
    let after = state.h_n();
    for l in 0..2 {
        assert_eq!(after.data()[l * 10..l * 10 + 5], before.data()[l * 10..l * 10 + 5]);
        assert!(after.data()[l * 10 + 5..l * 10 + 10].iter().all(|&v| v == 0.0));
    }
    assert!(matches!(state.reset_stream(2), Err(Error::Index { .. })));
}

#[test]
fn parked_states_resume_exactly() {
    let mut rng = StdRng::seed_from_u64(7);
    for mode in MODES {
        let proj = if mode == Mode::Lstm { 2 } else { 0 };
        let model = Recurrent::with_seed(RecurrentConfig::new(mode, 4, 5).num_layers(2).proj_size(proj), 0).unwrap();
        let inputs = stream_inputs(3, 10, 4, &mut rng);
        let mut state = StreamState::new(&model, 3).unwrap();
        run(&mut state, &model, &inputs, 0..5);
        let bytes = state.to_bytes();
        let mut resumed = StreamState::from_bytes(&model, &bytes).unwrap();
        assert_eq!(resumed.to_bytes(), bytes);
        assert_eq!(resumed.batch(), 3);
        // The same weights in another model object: the state is not tied to one instance.
        let twin = Recurrent::with_seed(model.config().clone(), 0).unwrap();
        let mut cloned = state.clone();
        let want = run(&mut state, &model, &inputs, 5..10);
        assert_eq!(run(&mut resumed, &twin, &inputs, 5..10), want, "{mode}: resumed from bytes");
        assert_eq!(run(&mut cloned, &model, &inputs, 5..10), want, "{mode}: clone");
    }
}

fn decode_error(model: &Recurrent, bytes: &[u8]) -> String {
    match StreamState::from_bytes(model, bytes) {
        Err(e @ Error::Decode { .. }) => e.to_string(),
        Err(e) => panic!("expected a decode error, found {e}"),
        Ok(_) => panic!("corrupt bytes were accepted"),
    }
}

#[test]
fn corrupt_or_mismatched_bytes_are_errors() {
    let model = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).num_layers(2), 0).unwrap();
    let mut state = StreamState::new(&model, 2).unwrap();
    state.step(&model, &[0.5; 6]).unwrap();
    let bytes = state.to_bytes();

    for k in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[k] ^= 0x10;
        decode_error(&model, &flipped);
    }
    for len in 0..bytes.len() {
        decode_error(&model, &bytes[..len]);
    }
    assert!(decode_error(&model, b"not a state at all, just text").contains("magic"));
    let mut later = bytes.clone();
    later[8] = 2;
    assert!(decode_error(&model, &later).contains("version 2 is not supported"));
    let mut flipped = bytes.clone();
    flipped[70] ^= 1;
    assert!(decode_error(&model, &flipped).contains("corrupt"));

    for other in [
        RecurrentConfig::gru(3, 4).num_layers(2),
        RecurrentConfig::lstm(3, 5).num_layers(2),
        RecurrentConfig::lstm(3, 4).num_layers(1),
        RecurrentConfig::lstm(2, 4).num_layers(2),
        RecurrentConfig::lstm(3, 4).num_layers(2).proj_size(2),
    ] {
        let other = Recurrent::with_seed(other, 0).unwrap();
        let message = decode_error(&other, &bytes);
        assert!(message.contains("saved for LSTM with 2 layer(s), input_size=3, hidden_size=4"), "{message}");
    }
}

#[test]
fn misuse_is_an_error_and_leaves_the_state_unchanged() {
    let model = Recurrent::with_seed(RecurrentConfig::gru(3, 4).num_layers(2), 0).unwrap();
    let mut state = StreamState::new(&model, 2).unwrap();
    state.step(&model, &[0.25; 6]).unwrap();
    let before = state.to_bytes();

    let err = state.step(&model, &[0.0; 5]).unwrap_err();
    assert!(err.to_string().contains("input: expected shape [2, 3]"), "{err}");
    let err = state.step_tensor(&model, &Tensor::zeros([3])).unwrap_err();
    assert!(err.to_string().contains("found [3]"), "{err}");
    let err = state.step_chunk(&model, &Tensor::zeros([4, 1, 3])).unwrap_err();
    assert!(err.to_string().contains("[T, 2, 3]"), "{err}");
    let lstm = Recurrent::with_seed(RecurrentConfig::lstm(3, 4).num_layers(2), 0).unwrap();
    let err = state.step(&lstm, &[0.0; 6]).unwrap_err();
    assert!(
        err.to_string().contains("made for GRU with 2 layer(s)") && err.to_string().contains("model is LSTM"),
        "{err}"
    );
    let err = state.append(&StreamState::new(&lstm, 1).unwrap()).unwrap_err();
    assert!(err.to_string().contains("cannot append"), "{err}");
    assert!(matches!(state.remove(2), Err(Error::Index { .. })));
    assert_eq!(state.to_bytes(), before, "a failed call changed the state");

    let err = StreamState::with_initial(&model, 2, Some(&Tensor::zeros([2, 4])), None).unwrap_err();
    assert!(err.to_string().contains("h_0: expected shape [2, 2, 4]"), "{err}");
    let err = StreamState::with_initial(&model, 1, None, Some(&Tensor::zeros([2, 4]))).unwrap_err();
    assert!(err.to_string().contains("GRU has no cell state"), "{err}");
    let err = StreamState::with_initial(&lstm, 1, None, Some(&Tensor::zeros([1, 1, 4]))).unwrap_err();
    assert!(err.to_string().contains("c_0: expected shape [2, 1, 4]"), "{err}");
}

#[test]
fn an_empty_batch_steps_and_fills_up() {
    let model = Recurrent::with_seed(RecurrentConfig::lstm(3, 4), 0).unwrap();
    let mut state = StreamState::new(&model, 0).unwrap();
    assert!(state.step(&model, &[]).unwrap().is_empty());
    let bytes = state.to_bytes();
    assert_eq!(StreamState::from_bytes(&model, &bytes).unwrap().batch(), 0);
    let mut one = StreamState::new(&model, 1).unwrap();
    state.append(&one).unwrap();
    assert_eq!(state.step(&model, &[0.5; 3]).unwrap(), one.step(&model, &[0.5; 3]).unwrap());
    state.remove(0).unwrap();
    assert_eq!(state.batch(), 0);
}
