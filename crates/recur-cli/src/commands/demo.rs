//! `recur demo`: a vanilla RNN, an LSTM and a GRU on the adding problem at several sequence lengths, trained in
//! parallel; a table of test MSE against the 0.167 of always predicting 1, the learning curves side by side, and
//! the gradient flow of the models trained on the longest sequences.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Args, Subcommand};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use recur::SequenceModel;
use recur::train::Trainer;

use super::CommandResult;
use super::gradflow::{self, Flow, figure, measure, print_table};
use crate::metrics::Record;
use crate::model_kind::ModelKind;
use crate::options::Settings;
use crate::plot::{Panel, Series, write_png};
use crate::progress::{Display, Progress, duration};
use crate::tasks;

/// Arguments of `recur demo`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    /// Another demo instead of the adding problem.
    #[command(subcommand)]
    demo: Option<DemoCommand>,
    /// Also the longer sequences (T = 200) and more steps: several times longer.
    #[arg(long)]
    full: bool,
    /// Training steps per model (default 2000, 4000 with --full).
    #[arg(long)]
    steps: Option<u64>,
    /// Hidden size.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Sequence lengths, comma-separated (default 10,50,100; 10,50,100,200 with --full).
    #[arg(long, value_delimiter = ',')]
    lengths: Vec<usize>,
    /// Where to write the plots and results.json.
    #[arg(long, default_value = "recur-demo")]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The other demos.
#[derive(Subcommand, Debug)]
enum DemoCommand {
    /// An encoder-decoder without and with additive attention on `reverse` at several lengths; table and plots.
    Attention(super::demo_attention::AttentionDemoArgs),
}

const MODELS: [ModelKind; 3] = [ModelKind::Rnn, ModelKind::Lstm, ModelKind::Gru];

/// One finished run.
struct Outcome {
    model: ModelKind,
    seq_len: usize,
    records: Vec<Record>,
    mse: f64,
    seconds: f64,
    initial: SequenceModel,
    trained: SequenceModel,
}

/// Runs `recur demo`.
pub fn run(args: &DemoArgs) -> CommandResult {
    if let Some(DemoCommand::Attention(attention)) = &args.demo {
        return super::demo_attention::run(attention);
    }
    super::set_threads(args.threads)?;
    let steps = args.steps.unwrap_or(if args.full { 4000 } else { 2000 });
    let lengths = match (&args.lengths[..], args.full) {
        ([], false) => vec![10, 50, 100],
        ([], true) => vec![10, 50, 100, 200],
        (given, _) => given.to_vec(),
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let runs: Vec<(ModelKind, usize)> = lengths.iter().flat_map(|&t| MODELS.map(|m| (m, t))).collect();
    let mut settings = Vec::new();
    for &(model, seq_len) in &runs {
        settings.push(gradflow::settings(model, seq_len, args.hidden, args.batch, steps)?);
    }
    // Longest first: the parallel runs then end at about the same time.
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((runs[i].1, runs[i].0 == ModelKind::Lstm)));
    println!(
        "adding problem: rnn, lstm and gru, hidden {}, {steps} steps of batch {} at T = {:?}; always predicting 1 \
         scores an MSE of 0.167",
        args.hidden, args.batch, lengths
    );
    let started = Instant::now();
    let display = Display::choose(args.quiet);
    let multi = indicatif::MultiProgress::new();
    let never = AtomicBool::new(false);
    let mut outcomes: Vec<Outcome> = order
        .par_iter()
        .map(|&i| train_one(runs[i], &settings[i], display, &multi, &never))
        .collect::<Result<_, String>>()?;
    outcomes.sort_by_key(|o| (o.seq_len, o.model as u8));
    let total = started.elapsed().as_secs_f64();
    print_results(&outcomes, &lengths);
    let comparison = args.out.join("demo.png");
    comparison_figure(&comparison, &outcomes, &lengths)?;
    let longest = *lengths.iter().max().unwrap_or(&100);
    let flows: Vec<Flow> = outcomes
        .iter()
        .filter(|o| o.seq_len == longest)
        .map(|o| {
            Ok(Flow { model: o.model, initial: measure(&o.initial, longest)?, trained: measure(&o.trained, longest)? })
        })
        .collect::<Result<_, String>>()?;
    let gradflow = args.out.join("gradflow.png");
    figure(&gradflow, &flows, longest, steps)?;
    println!();
    print_table(&flows, steps);
    let results: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({"model": o.model.as_str(), "seq_len": o.seq_len, "test_mse": o.mse,
                                "seconds": o.seconds, "steps": steps})
        })
        .collect();
    let json_path = args.out.join("results.json");
    std::fs::write(&json_path, serde_json::Value::Array(results).to_string())
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!(
        "\n{} in total; wrote {}, {} and {}",
        duration(total),
        comparison.display(),
        gradflow.display(),
        json_path.display()
    );
    Ok(())
}

fn train_one(
    (model, seq_len): (ModelKind, usize),
    settings: &Settings,
    display: Display,
    multi: &indicatif::MultiProgress,
    never: &AtomicBool,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let task = tasks::build(&settings.task).map_err(|e| e.to_string())?;
    let config = settings.model_config(&task.shape());
    let initial =
        SequenceModel::new(config, &mut ChaCha8Rng::seed_from_u64(settings.seed)).map_err(|e| e.to_string())?;
    let mut trainer = Trainer::new(initial.clone(), settings.trainer_config()).map_err(|e| e.to_string())?;
    let label = format!("{} T={seq_len}", model.as_str());
    let progress = Progress::new(display, &label, 0, settings.steps, Some(multi));
    let mut records = Vec::new();
    crate::run::train(&mut trainer, task.as_ref(), settings, never, &progress, &mut |r, _| {
        records.push(r.clone());
        Ok(())
    })
    .map_err(|e| format!("{label}: {e}"))?;
    progress.finish();
    let mse = records.iter().rev().find_map(|r| r.metric("eval_mse")).unwrap_or(f64::NAN);
    Ok(Outcome {
        model,
        seq_len,
        records,
        mse,
        seconds: started.elapsed().as_secs_f64(),
        initial,
        trained: trainer.model().clone(),
    })
}

fn print_results(outcomes: &[Outcome], lengths: &[usize]) {
    println!("\ntest MSE on 1000 sequences (always predicting 1: 0.167)");
    let header: String = lengths.iter().map(|t| format!("{:>10}", format!("T={t}"))).collect();
    println!("{:<6}{header}{:>10}", "model", "seconds");
    for model in MODELS {
        let row: Vec<&Outcome> =
            lengths.iter().filter_map(|&t| outcomes.iter().find(|o| o.model == model && o.seq_len == t)).collect();
        let cells: String = row.iter().map(|o| format!("{:>10.4}", o.mse)).collect();
        let seconds: f64 = row.iter().map(|o| o.seconds).sum();
        println!("{:<6}{cells}{seconds:>10.1}", model.as_str());
    }
}

/// One panel per sequence length: the evaluation MSE of each model against the step, with the baseline.
fn comparison_figure(path: &std::path::Path, outcomes: &[Outcome], lengths: &[usize]) -> Result<(), String> {
    let panels: Vec<Panel> = lengths
        .iter()
        .map(|&t| Panel {
            title: format!("adding problem, T = {t}"),
            x_label: "step".into(),
            y_label: "test MSE".into(),
            log_y: true,
            series: outcomes
                .iter()
                .filter(|o| o.seq_len == t)
                .map(|o| Series {
                    label: o.model.as_str().into(),
                    points: o.records.iter().filter_map(|r| Some((r.step as f64, r.metric("eval_mse")?))).collect(),
                })
                .collect(),
            reference: Some((1.0 / 6.0, "predict 1 (0.167)".into())),
        })
        .collect();
    write_png(path, &panels, 520, 420)
}
