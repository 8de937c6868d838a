//! `recur demo attention`: the same GRU encoder–decoder without attention and with additive (Bahdanau) attention on
//! `reverse` at several maximum lengths, trained in parallel; a table of held-out exact match and per-token
//! accuracy, exact match against length, and the attention weights of one decoded example of the longest length.
//!
//! Without attention the encoder's final state must carry the whole source, and accuracy falls as the sources
//! grow; with attention the decoder reads each source position when it needs it (Bahdanau et al., 2015).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use recur::seq2seq::Seq2Seq;
use recur_tasks::{TranslateTask, translate_held_out};

use super::CommandResult;
use crate::options::{AttentionArg, Settings, TaskArgs, TrainOptions};
use crate::plot::{Panel, Series, write_png};
use crate::progress::{Display, Progress, duration};
use crate::tasks::TaskName;
use crate::tasks::translate::{HELD_OUT, Translate, translate};

/// Arguments of `recur demo attention`.
#[derive(Args, Debug)]
pub struct AttentionDemoArgs {
    /// Training steps per model.
    #[arg(long, default_value_t = 1500)]
    steps: u64,
    /// Hidden size of the encoder and of the decoder.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Pairs per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Maximum source lengths, comma-separated (each source has 1 to this many characters).
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,60")]
    lengths: Vec<usize>,
    /// Where to write the plots and results.json.
    #[arg(long, default_value = "recur-demo-attention")]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    quiet: bool,
}

const ATTENTION: [AttentionArg; 2] = [AttentionArg::None, AttentionArg::Additive];

/// One finished run.
struct Outcome {
    attention: AttentionArg,
    seq_len: usize,
    exact_match: f64,
    token_accuracy: f64,
    loss: f64,
    seconds: f64,
    model: Seq2Seq,
    task: Translate,
}

/// The settings of one run: `recur train --task reverse --seq-len T --attention A` with the demo's sizes, scored
/// once, at the end.
fn settings(attention: AttentionArg, seq_len: usize, args: &AttentionDemoArgs) -> Result<Settings, String> {
    let task = TaskArgs { task: Some(TaskName::Reverse), seq_len: Some(seq_len), ..TaskArgs::default() };
    let options = TrainOptions {
        hidden: Some(args.hidden),
        batch: Some(args.batch),
        steps: Some(args.steps),
        eval_every: Some(args.steps.max(1)),
        log_every: Some(args.steps.max(1)),
        attention: Some(attention),
        ..TrainOptions::default()
    };
    Settings::resolve(&task, &options)
}

/// Runs `recur demo attention`.
pub fn run(args: &AttentionDemoArgs) -> CommandResult {
    super::set_threads(args.threads)?;
    if args.lengths.is_empty() {
        return Err("--lengths needs at least one length".into());
    }
    let mut lengths = args.lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    let runs: Vec<(AttentionArg, usize)> = lengths.iter().flat_map(|&t| ATTENTION.map(|a| (a, t))).collect();
    let settings: Vec<Settings> = runs.iter().map(|&(a, t)| settings(a, t, args)).collect::<Result<_, String>>()?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    // The costliest first (attention on the longest sources): the parallel runs then end at about the same time.
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((runs[i].1, runs[i].0 != AttentionArg::None)));
    let s = &settings[0];
    println!(
        "reverse: a {} encoder-decoder (hidden {}, embedding {}) without and with additive attention, {} steps of \
         batch {} at maximum lengths {:?}",
        s.model.as_str(),
        s.hidden,
        s.embed,
        s.steps,
        s.batch,
        lengths
    );
    let started = Instant::now();
    let display = Display::choose(args.quiet);
    let multi = indicatif::MultiProgress::new();
    let never = AtomicBool::new(false);
    let mut outcomes: Vec<Outcome> = order
        .par_iter()
        .map(|&i| train_one(runs[i], &settings[i], display, &multi, &never))
        .collect::<Result<_, String>>()?;
    outcomes.sort_by_key(|o| (o.seq_len, o.attention != AttentionArg::None));
    let total = started.elapsed().as_secs_f64();
    print_results(&outcomes, &lengths);

    let accuracy = args.out.join("accuracy.png");
    accuracy_figure(&accuracy, &outcomes, s)?;
    let longest = *lengths.last().expect("at least one length");
    let heatmap = args.out.join("attention.png");
    let example = outcomes
        .iter()
        .find(|o| o.seq_len == longest && o.attention == AttentionArg::Additive)
        .ok_or("no run with attention at the longest length")?;
    let (input, output) = heatmap_figure(&heatmap, example)?;
    println!("\nattention at T={longest}: {input:?} → {output:?}");

    let results: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({"task": "reverse", "attention": o.attention.as_str(), "seq_len": o.seq_len,
                               "exact_match": o.exact_match, "token_accuracy": o.token_accuracy,
                               "eval_loss": o.loss, "held_out": HELD_OUT, "model": s.model.as_str(),
                               "hidden": s.hidden, "batch": s.batch, "steps": s.steps, "seconds": o.seconds})
        })
        .collect();
    let json_path = args.out.join("results.json");
    std::fs::write(&json_path, serde_json::Value::Array(results).to_string())
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!(
        "\n{} in total; wrote {}, {} and {}",
        duration(total),
        accuracy.display(),
        heatmap.display(),
        json_path.display()
    );
    Ok(())
}

fn train_one(
    (attention, seq_len): (AttentionArg, usize),
    settings: &Settings,
    display: Display,
    multi: &indicatif::MultiProgress,
    never: &AtomicBool,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let label = format!("{} T={seq_len}", attention.as_str());
    let fail = |e: &dyn std::fmt::Display| format!("{label}: {e}");
    let task = Translate::new(&settings.task)?;
    let config = settings.seq2seq_config(task.source_vocab().len(), task.target_vocab().len());
    // As `recur train`: one generator draws the initial weights, then the training batches.
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut model = Seq2Seq::new(config, &mut rng).map_err(|e| fail(&e))?;
    let mut optimizer = crate::run::optimizer(settings).map_err(|e| fail(&e))?;
    let progress = Progress::new(display, &label, 0, settings.steps, Some(multi));
    let mut eval = Vec::new();
    crate::run::train_seq2seq(
        &mut model,
        optimizer.as_mut(),
        &task,
        settings,
        &mut rng,
        never,
        &progress,
        &mut |r, _| {
            if !r.eval.is_empty() {
                eval = r.eval.clone();
            }
            Ok(())
        },
    )
    .map_err(|e| fail(&e))?;
    progress.finish();
    let metric = |name: &str| eval.iter().find(|(k, _)| k == name).map_or(f64::NAN, |&(_, v)| v);
    Ok(Outcome {
        attention,
        seq_len,
        exact_match: metric("eval_exact_match"),
        token_accuracy: metric("eval_token_accuracy"),
        loss: metric("eval_loss"),
        seconds: started.elapsed().as_secs_f64(),
        model,
        task,
    })
}

fn print_results(outcomes: &[Outcome], lengths: &[usize]) {
    println!("\nheld-out exact match (per-token accuracy), {HELD_OUT} pairs of each maximum length T, greedy decoding");
    let header: String = lengths.iter().map(|t| format!("{:>16}", format!("T={t}"))).collect();
    println!("{:<10}{header}{:>10}", "attention", "seconds");
    for attention in ATTENTION {
        let row: Vec<&Outcome> = lengths
            .iter()
            .filter_map(|&t| outcomes.iter().find(|o| o.attention == attention && o.seq_len == t))
            .collect();
        let cells: String =
            row.iter().map(|o| format!("{:>16}", format!("{:.3} ({:.3})", o.exact_match, o.token_accuracy))).collect();
        let seconds: f64 = row.iter().map(|o| o.seconds).sum();
        println!("{:<10}{cells}{seconds:>10.1}", attention.as_str());
    }
}

/// Exact match against the maximum length, one line per attention.
fn accuracy_figure(path: &Path, outcomes: &[Outcome], s: &Settings) -> Result<(), String> {
    let panel = Panel {
        title: format!("reverse: {} encoder-decoder, hidden {}, {} steps", s.model.as_str(), s.hidden, s.steps),
        x_label: "maximum source length T".into(),
        y_label: "held-out exact match".into(),
        log_y: false,
        series: ATTENTION
            .iter()
            .map(|&a| Series {
                label: format!("attention {}", a.as_str()),
                points: outcomes
                    .iter()
                    .filter(|o| o.attention == a)
                    .map(|o| (o.seq_len as f64, o.exact_match))
                    .collect(),
            })
            .collect(),
        reference: None,
    };
    write_png(path, &[panel], 640, 440)
}

/// Decodes one held-out-like source of the run's full length and draws its attention weights; returns the input
/// and the output.
fn heatmap_figure(path: &Path, run: &Outcome) -> Result<(String, String), String> {
    // A fixed draw, its longest source (the full length, or near it).
    let pairs = translate_held_out(TranslateTask::Reverse, 64, run.seq_len, 7).map_err(|e| e.to_string())?;
    let input = pairs.into_iter().map(|(s, _)| s).max_by_key(|s| s.chars().count()).ok_or("no example")?;
    let (output, decoded) =
        translate(&run.model, run.task.source_vocab(), run.task.target_vocab(), &input, &run.task.decode_options(1))?;
    super::translate::heatmap(path, &input, &output, &decoded)?;
    Ok((input, output))
}
