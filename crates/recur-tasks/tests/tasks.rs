//! The built-in tasks through a real model and trainer: the data fit the model's inputs and losses, and the
//! tagging task separates bidirectional from unidirectional models as its documentation claims.

use rand::SeedableRng;
use rand::rngs::StdRng;
use recur::train::{CarriedState, Targets, Trainer, TrainerConfig};
use recur::{ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig};
use recur_tasks::{
    CharCorpus, CharStreams, REBER_VOCAB, TaggingConfig, bits_per_char, copy_baseline, copy_task, reber_batch,
    reber_fraction_correct, score_text, story_text, tagging_ceiling, tagging_task,
};

fn token_model(vocab: usize, recurrent: RecurrentConfig, outputs: usize, seed: u64) -> SequenceModel {
    let config = SequenceModelConfig { vocab: Some(vocab), recurrent, readout: ReadoutName::EveryStep, outputs };
    SequenceModel::new(config, &mut StdRng::seed_from_u64(seed)).unwrap()
}

/// Trains on fresh tagging batches and returns the accuracy on a large held-out batch.
fn tagging_accuracy(bidirectional: bool) -> f64 {
    let config = TaggingConfig { vocab: 4, steps: 8, reach: 1 };
    let recurrent = RecurrentConfig::gru(8, 32).batch_first(true).bidirectional(bidirectional);
    let mut trainer = Trainer::new(token_model(4, recurrent, config.classes(), 1), TrainerConfig::adam(1e-2)).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..300 {
        let b = tagging_task(&config, 32, &mut rng).unwrap();
        let input = SequenceInput::Tokens { ids: &b.ids, steps: b.steps, batch: b.batch };
        trainer.step(input, Targets::Classes(&b.targets)).unwrap();
    }
    let test = tagging_task(&config, 2000, &mut StdRng::seed_from_u64(99)).unwrap();
    let input = SequenceInput::Tokens { ids: &test.ids, steps: test.steps, batch: test.batch };
    let (logits, _) = trainer.model().forward(input, None, &CarriedState::new()).unwrap();
    test.accuracy(&logits, config.classes()).unwrap()
}

#[test]
fn tagging_needs_the_future_bidirectional_beats_the_unidirectional_ceiling() {
    let ceiling = tagging_ceiling(&TaggingConfig { vocab: 4, steps: 8, reach: 1 });
    let uni = tagging_accuracy(false);
    let bi = tagging_accuracy(true);
    assert!(uni < ceiling + 0.03, "unidirectional {uni} vs ceiling {ceiling}");
    assert!(bi > 0.9, "bidirectional {bi} (ceiling of a unidirectional model {ceiling})");
}

#[test]
fn copy_and_reber_batches_fit_a_token_model_and_its_loss() {
    let mut rng = StdRng::seed_from_u64(0);
    let copy = copy_task(4, 5, &mut rng).unwrap();
    let model = token_model(recur_tasks::COPY_VOCAB, RecurrentConfig::lstm(8, 16).batch_first(true), 10, 0);
    let mut trainer = Trainer::new(model, TrainerConfig::adam(1e-2)).unwrap();
    let input = SequenceInput::Tokens { ids: &copy.ids, steps: copy.steps, batch: copy.batch };
    // An untrained model is near the uniform guess, ln 10, well above the memoryless baseline.
    let report = trainer.step(input, Targets::Classes(&copy.targets)).unwrap();
    assert!((report.loss - 10f32.ln()).abs() < 0.3, "{}", report.loss);
    assert!(copy_baseline(5) < report.loss as f64);
    let recall = copy.recall_targets();
    trainer.step(input, Targets::Classes(&recall)).unwrap();
    let (logits, _) = trainer.model().forward(input, None, &CarriedState::new()).unwrap();
    let acc = copy.accuracy(&logits, 10).unwrap();
    assert!((0.0..=1.0).contains(&acc));

    let reber = reber_batch(6, &mut rng).unwrap();
    let model = token_model(REBER_VOCAB, RecurrentConfig::lstm(8, 16).batch_first(true), REBER_VOCAB, 0);
    let mut trainer = Trainer::new(model, TrainerConfig::adam(1e-2)).unwrap();
    let input = SequenceInput::Tokens { ids: &reber.ids, steps: reber.steps, batch: reber.batch };
    let report = trainer.step_with_lengths(input, &reber.lengths, Targets::Classes(&reber.targets)).unwrap();
    assert!(report.loss.is_finite());
    let (logits, _) = trainer.model().forward(input, Some(&reber.lengths), &CarriedState::new()).unwrap();
    let correct = reber_fraction_correct(&reber, &logits, REBER_VOCAB).unwrap();
    assert!((0.0..=1.0).contains(&correct));
}

/// A small LSTM trained for three passes over 20,000 characters of generated stories, and the corpus.
fn trained_char_model() -> (Trainer, CharCorpus) {
    let corpus = CharCorpus::from_text(&story_text(5, 20_000), std::path::Path::new("stories")).unwrap();
    let v = corpus.vocab.len();
    let model = token_model(v, RecurrentConfig::lstm(16, 64), v, 3); // time-major, as the streams are
    let mut trainer = Trainer::new(model, TrainerConfig::adam(1e-2)).unwrap();
    let train = CharStreams::new(&corpus.train, 8).unwrap();
    for _epoch in 0..3 {
        trainer.carried_state().reset();
        for range in train.windows(32) {
            let w = train.window(range).unwrap();
            let input = SequenceInput::Tokens { ids: &w.ids, steps: w.steps, batch: w.batch };
            trainer.step_stateful(input, Targets::Classes(&w.targets)).unwrap();
        }
    }
    (trainer, corpus)
}

#[test]
fn charlm_trains_with_truncated_bptt_below_the_unigram_rate() {
    let (trainer, corpus) = trained_char_model();
    let valid = CharStreams::new(&corpus.valid, 1).unwrap();
    let w = valid.window(0..valid.steps - 1).unwrap();
    let nats = trainer
        .evaluate(SequenceInput::Tokens { ids: &w.ids, steps: w.steps, batch: 1 }, Targets::Classes(&w.targets))
        .unwrap();
    let bpc = bits_per_char(nats as f64);
    assert!(
        bpc < corpus.unigram_bits() - 0.5,
        "validation {bpc} bits per character, unigram {}",
        corpus.unigram_bits()
    );
    let score = score_text(trainer.model(), &corpus.valid, 1, 50).unwrap();
    assert_eq!(score.chars, corpus.valid.len() - 1);
    assert!((score.bits_per_char() - bpc).abs() < 1e-4, "{} vs {bpc}", score.bits_per_char());
}

#[test]
fn text_scores_are_those_of_reading_each_stream_in_one_go() {
    let (trainer, corpus) = trained_char_model();
    let model = trainer.model();
    let text = &corpus.valid; // 2000 characters: 1999 predictions
    // One stream in windows of 7 is one forward pass over the whole text.
    let one = score_text(model, text, 1, 7).unwrap();
    let whole = score_text(model, text, 1, text.len()).unwrap();
    assert_eq!((one.chars, whole.chars), (1999, 1999));
    assert!((one.nats - whole.nats).abs() < 1e-6 * whole.nats, "{one:?} {whole:?}");
    let input = SequenceInput::Tokens { ids: &text[..1999], steps: 1999, batch: 1 };
    let (logits, _) = model.forward(input, None, &CarriedState::new()).unwrap();
    let targets: Vec<i64> = text[1..].iter().map(|&i| i as i64).collect();
    let mean = recur::CrossEntropyLoss::new().forward(&logits, corpus.vocab.len(), &targets, None).unwrap().0;
    assert!((whole.mean_nats() - mean as f64).abs() < 1e-5, "{} vs {mean}", whole.mean_nats());

    // Six streams (1999 = 6·333 + 1: the first is one longer) score as their pieces do alone, and every
    // character but the first is predicted once.
    let six = score_text(model, text, 6, 40).unwrap();
    assert_eq!(six.chars, 1999);
    let mut start = 0;
    let mut pieces = 0.0;
    for b in 0..6 {
        let len = 333 + usize::from(b == 0);
        pieces += score_text(model, &text[start..start + len + 1], 1, 40).unwrap().nats;
        start += len;
    }
    assert_eq!(start, 1999);
    assert!((six.nats - pieces).abs() < 1e-6 * pieces, "{} vs {pieces}", six.nats);
    // Five fresh starts among 2000 characters cost little.
    assert!((six.bits_per_char() - one.bits_per_char()).abs() < 0.05, "{six:?} {one:?}");

    // Carrying the state beats starting every window of 10 from zeros, on text with long-range structure.
    let mut cold = 0.0;
    for chunk in text.chunks(10).filter(|c| c.len() > 1) {
        cold += score_text(model, chunk, 1, 10).unwrap().nats;
    }
    let cold_chars = text.chunks(10).map(|c| c.len() - 1).sum::<usize>() as f64;
    assert!(one.mean_nats() < cold / cold_chars - 0.05, "carried {} vs cold {}", one.mean_nats(), cold / cold_chars);

    assert!(score_text(model, &text[..1], 1, 10).is_err());
    assert_eq!(score_text(model, &text[..2], 8, 10).unwrap().chars, 1);
}
