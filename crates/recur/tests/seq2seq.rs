//! The encoder–decoder end to end: decoding through the streaming path agrees with the teacher-forced pass, a
//! saved model decodes the same after loading, bad input is an error, and a small model learns to reverse.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::attention::Score;
use recur::optim::{Adam, AdamConfig, Optimizer, clip_grad_norm};
use recur::params::Trainable;
use recur::seq2seq::{DecodeOptions, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig};
use recur::{CrossEntropyLoss, Mode};

const BOS: usize = 1;
const EOS: usize = 2;
/// Symbols are ids `3..3 + SYMBOLS`.
const SYMBOLS: usize = 5;
const VOCAB: usize = 3 + SYMBOLS;

fn config(mode: Mode, attention: Option<Score>, bidirectional: bool) -> Seq2SeqConfig {
    Seq2SeqConfig {
        mode,
        source_vocab: VOCAB,
        target_vocab: VOCAB,
        embedding_dim: 8,
        hidden_size: 16,
        num_layers: 1,
        bidirectional,
        attention,
    }
}

/// `Σₜ log softmax(logitsₜ)[targetₜ]` of one sequence scoring `targets`, teacher-forced on `BOS targets…` (all but
/// the last).
fn teacher_forced_log_prob(model: &Seq2Seq, source: &[usize], targets: &[usize]) -> f32 {
    let decoder_input: Vec<usize> = std::iter::once(BOS).chain(targets[..targets.len() - 1].iter().copied()).collect();
    let steps = decoder_input.len();
    let batch = Seq2SeqBatch {
        batch: 1,
        source,
        source_lengths: &[source.len()],
        source_steps: source.len(),
        decoder_input: &decoder_input,
        target_lengths: &[steps],
        target_steps: steps,
    };
    let logits = model.forward(&batch).unwrap();
    logits
        .chunks_exact(VOCAB)
        .zip(targets)
        .map(|(row, &t)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
            row[t] - log_sum
        })
        .sum()
}

#[test]
fn streamed_decoding_scores_its_output_as_the_teacher_forced_pass_does() {
    for (mode, attention, bidirectional) in [
        (Mode::Gru, Some(Score::Additive), true),
        (Mode::Lstm, Some(Score::General), false),
        (Mode::RnnTanh, None, true),
        (Mode::Lstm, Some(Score::Dot), true),
    ] {
        let model = Seq2Seq::with_seed(config(mode, attention, bidirectional), 5).unwrap();
        let source = [3, 4, 5, 6, 7, 3];
        for beam in [1, 3] {
            let options = DecodeOptions { beam, max_len: 8, ..DecodeOptions::default() };
            let out = model.decode(&source, &options).unwrap();
            assert!(out.tokens.len() <= 8);
            let steps = out.tokens.len() + usize::from(out.finished);
            assert_eq!(out.weights.len(), if attention.is_some() { steps * source.len() } else { 0 });
            let mut scored = out.tokens.clone();
            if out.finished {
                scored.push(EOS);
            }
            let want = teacher_forced_log_prob(&model, &source, &scored);
            assert!((out.log_prob - want).abs() < 1e-4, "{mode:?} beam {beam}: {} vs {want}", out.log_prob);
        }
    }
}

#[test]
fn a_saved_model_decodes_the_same_after_loading() {
    let model = Seq2Seq::with_seed(config(Mode::Gru, Some(Score::Additive), true), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s2s.safetensors");
    model.save(&path).unwrap();
    let loaded = Seq2Seq::load(&path).unwrap();
    assert_eq!(loaded, model);
    let options = DecodeOptions { beam: 2, max_len: 6, ..DecodeOptions::default() };
    assert_eq!(loaded.decode(&[3, 4, 5], &options).unwrap(), model.decode(&[3, 4, 5], &options).unwrap());
}

#[test]
fn bad_input_is_an_error_that_names_it() {
    let model = Seq2Seq::with_seed(config(Mode::Gru, Some(Score::Dot), false), 1).unwrap();
    let err = |r: recur::Result<_>| r.map(|_: recur::seq2seq::Decoded| ()).unwrap_err().to_string();
    let beam0 = DecodeOptions { beam: 0, ..DecodeOptions::default() };
    assert!(err(model.decode(&[3], &beam0)).contains("beam 0"));
    assert!(err(model.decode(&[], &DecodeOptions::default())).contains("source"));
    let e = err(model.decode(&[3, VOCAB], &DecodeOptions::default()));
    assert!(e.contains(&VOCAB.to_string()), "{e}");
    let bad_eos = DecodeOptions { eos: VOCAB + 4, ..DecodeOptions::default() };
    assert!(err(model.decode(&[3], &bad_eos)).contains("eos token"));
    let batch = Seq2SeqBatch {
        batch: 1,
        source: &[3, 4],
        source_lengths: &[3],
        source_steps: 2,
        decoder_input: &[1],
        target_lengths: &[1],
        target_steps: 1,
    };
    assert!(model.forward(&batch).unwrap_err().to_string().contains("length"));
    let mut file = recur::model_file::TensorFile::default();
    file.metadata.insert("config".into(), serde_json::to_string(model.config()).unwrap());
    let e = Seq2Seq::from_tensor_file(&file).unwrap_err().to_string();
    assert!(e.contains("no tensor `encoder.weight_ih_l0`"), "{e}");
}

/// Random sequences of 1..=`max_len` symbols and their reverses, as a padded batch.
struct Reversal {
    source: Vec<usize>,
    source_lengths: Vec<usize>,
    decoder_input: Vec<usize>,
    targets: Vec<i64>,
    target_lengths: Vec<usize>,
    max_len: usize,
}

fn reversal_batch(batch: usize, max_len: usize, rng: &mut StdRng) -> Reversal {
    let mut r = Reversal {
        source: vec![0; batch * max_len],
        source_lengths: Vec::new(),
        decoder_input: vec![0; batch * (max_len + 1)],
        targets: vec![-100; batch * (max_len + 1)],
        target_lengths: Vec::new(),
        max_len,
    };
    for b in 0..batch {
        let len = rng.random_range(1..=max_len);
        let seq: Vec<usize> = (0..len).map(|_| 3 + rng.random_range(0..SYMBOLS)).collect();
        r.source[b * max_len..b * max_len + len].copy_from_slice(&seq);
        let row = b * (max_len + 1);
        r.decoder_input[row] = BOS;
        for (t, &s) in seq.iter().rev().enumerate() {
            r.decoder_input[row + t + 1] = s;
            r.targets[row + t] = s as i64;
        }
        r.targets[row + len] = EOS as i64;
        r.source_lengths.push(len);
        r.target_lengths.push(len + 1);
    }
    r
}

#[test]
fn a_small_attentional_model_learns_to_reverse() {
    let mut model = Seq2Seq::with_seed(config(Mode::Gru, Some(Score::Additive), true), 0).unwrap();
    let mut adam = Adam::new(AdamConfig::new(0.01)).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let loss_fn = CrossEntropyLoss::new();
    let mut last = f32::INFINITY;
    for _ in 0..300 {
        let r = reversal_batch(32, 5, &mut rng);
        let batch = Seq2SeqBatch {
            batch: 32,
            source: &r.source,
            source_lengths: &r.source_lengths,
            source_steps: r.max_len,
            decoder_input: &r.decoder_input,
            target_lengths: &r.target_lengths,
            target_steps: r.max_len + 1,
        };
        let (logits, cache) = model.forward_train(&batch).unwrap();
        let (loss, d_logits) = loss_fn.forward(&logits, VOCAB, &r.targets, None).unwrap();
        model.backward(&cache, &d_logits).unwrap();
        let mut params = model.parameters();
        clip_grad_norm(&mut params, 1.0).unwrap();
        adam.step(&mut params).unwrap();
        drop(params);
        model.zero_grad();
        last = loss;
    }
    assert!(last < 0.2, "training loss after 300 steps: {last}");
    let mut correct = 0;
    for _ in 0..50 {
        let len = rng.random_range(1..=5);
        let seq: Vec<usize> = (0..len).map(|_| 3 + rng.random_range(0..SYMBOLS)).collect();
        let out = model.decode(&seq, &DecodeOptions { max_len: 12, ..DecodeOptions::default() }).unwrap();
        let want: Vec<usize> = seq.iter().rev().copied().collect();
        correct += usize::from(out.finished && out.tokens == want);
    }
    assert!(correct >= 45, "{correct} of 50 reversed exactly");
}

#[test]
fn a_file_that_declares_sizes_its_tensors_do_not_have_is_refused_before_allocating() {
    let model = Seq2Seq::with_seed(config(Mode::Lstm, Some(Score::Additive), true), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s2s.safetensors");
    model.save(&path).unwrap();
    let file = recur::model_file::TensorFile::read(&path).unwrap();
    for (field, value) in [
        ("source_vocab", 1usize << 50),
        ("target_vocab", 1 << 50),
        ("hidden_size", 1 << 40),
        ("embedding_dim", 1 << 45),
    ] {
        let mut hostile = file.clone();
        let mut json: serde_json::Value = serde_json::from_str(&hostile.metadata["config"]).unwrap();
        json[field] = serde_json::json!(value);
        hostile.metadata.insert("config".into(), json.to_string());
        let err = Seq2Seq::from_tensor_file(&hostile).unwrap_err().to_string();
        assert!(err.contains(field) || err.contains("size"), "{field}: {err}");
    }
}
