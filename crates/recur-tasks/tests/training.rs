//! Training end to end: a model learns, checkpoints resume exactly (also mid-stream with truncated BPTT), a
//! crash while saving leaves the previous checkpoint intact, and a non-finite loss stops training.

use recur::train::{OptimizerKind, ScheduleKind, Targets, Trainer, TrainerConfig};
use recur::{Error, Mode, ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig, Tensor};
use recur_tasks::adding_problem;

fn adding_model(mode: Mode, layers: usize, dropout: f32, seed: u64) -> SequenceModel {
    let recurrent = RecurrentConfig::new(mode, 2, 16).num_layers(layers).batch_first(true).dropout(dropout);
    let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::Last, outputs: 1 };
    SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed)).unwrap()
}

fn trainer_config() -> TrainerConfig {
    TrainerConfig {
        optimizer: OptimizerKind::AdamW,
        lr: 1e-2,
        momentum: 0.0,
        weight_decay: 0.01,
        clip_norm: Some(1.0),
        schedule: ScheduleKind::WarmupCosine { warmup: 3, total: 20 },
        seed: 9,
    }
}

/// One training step on a fresh adding batch drawn from the trainer's own generator.
fn adding_step(trainer: &mut Trainer, steps: usize) -> f32 {
    let batch = adding_problem(8, steps, trainer.rng());
    trainer.step(SequenceInput::Features(&batch.input), Targets::Values(batch.target.data())).unwrap().loss
}

#[test]
fn lstm_learns_a_short_sum() {
    // Predict the sum of two marked values in a 6-step sequence: easy for an LSTM within 300 steps.
    let mut trainer = Trainer::new(adding_model(Mode::Lstm, 1, 0.0, 1), TrainerConfig::adam(1e-2)).unwrap();
    let first: f32 = (0..10).map(|_| adding_step(&mut trainer, 6)).sum::<f32>() / 10.0;
    for _ in 0..300 {
        adding_step(&mut trainer, 6);
    }
    let test = adding_problem(256, 6, trainer.rng());
    let mse = trainer.evaluate(SequenceInput::Features(&test.input), Targets::Values(test.target.data())).unwrap();
    assert!(mse < 0.02, "test MSE {mse} after training (first losses {first}); the predict-1 baseline is 0.167");
}

#[test]
fn resuming_a_checkpoint_reproduces_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let mut straight = Trainer::new(adding_model(Mode::Gru, 2, 0.3, 4), trainer_config()).unwrap();
    let losses: Vec<f32> = (0..12).map(|_| adding_step(&mut straight, 7)).collect();

    let mut first = Trainer::new(adding_model(Mode::Gru, 2, 0.3, 4), trainer_config()).unwrap();
    for want in &losses[..5] {
        assert_eq!(adding_step(&mut first, 7).to_bits(), want.to_bits());
    }
    first.save_checkpoint(&path).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(&path).unwrap();
    assert_eq!(resumed.step_count(), 5);
    for (i, want) in losses[5..].iter().enumerate() {
        let got = adding_step(&mut resumed, 7);
        assert_eq!(got.to_bits(), want.to_bits(), "step {}: {got} vs {want}", i + 5);
    }
    // The models end identical too.
    assert_eq!(resumed.model(), straight.model());
}

#[test]
fn truncated_bptt_resumes_mid_stream() {
    // A character-model layout: tokens, an embedding, an LSTM, a prediction at every step; windows of 4 steps
    // over 3 streams, with the state carried (detached) from window to window.
    let text: Vec<usize> = (0..200).map(|i| (i * 7 + i / 3) % 11).collect();
    let (steps, index) = recur::train::contiguous_streams(text.len(), 3).unwrap();
    let make = || {
        let recurrent = RecurrentConfig::lstm(6, 12);
        let config = SequenceModelConfig { vocab: Some(11), recurrent, readout: ReadoutName::EveryStep, outputs: 11 };
        let model =
            SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(2)).unwrap();
        Trainer::new(model, TrainerConfig::adam(5e-3)).unwrap()
    };
    let windows: Vec<std::ops::Range<usize>> = recur::train::windows(steps - 1, 4).collect();
    let (text, index) = (&text, &index);
    let run = |trainer: &mut Trainer, w: &std::ops::Range<usize>| {
        let ids: Vec<usize> = w.clone().flat_map(|t| (0..3).map(move |b| text[index[t * 3 + b]])).collect();
        let next: Vec<i64> = w.clone().flat_map(|t| (0..3).map(move |b| text[index[(t + 1) * 3 + b]] as i64)).collect();
        let input = SequenceInput::Tokens { ids: &ids, steps: w.len(), batch: 3 };
        trainer.step_stateful(input, Targets::Classes(&next)).unwrap().loss
    };
    let mut straight = make();
    let losses: Vec<f32> = windows.iter().map(|w| run(&mut straight, w)).collect();
    assert!(losses.last().unwrap() < &losses[0], "the loss falls: {losses:?}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lm.ckpt");
    let mut first = make();
    for w in &windows[..5] {
        run(&mut first, w);
    }
    first.save_checkpoint(&path).unwrap();
    let mut resumed = Trainer::resume(&path).unwrap();
    for (w, want) in windows[5..].iter().zip(&losses[5..]) {
        assert_eq!(run(&mut resumed, w).to_bits(), want.to_bits());
    }
}

#[test]
fn a_crash_while_saving_leaves_the_previous_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let mut trainer = Trainer::new(adding_model(Mode::RnnTanh, 1, 0.0, 3), trainer_config()).unwrap();
    adding_step(&mut trainer, 5);
    trainer.save_checkpoint(&path).unwrap();
    // A save that died before its rename leaves only a partial temporary file beside the checkpoint.
    std::fs::write(dir.path().join("run.ckpt.tmp"), b"partial garbage").unwrap();
    assert_eq!(Trainer::resume(&path).unwrap().step_count(), 1);
    adding_step(&mut trainer, 5);
    trainer.save_checkpoint(&path).unwrap();
    assert_eq!(Trainer::resume(&path).unwrap().step_count(), 2);
    assert!(!dir.path().join("run.ckpt.tmp").exists(), "the temporary file is renamed away");
    // A truncated checkpoint is an error, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Trainer::resume(&path).is_err());
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step() {
    let mut trainer = Trainer::new(adding_model(Mode::Lstm, 1, 0.0, 5), trainer_config()).unwrap();
    adding_step(&mut trainer, 5);
    adding_step(&mut trainer, 5);
    let batch = adding_problem(8, 5, trainer.rng());
    let mut targets = batch.target.data().to_vec();
    targets[3] = f32::NAN;
    let before = trainer.model().clone();
    let err = trainer.step(SequenceInput::Features(&batch.input), Targets::Values(&targets)).unwrap_err();
    assert!(matches!(err, Error::NonFinite { step: 2, .. }), "{err}");
    assert!(err.to_string().contains("training step 2: the loss is not finite"), "{err}");
    assert_eq!(trainer.model(), &before, "nothing was updated");
    let huge = Tensor::new(batch.input.shape().to_vec(), vec![f32::INFINITY; batch.input.len()]).unwrap();
    let err = trainer.step(SequenceInput::Features(&huge), Targets::Values(batch.target.data())).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
}

#[test]
fn variable_length_batches_train_many_to_one_and_many_to_many() {
    use rand::Rng;
    // Many-to-one: the class is the sign of each sequence's last valid value; padding holds misleading values.
    let recurrent = RecurrentConfig::gru(1, 12).batch_first(true);
    let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::Last, outputs: 2 };
    let model = SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0)).unwrap();
    let mut trainer = Trainer::new(model, TrainerConfig::adam(2e-2)).unwrap();
    let (batch, steps) = (16, 6);
    let draw = |trainer: &mut Trainer| {
        let lengths: Vec<usize> = (0..batch).map(|_| trainer.rng().random_range(1..=steps)).collect();
        let mut x = vec![0.0f32; batch * steps];
        let mut labels = vec![0i64; batch];
        for b in 0..batch {
            for t in 0..steps {
                let v: f32 = trainer.rng().random_range(-1.0..1.0);
                // Past the end, the opposite sign of the label: a model reading padding would be wrong.
                x[b * steps + t] = v;
            }
            let last = x[b * steps + lengths[b] - 1];
            labels[b] = (last > 0.0) as i64;
            for t in lengths[b]..steps {
                x[b * steps + t] = if last > 0.0 { -1.0 } else { 1.0 };
            }
        }
        (Tensor::new([batch, steps, 1], x).unwrap(), lengths, labels)
    };
    for _ in 0..150 {
        let (x, lengths, labels) = draw(&mut trainer);
        trainer.step_with_lengths(SequenceInput::Features(&x), &lengths, Targets::Classes(&labels)).unwrap();
    }
    let (x, lengths, labels) = draw(&mut trainer);
    let loss = trainer.evaluate_with_lengths(SequenceInput::Features(&x), Some(&lengths), Targets::Classes(&labels));
    assert!(loss.unwrap() < 0.3, "the classifier reads each sequence's last valid step");

    // Many-to-many: padded steps carry out-of-range targets, which the loss never reads.
    let recurrent = RecurrentConfig::lstm(1, 8);
    let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::EveryStep, outputs: 3 };
    let model = SequenceModel::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1)).unwrap();
    let mut tagger = Trainer::new(model, TrainerConfig::adam(1e-2)).unwrap();
    let lengths = [3usize, 1, 2];
    let x = Tensor::new([3, 3, 1], vec![0.5; 9]).unwrap(); // (T, B, 1)
    let targets: Vec<i64> = (0..3).flat_map(|t| lengths.iter().map(move |&n| if t < n { 1 } else { 999 })).collect();
    let report = tagger.step_with_lengths(SequenceInput::Features(&x), &lengths, Targets::Classes(&targets)).unwrap();
    assert!(report.loss.is_finite());
}
