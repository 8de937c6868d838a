//! `recur gradflow`: BPTT's vanishing gradient made visible. On the adding problem, for a loss at the last step,
//! the norm of its gradient with respect to each earlier hidden state, at initialisation and after some
//! training, one curve per model, on a log scale.

use std::path::{Path, PathBuf};

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use recur::SequenceModel;
use recur::train::Trainer;
use recur_tasks::adding_problem;

use super::CommandResult;
use crate::gradflow::hidden_gradient_norms;
use crate::model_kind::ModelKind;
use crate::options::{Settings, TaskArgs, TrainOptions};
use crate::plot::{Panel, Series, write_png};
use crate::progress::{Display, Progress};
use crate::tasks::{self, TaskName};

/// Arguments of `recur gradflow`.
#[derive(Args, Debug)]
pub struct GradflowArgs {
    /// Sequence length of the adding problem.
    #[arg(long, default_value_t = 100)]
    seq_len: usize,
    /// The models, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rnn,lstm,gru")]
    models: Vec<ModelKind>,
    /// Hidden size.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Training steps before the second measurement (the demo's: the LSTM and the GRU have learnt T = 100 by then).
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Where to write gradflow.png and gradflow.json.
    #[arg(long, default_value = "recur-gradflow")]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    quiet: bool,
}

/// One model's gradient norms, `‖∂L/∂h_t‖` for every `t`.
pub struct Flow {
    /// Which model.
    pub model: ModelKind,
    /// At initialisation.
    pub initial: Vec<f64>,
    /// After training.
    pub trained: Vec<f64>,
}

/// Runs `recur gradflow`.
pub fn run(args: &GradflowArgs) -> CommandResult {
    super::set_threads(args.threads)?;
    if args.seq_len < 2 {
        return Err(format!("--seq-len must be at least 2, found {}", args.seq_len).into());
    }
    if args.models.is_empty() {
        return Err("--models needs at least one model".into());
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let display = Display::choose(args.quiet);
    let multi = indicatif::MultiProgress::new();
    let flows: Vec<Flow> = args
        .models
        .par_iter()
        .map(|&model| -> Result<Flow, String> {
            let settings = settings(model, args.seq_len, args.hidden, args.batch, args.steps)?;
            let progress = Progress::new(display, model.as_str(), 0, args.steps, Some(&multi));
            let (initial_model, trainer) = train(&settings, &progress)?;
            progress.finish();
            Ok(Flow {
                model,
                initial: measure(&initial_model, args.seq_len)?,
                trained: measure(trainer.model(), args.seq_len)?,
            })
        })
        .collect::<Result<_, _>>()?;
    let png = args.out.join("gradflow.png");
    figure(&png, &flows, args.seq_len, args.steps)?;
    let json: Vec<serde_json::Value> = flows
        .iter()
        .map(|f| serde_json::json!({"model": f.model.as_str(), "initial": f.initial, "trained": f.trained}))
        .collect();
    let json_path = args.out.join("gradflow.json");
    std::fs::write(&json_path, serde_json::Value::Array(json).to_string())
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    print_table(&flows, args.steps);
    println!("wrote {} and {}", png.display(), json_path.display());
    Ok(())
}

/// The adding-problem settings of a gradient-flow (and demo) model: the task's defaults (Adam 3e-3, clip 1,
/// forget-gate bias 1 for the LSTM) with one layer (the measurement unrolls one cell) of the given size.
pub fn settings(model: ModelKind, seq_len: usize, hidden: usize, batch: usize, steps: u64) -> Result<Settings, String> {
    let task = TaskArgs { task: Some(TaskName::Adding), seq_len: Some(seq_len), ..TaskArgs::default() };
    let options = TrainOptions {
        model: Some(model),
        hidden: Some(hidden),
        layers: Some(1),
        batch: Some(batch),
        steps: Some(steps),
        eval_every: Some((steps / 10).max(1)),
        ..TrainOptions::default()
    };
    Settings::resolve(&task, &options)
}

/// Trains a model for `settings.steps`; returns its initial copy and the trainer.
fn train(settings: &Settings, progress: &Progress) -> Result<(SequenceModel, Trainer), String> {
    let task = tasks::build(&settings.task).map_err(|e| e.to_string())?;
    let config = settings.model_config(&task.shape());
    let model = SequenceModel::new(config, &mut ChaCha8Rng::seed_from_u64(settings.seed)).map_err(|e| e.to_string())?;
    let mut trainer = Trainer::new(model.clone(), settings.trainer_config()).map_err(|e| e.to_string())?;
    let never = std::sync::atomic::AtomicBool::new(false);
    crate::run::train(&mut trainer, task.as_ref(), settings, &never, progress, &mut |_, _| Ok(()))
        .map_err(|e| e.to_string())?;
    Ok((model, trainer))
}

/// `‖∂L/∂h_t‖` of `model` on a fixed batch of 256 adding-problem sequences.
pub fn measure(model: &SequenceModel, seq_len: usize) -> Result<Vec<f64>, String> {
    let batch = adding_problem(256, seq_len, &mut ChaCha8Rng::seed_from_u64(97));
    hidden_gradient_norms(model, &batch.input, batch.target.data())
}

/// The figure: at initialisation and after training, `‖∂L/∂h_t‖` against `t`, log scale.
pub fn figure(path: &Path, flows: &[Flow], seq_len: usize, steps: u64) -> Result<(), String> {
    let panel = |title: String, pick: &dyn Fn(&Flow) -> &Vec<f64>| Panel {
        title,
        x_label: format!("time step t (the loss is at t = {})", seq_len - 1),
        y_label: "‖∂L/∂h_t‖".into(),
        log_y: true,
        series: flows
            .iter()
            .map(|f| Series {
                label: f.model.as_str().into(),
                points: pick(f).iter().enumerate().map(|(t, &n)| (t as f64, n)).collect(),
            })
            .collect(),
        reference: None,
    };
    let panels = [
        panel(format!("gradient flow at initialisation, T = {seq_len}"), &|f| &f.initial),
        panel(format!("after {steps} training steps"), &|f| &f.trained),
    ];
    write_png(path, &panels, 640, 440)
}

/// How much of the last step's gradient reaches the first step, per model.
pub fn print_table(flows: &[Flow], steps: u64) {
    println!("‖∂L/∂h_0‖ / ‖∂L/∂h_T‖: how much gradient reaches the first step");
    println!("{:<8} {:>14} {:>14}", "model", "at init", format!("after {steps}"));
    let ratio = |v: &[f64]| v.first().zip(v.last()).map(|(a, b)| a / b).unwrap_or(f64::NAN);
    for f in flows {
        println!("{:<8} {:>14.3e} {:>14.3e}", f.model.as_str(), ratio(&f.initial), ratio(&f.trained));
    }
}
