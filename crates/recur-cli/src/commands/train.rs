//! `recur train`: trains one model on a task and writes a run directory:
//!
//! - `run.json`: the resolved settings (what `--resume` continues);
//! - `metrics.jsonl`: one JSON object per logged step;
//! - `checkpoint.safetensors`: the trainer's complete state, after every evaluation and on Ctrl-C;
//! - `model.safetensors`: the model (PyTorch names, configuration and task in the metadata);
//! - `curves.png`: the learning curves.
//!
//! A sequence-to-sequence task (`reverse`, `sort`, `add`, `dates`) trains an encoder-decoder instead, scored by
//! greedy decoding of a held-out set; its `model.safetensors` also holds both vocabularies, and it has no
//! checkpoint (such a run cannot be resumed).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::seq2seq::Seq2Seq;
use recur::train::Trainer;
use recur::{Module, SequenceModel};

use super::CommandResult;
use crate::metrics::{MetricsLog, Record};
use crate::options::{Settings, TaskArgs, TrainOptions};
use crate::progress::{Display, Progress};
use crate::run::{Outcome, train, train_seq2seq};
use crate::tasks::translate::{Translate, json_name};
use crate::{charts, interrupt, modelfile, tasks};

/// Arguments of `recur train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    #[command(flatten)]
    options: TrainOptions,
    /// The run directory to write (created if needed; must not hold another run).
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint (its settings are reused; `--steps` may extend it).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// End with one line of JSON on standard output: the final metrics.
    #[arg(long)]
    json: bool,
    /// Plain log lines instead of a progress bar.
    #[arg(long)]
    quiet: bool,
}

const RUN_FILE: &str = "run.json";
const METRICS_FILE: &str = "metrics.jsonl";
const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const CURVES_FILE: &str = "curves.png";

/// Runs `recur train`.
pub fn run(args: &TrainArgs) -> CommandResult {
    super::set_threads(args.threads)?;
    if args.resume.is_none() {
        let settings = Settings::resolve(&args.task, &args.options)?;
        if settings.task.name.is_seq2seq() {
            return run_seq2seq(args, settings);
        }
    }
    let (dir, settings, trainer, log) = match &args.resume {
        Some(dir) => resume(dir, args)?,
        None => start(args)?,
    };
    let task = tasks::build(&settings.task)?;
    let label = format!("{} {}", settings.model.as_str(), settings.task.name.as_str());
    let display = Display::choose(args.quiet);
    let started = Instant::now();
    let first_step = trainer.step_count();
    let progress = Progress::new(display, &label, first_step, settings.steps, None);
    if first_step == 0 {
        progress.note(&format!(
            "{}: {}{} hidden {}, {} layer(s), {} parameters; {} steps of batch {}, lr {}",
            task.describe(),
            settings.model.as_str(),
            if settings.bidirectional { " bidirectional" } else { "" },
            settings.hidden,
            settings.layers,
            trainer.model().num_params(),
            settings.steps,
            settings.batch,
            settings.lr
        ));
    } else {
        progress.note(&format!("resuming {} at step {first_step} of {}", dir.display(), settings.steps));
    }
    let (mut trainer, mut log) = (trainer, log);
    let checkpoint = dir.join(CHECKPOINT_FILE);
    let mut last: Option<Record> = None;
    let mut on_record = |record: &Record, trainer: &Trainer| -> Result<(), String> {
        log.append(record)?;
        if !record.eval.is_empty() {
            trainer.save_checkpoint(&checkpoint).map_err(|e| e.to_string())?;
        }
        last = Some(record.clone());
        Ok(())
    };
    let stop: &AtomicBool = interrupt::flag();
    let outcome = train(&mut trainer, task.as_ref(), &settings, stop, &progress, &mut on_record)?;
    progress.finish();
    trainer.save_checkpoint(&checkpoint)?;
    let extra = task.metadata();
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.clone())).collect();
    modelfile::save(&dir.join(modelfile::MODEL_FILE), trainer.model(), &settings.task, &extra)?;
    let records = crate::metrics::read(&dir.join(METRICS_FILE))?;
    let title = format!("{} on {}", settings.model.as_str(), task.describe());
    charts::learning_curves(&dir.join(CURVES_FILE), &title, &records, task.baseline().as_ref())?;
    let seconds = started.elapsed().as_secs_f64();
    let step = trainer.step_count();
    if outcome == Outcome::Interrupted {
        println!(
            "interrupted at step {step} of {}: checkpoint saved; continue with `recur train --resume {}`",
            settings.steps,
            dir.display()
        );
        interrupt::exit();
    }
    // The last record in memory keeps the task's order of metrics (headline first); the file's is alphabetical.
    let metrics = match last.as_ref().filter(|r| !r.eval.is_empty()) {
        Some(r) => r.eval.clone(),
        None => task.evaluate(trainer.model())?,
    };
    let done = step - first_step;
    let steps_per_s = done as f64 / seconds.max(1e-9);
    // A character model's speed is quoted in characters: each step reads batch × window of them.
    let chars_per_s = (settings.task.name == tasks::TaskName::Charlm)
        .then(|| steps_per_s * (settings.batch * settings.task.seq_len) as f64);
    let summary: String = metrics.iter().map(|(k, v)| format!(" {k} {v:.4}")).collect();
    let chars = chars_per_s.map(|c| format!(", {c:.0} characters/s")).unwrap_or_default();
    println!("done: {step} steps,{summary}; {seconds:.1} s ({steps_per_s:.1} steps/s{chars}); wrote {}", dir.display());
    if args.json {
        let mut json = serde_json::Map::new();
        json.insert("task".into(), settings.task.name.as_str().into());
        json.insert("model".into(), settings.model.as_str().into());
        json.insert("steps".into(), step.into());
        json.insert("loss".into(), last.as_ref().map(|r| r.loss).unwrap_or(f64::NAN).into());
        for (k, v) in &metrics {
            json.insert(k.clone(), (*v).into());
        }
        json.insert("seconds".into(), seconds.into());
        json.insert("steps_per_s".into(), steps_per_s.into());
        if let Some(c) = chars_per_s {
            json.insert("chars_per_s".into(), c.into());
        }
        println!("{}", serde_json::Value::Object(json));
    }
    Ok(())
}

type Start = (PathBuf, Settings, Trainer, MetricsLog);

/// A new run: settings from the options, a fresh model, an empty metrics file.
fn start(args: &TrainArgs) -> Result<Start, Box<dyn std::error::Error>> {
    let dir = new_run_dir(args)?;
    let settings = Settings::resolve(&args.task, &args.options)?;
    // The data are read first: a bad file leaves no half-made run directory behind.
    let task = tasks::build(&settings.task)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = settings.model_config(&task.shape());
    let model = SequenceModel::new(config, &mut ChaCha8Rng::seed_from_u64(settings.seed))?;
    let trainer = Trainer::new(model, settings.trainer_config())?;
    let json = serde_json::to_string_pretty(&settings).expect("settings serialise");
    write(&dir.join(RUN_FILE), &json)?;
    let log = MetricsLog::create(&dir.join(METRICS_FILE))?;
    Ok((dir, settings, trainer, log))
}

/// A run continued from its checkpoint: the metrics written after the checkpoint are dropped and written again.
fn resume(dir: &Path, args: &TrainArgs) -> Result<Start, Box<dyn std::error::Error>> {
    if args.out.as_ref().is_some_and(|out| out != dir) {
        return Err("--resume continues a run in its own directory; leave out --out (or give the same one)".into());
    }
    let run_file = dir.join(RUN_FILE);
    let json = std::fs::read_to_string(&run_file).map_err(|e| format!("{}: {e}", run_file.display()))?;
    let mut settings: Settings =
        serde_json::from_str(&json).map_err(|e| format!("{}: not a run's settings: {e}", run_file.display()))?;
    if settings.task.name.is_seq2seq() {
        return Err(format!(
            "{} is a sequence-to-sequence run, which cannot be resumed (it keeps no checkpoint); its model is {}",
            dir.display(),
            dir.join(modelfile::MODEL_FILE).display()
        )
        .into());
    }
    if let Some(steps) = args.options.steps {
        settings.steps = steps;
    }
    let trainer = Trainer::resume(dir.join(CHECKPOINT_FILE))?;
    if settings.steps < trainer.step_count() {
        return Err(
            format!("the checkpoint is at step {}, past --steps {}", trainer.step_count(), settings.steps).into()
        );
    }
    write(&run_file, &serde_json::to_string_pretty(&settings).expect("settings serialise"))?;
    let log = MetricsLog::resume(&dir.join(METRICS_FILE), trainer.step_count())?;
    Ok((dir.to_path_buf(), settings, trainer, log))
}

/// A new run directory for `settings`, refusing one that already holds a run.
fn new_run_dir(args: &TrainArgs) -> Result<PathBuf, String> {
    let dir = args.out.clone().ok_or("--out DIR is required")?;
    if dir.join(RUN_FILE).exists() {
        return Err(format!(
            "{} already holds a run: continue it with --resume {0}, or choose another --out",
            dir.display()
        ));
    }
    Ok(dir)
}

/// `recur train` on a sequence-to-sequence task: an encoder-decoder, trained by teacher forcing and scored by
/// greedy decoding of the held-out set at every evaluation.
fn run_seq2seq(args: &TrainArgs, settings: Settings) -> CommandResult {
    let dir = new_run_dir(args)?;
    let task = Translate::new(&settings.task)?;
    let config = settings.seq2seq_config(task.source_vocab().len(), task.target_vocab().len());
    // One generator draws the initial weights, then the training batches.
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut model = Seq2Seq::new(config, &mut rng)?;
    let mut optimizer = crate::run::optimizer(&settings)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write(&dir.join(RUN_FILE), &serde_json::to_string_pretty(&settings).expect("settings serialise"))?;
    let mut log = MetricsLog::create(&dir.join(METRICS_FILE))?;
    let attention = settings.attention.map_or("none", |a| a.as_str());
    let label = format!("{} {}", settings.model.as_str(), settings.task.name.as_str());
    let progress = Progress::new(Display::choose(args.quiet), &label, 0, settings.steps, None);
    progress.note(&format!(
        "{}: {} encoder-decoder{}, hidden {}, {} layer(s), attention {attention}, {} parameters; {} steps of batch \
         {}, lr {}",
        task.describe(),
        settings.model.as_str(),
        if settings.bidirectional { " (bidirectional encoder)" } else { "" },
        settings.hidden,
        settings.layers,
        model.num_params(),
        settings.steps,
        settings.batch,
        settings.lr
    ));
    let started = Instant::now();
    let mut last: Option<Record> = None;
    let mut on_record = |record: &Record, _: &Seq2Seq| -> Result<(), String> {
        log.append(record)?;
        last = Some(record.clone());
        Ok(())
    };
    let stop: &AtomicBool = interrupt::flag();
    let (outcome, step) =
        train_seq2seq(&mut model, optimizer.as_mut(), &task, &settings, &mut rng, stop, &progress, &mut on_record)?;
    progress.finish();
    let model_file = dir.join(modelfile::MODEL_FILE);
    modelfile::save_seq2seq(&model_file, &model, &settings.task, task.source_vocab(), task.target_vocab())?;
    let records = crate::metrics::read(&dir.join(METRICS_FILE))?;
    let title = format!("{} on {}", settings.model.as_str(), task.describe());
    charts::learning_curves(&dir.join(CURVES_FILE), &title, &records, None)?;
    let seconds = started.elapsed().as_secs_f64();
    if outcome == Outcome::Interrupted {
        println!("interrupted at step {step} of {}: the model so far is in {}", settings.steps, model_file.display());
        interrupt::exit();
    }
    let metrics = match last.as_ref().filter(|r| !r.eval.is_empty()) {
        Some(r) => r.eval.clone(),
        None => task.evaluate(&model)?,
    };
    let steps_per_s = step as f64 / seconds.max(1e-9);
    let summary: String = metrics.iter().map(|(k, v)| format!(" {} {v:.4}", json_name(k))).collect();
    println!("done: {step} steps,{summary}; {seconds:.1} s ({steps_per_s:.1} steps/s); wrote {}", dir.display());
    if args.json {
        let mut json = serde_json::Map::new();
        json.insert("task".into(), settings.task.name.as_str().into());
        json.insert("model".into(), settings.model.as_str().into());
        json.insert("attention".into(), attention.into());
        json.insert("steps".into(), step.into());
        json.insert("loss".into(), last.as_ref().map(|r| r.loss).unwrap_or(f64::NAN).into());
        for (k, v) in &metrics {
            json.insert(json_name(k).into(), (*v).into());
        }
        json.insert("seconds".into(), seconds.into());
        json.insert("steps_per_s".into(), steps_per_s.into());
        println!("{}", serde_json::Value::Object(json));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
