//! The built-in tasks through a real model and trainer: the data fit the model's inputs and losses, and the
//! tagging task separates bidirectional from unidirectional models as its documentation claims.

use rand::SeedableRng;
use rand::rngs::StdRng;
use recur::train::{CarriedState, Targets, Trainer, TrainerConfig};
use recur::{ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig};
use recur_tasks::{
    CharCorpus, CharStreams, REBER_VOCAB, TaggingConfig, bits_per_char, copy_baseline, copy_task, reber_batch,
    reber_fraction_correct, story_text, tagging_ceiling, tagging_task,
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
}
