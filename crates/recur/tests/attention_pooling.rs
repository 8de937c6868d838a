//! A sequence model whose head reads the recurrent output through attention pooling: it trains through the
//! `Trainer`, its weights fall on the step that decides the label, and it saves and loads with its `pool.`
//! parameters.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::train::{Targets, Trainer, TrainerConfig};
use recur::{Module, ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig};

const STEPS: usize = 12;

/// Sequences of tokens `2..8` with one marker token `1` at a random valid step; the label is the token after it
/// (`2..8` → class `0..6`), so the model must find the marker wherever it is.
fn batch(size: usize, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>, Vec<i64>) {
    let mut ids = vec![0; size * STEPS];
    let (mut lengths, mut labels) = (Vec::new(), Vec::new());
    for b in 0..size {
        let len = rng.random_range(4..=STEPS);
        for t in 0..len {
            ids[b * STEPS + t] = rng.random_range(2..8);
        }
        let at = rng.random_range(0..len - 1);
        ids[b * STEPS + at] = 1;
        labels.push(ids[b * STEPS + at + 1] as i64 - 2);
        lengths.push(len);
    }
    (ids, lengths, labels)
}

#[test]
fn an_attention_pooled_classifier_learns_and_round_trips() {
    let config = SequenceModelConfig {
        vocab: Some(8),
        recurrent: RecurrentConfig::gru(8, 24).batch_first(true).bidirectional(true),
        readout: ReadoutName::Attention,
        outputs: 6,
    };
    let model = SequenceModel::new(config, &mut StdRng::seed_from_u64(0)).unwrap();
    let names: Vec<String> = model.named_params().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"pool.query".to_string()) && names.contains(&"pool.energy.weight".to_string()));
    let mut trainer = Trainer::new(model, TrainerConfig::adam(0.01)).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..300 {
        let (ids, lengths, labels) = batch(32, &mut rng);
        let input = SequenceInput::Tokens { ids: &ids, steps: STEPS, batch: 32 };
        trainer.step_with_lengths(input, &lengths, Targets::Classes(&labels)).unwrap();
    }
    let (ids, lengths, labels) = batch(200, &mut rng);
    let input = SequenceInput::Tokens { ids: &ids, steps: STEPS, batch: 200 };
    let state = recur::train::CarriedState::new();
    let (logits, _) = trainer.model().forward(input, Some(&lengths), &state).unwrap();
    let correct = logits
        .chunks_exact(6)
        .zip(&labels)
        .filter(|(row, label)| {
            let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            best as i64 == **label
        })
        .count();
    assert!(correct >= 180, "{correct} of 200 classified");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pooled.safetensors");
    trainer.model().save(&path).unwrap();
    let loaded = SequenceModel::load(&path).unwrap();
    // Gradients are not saved: compare what is.
    assert!(loaded.state_dict() == trainer.model().state_dict(), "the loaded model's parameters differ");
}
