//! The adding problem (Hochreiter and Schmidhuber, 1997) at sequence length 50: a vanilla RNN, an LSTM and a GRU
//! each learn to add the two marked values of a sequence, and the table shows which ones can carry information
//! across 50 steps. Always predicting 1 scores an MSE of 0.167.
//!
//! ```sh
//! cargo run --release -p recur-tasks --example adding            # about a minute on 2 cores
//! cargo run --release -p recur-tasks --example adding -- 20 500  # sequence length 20, 500 steps
//! ```

use std::time::Instant;

use rand::SeedableRng;
use recur::train::{OptimizerKind, ScheduleKind, Targets, Trainer, TrainerConfig};
use recur::{Mode, ReadoutName, RecurrentConfig, SequenceInput, SequenceModel, SequenceModelConfig};
use recur_tasks::adding_problem;

fn main() -> recur::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let seq_len = args.next().and_then(Result::ok).unwrap_or(50);
    let steps = args.next().and_then(Result::ok).unwrap_or(3000) as u64;
    let (batch, hidden) = (32, 64);
    println!(
        "adding problem, T = {seq_len}, {steps} steps of batch {batch}, hidden {hidden}; predict-1 baseline MSE 0.167"
    );
    println!("{:<6} {:>10} {:>10} {:>8}", "model", "train MSE", "test MSE", "seconds");
    for (name, mode) in [("rnn", Mode::RnnTanh), ("lstm", Mode::Lstm), ("gru", Mode::Gru)] {
        let start = Instant::now();
        let recurrent = RecurrentConfig::new(mode, 2, hidden).batch_first(true);
        let config = SequenceModelConfig { vocab: None, recurrent, readout: ReadoutName::Last, outputs: 1 };
        let model = SequenceModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(1))?;
        let trainer_config = TrainerConfig {
            optimizer: OptimizerKind::Adam,
            lr: 3e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            clip_norm: Some(1.0),
            schedule: ScheduleKind::WarmupCosine { warmup: 50, total: steps },
            seed: 7,
        };
        let mut trainer = Trainer::new(model, trainer_config)?;
        let mut recent = Vec::new();
        for _ in 0..steps {
            let b = adding_problem(batch, seq_len, trainer.rng());
            let report = trainer.step(SequenceInput::Features(&b.input), Targets::Values(b.target.data()))?;
            recent.push(report.loss);
        }
        let tail = &recent[recent.len().saturating_sub(100)..];
        let train = tail.iter().sum::<f32>() / tail.len() as f32;
        let test = adding_problem(1000, seq_len, &mut rand::rngs::StdRng::seed_from_u64(12345));
        let mse = trainer.evaluate(SequenceInput::Features(&test.input), Targets::Values(test.target.data()))?;
        println!("{name:<6} {train:>10.4} {mse:>10.4} {:>8.1}", start.elapsed().as_secs_f32());
    }
    Ok(())
}
