//! The sequence-to-sequence tasks from the crate root: batches fit a token model and the cross-entropy (padding
//! ignored), held-out sets score 1 when answered correctly, and less when not.

use rand::SeedableRng;
use rand::rngs::StdRng;
use recur::loss::{CrossEntropyLoss, DEFAULT_IGNORE_INDEX};
use recur::train::CarriedState;
use recur::{ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig};
use recur_tasks::{
    BOS, EOS, PAD, TokenVocab, TranslateBatch, TranslateTask, score_translations, translate_batch, translate_held_out,
};

fn token_model(vocab: usize, outputs: usize) -> SequenceModel {
    let recurrent = RecurrentConfig::gru(8, 16).batch_first(true);
    let config = SequenceModelConfig { vocab: Some(vocab), recurrent, readout: ReadoutName::EveryStep, outputs };
    SequenceModel::new(config, &mut StdRng::seed_from_u64(0)).unwrap()
}

#[test]
fn every_task_batch_fits_an_encoder_a_decoder_and_the_loss() {
    let mut rng = StdRng::seed_from_u64(1);
    for task in TranslateTask::ALL {
        let b = translate_batch(task, 16, 8, &mut rng).unwrap();
        let (sv, tv) = (task.source_vocab(), task.target_vocab());
        for (s, t) in &b.pairs {
            assert_eq!(task.answer(s).unwrap(), *t, "{task}: {s}");
            assert!(s.chars().all(|c| task.source_chars().contains(&c)), "{task}: {s}");
            assert!(t.chars().all(|c| task.target_chars().contains(&c)), "{task}: {t}");
        }
        assert!(b.source.iter().all(|&id| id < sv.len() && id != BOS && id != EOS));
        assert!(b.decoder_input.iter().all(|&id| id < tv.len() && id != EOS));

        // The encoder reads the padded sources with their lengths, the decoder the shifted targets.
        let encoder = token_model(sv.len(), 4);
        let input = SequenceInput::Tokens { ids: &b.source, steps: b.source_steps, batch: b.batch };
        let (out, _) = encoder.forward(input, Some(&b.source_lengths), &CarriedState::new()).unwrap();
        assert_eq!(out.len(), b.batch * b.source_steps * 4);
        let decoder = token_model(tv.len(), tv.len());
        let input = SequenceInput::Tokens { ids: &b.decoder_input, steps: b.target_steps, batch: b.batch };
        let (logits, _) = decoder.forward(input, Some(&b.target_lengths), &CarriedState::new()).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()));

        // Uniform logits score ln V on exactly the counted targets: the padding's -100 is ignored.
        let uniform = vec![0.0f32; b.targets.len() * tv.len()];
        let (loss, _) = CrossEntropyLoss::<f32>::new().forward(&uniform, tv.len(), &b.targets, None).unwrap();
        assert!((loss - (tv.len() as f32).ln()).abs() < 1e-5, "{task}: {loss}");
        let counted = b.targets.iter().filter(|&&y| y != DEFAULT_IGNORE_INDEX).count();
        assert_eq!(counted, b.target_lengths.iter().sum::<usize>());
    }
}

#[test]
fn held_out_answers_score_one_and_guesses_score_less() {
    for task in TranslateTask::ALL {
        let held_out = translate_held_out(task, 200, 10, 42).unwrap();
        let expected: Vec<String> = held_out.iter().map(|(_, t)| t.clone()).collect();
        let answered: Vec<String> = held_out.iter().map(|(s, _)| task.answer(s).unwrap()).collect();
        let perfect = score_translations(&answered, &expected).unwrap();
        assert_eq!((perfect.exact_match, perfect.token_accuracy, perfect.count), (1.0, 1.0, 200), "{task}");

        // Decoding the targets' own ids (as a perfect model's argmax would give them) reads them back.
        let batch = TranslateBatch::from_pairs(held_out.clone(), &task.source_vocab(), &task.target_vocab()).unwrap();
        let tv = task.target_vocab();
        let decoded: Vec<String> = batch
            .targets
            .chunks(batch.target_steps)
            .map(|row| tv.decode(&row.iter().map(|&y| if y < 0 { PAD } else { y as usize }).collect::<Vec<_>>()))
            .collect();
        assert_eq!(decoded, expected, "{task}");

        // Echoing the source is wrong on most examples of every task.
        let echoed: Vec<String> = held_out.iter().map(|(s, _)| s.clone()).collect();
        let echo = score_translations(&echoed, &expected).unwrap();
        assert!(echo.exact_match < 0.5 && echo.token_accuracy < 0.9, "{task}: {echo:?}");
    }
}

#[test]
fn the_token_vocab_round_trips_through_metadata() {
    for task in TranslateTask::ALL {
        for v in [task.source_vocab(), task.target_vocab()] {
            assert_eq!(TokenVocab::from_metadata(&v.to_metadata()).unwrap(), v);
        }
    }
}
