//! Variable-length batches: a padded batch with lengths gives, for every sequence, exactly what that sequence
//! gives alone (truncated to its length), with zeros past its end; bad lengths are errors.

use recur::{Mode, Recurrent, RecurrentConfig, Tensor};

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| (((i + 7 * seed) as f32) * 0.61).sin()).collect()
}

#[test]
fn each_sequence_of_a_padded_batch_equals_the_sequence_alone() {
    let (steps, input, lengths) = (5, 3, [2usize, 5, 1, 5, 3]);
    let batch = lengths.len();
    for mode in [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru] {
        for bidirectional in [false, true] {
            for batch_first in [false, true] {
                let proj = if mode == Mode::Lstm { 2 } else { 0 };
                let config = RecurrentConfig::new(mode, input, 4)
                    .num_layers(2)
                    .bidirectional(bidirectional)
                    .batch_first(batch_first)
                    .proj_size(proj);
                let layer = Recurrent::with_seed(config.clone(), 3).unwrap();
                let states = 2 * config.directions();
                let out_size = config.output_size();
                let h0 = Tensor::new([states, batch, out_size], values(states * batch * out_size, 1)).unwrap();
                let c0 = (mode == Mode::Lstm)
                    .then(|| Tensor::new([states, batch, 4], values(states * batch * 4, 2)).unwrap());
                let x = values(steps * batch * input, 3); // (T, B, I) time-major values
                let at = |t: usize, b: usize| &x[(t * batch + b) * input..(t * batch + b + 1) * input];
                let x_tensor = if batch_first {
                    let data = (0..batch).flat_map(|b| (0..steps).flat_map(move |t| at(t, b).to_vec())).collect();
                    Tensor::new([batch, steps, input], data).unwrap()
                } else {
                    Tensor::new([steps, batch, input], x.clone()).unwrap()
                };
                let out = layer.forward_with_lengths(&x_tensor, &lengths, Some(&h0), c0.as_ref()).unwrap();
                let width = config.directions() * out_size;
                for (b, &len) in lengths.iter().enumerate() {
                    let alone_x =
                        Tensor::new([len, input], (0..len).flat_map(|t| at(t, b).to_vec()).collect()).unwrap();
                    let pick = |s: &Tensor, size: usize| {
                        let d = s.data();
                        Tensor::new(
                            [states, size],
                            (0..states)
                                .flat_map(|k| d[(k * batch + b) * size..(k * batch + b + 1) * size].to_vec())
                                .collect(),
                        )
                        .unwrap()
                    };
                    let alone_c0 = c0.as_ref().map(|c| pick(c, 4));
                    let alone = layer.forward(&alone_x, Some(&pick(&h0, out_size)), alone_c0.as_ref()).unwrap();
                    for t in 0..steps {
                        let row = if batch_first { b * steps + t } else { t * batch + b };
                        let got = &out.output.data()[row * width..(row + 1) * width];
                        if t < len {
                            let want = &alone.output.data()[t * width..(t + 1) * width];
                            let err = got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                            assert!(err <= 1e-6, "{mode} bi={bidirectional} bf={batch_first} b={b} t={t}: {err}");
                        } else {
                            assert!(got.iter().all(|&v| v == 0.0), "{mode}: padding is zero at b={b} t={t}");
                        }
                    }
                    let err = pick(&out.h_n, out_size).max_abs_diff(&alone.h_n).unwrap();
                    assert!(err <= 1e-6, "{mode} bi={bidirectional}: h_n of sequence {b} differs by {err}");
                    if let (Some(c_n), Some(alone_c)) = (&out.c_n, &alone.c_n) {
                        assert!(pick(c_n, 4).max_abs_diff(alone_c).unwrap() <= 1e-6, "{mode}: c_n of sequence {b}");
                    }
                }
                // Full lengths are the plain forward.
                let full = layer.forward_with_lengths(&x_tensor, &[steps; 5], Some(&h0), c0.as_ref()).unwrap();
                assert_eq!(full, layer.forward(&x_tensor, Some(&h0), c0.as_ref()).unwrap());
            }
        }
    }
}

#[test]
fn bad_lengths_are_errors() {
    let layer = Recurrent::with_seed(RecurrentConfig::gru(2, 3), 0).unwrap();
    let x = Tensor::zeros([4, 3, 2]);
    let err = layer.forward_with_lengths(&x, &[1, 2], None, None).unwrap_err().to_string();
    assert!(err.contains("lengths: expected shape [3]") && err.contains("found [2]"), "{err}");
    let err = layer.forward_with_lengths(&x, &[1, 0, 2], None, None).unwrap_err().to_string();
    assert!(err.contains("lengths[1] = 0 is out of range (valid: 1..=4"), "{err}");
    let err = layer.forward_with_lengths(&x, &[1, 5, 2], None, None).unwrap_err().to_string();
    assert!(err.contains("lengths[1] = 5 is out of range"), "{err}");
}
