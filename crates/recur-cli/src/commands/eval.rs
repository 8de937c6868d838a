//! `recur eval`: scores a trained model on a task's evaluation data (by default the task and settings it was
//! trained with, as stored in the model file; `--seq-len` tests it at another length).

use std::path::PathBuf;

use clap::Args;

use super::CommandResult;
use crate::options::TaskArgs;
use crate::{modelfile, tasks};

/// Arguments of `recur eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A model file, or a run directory (its model.safetensors).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    task: TaskArgs,
    /// Seed of the evaluation data (default: the training run's).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one line of JSON with the metrics.
    #[arg(long)]
    json: bool,
}

/// Runs `recur eval`.
pub fn run(args: &EvalArgs) -> CommandResult {
    let loaded = modelfile::load(&args.model)?;
    let mut spec = match (&loaded.task, args.task.task) {
        (Some(stored), None) => stored.clone(),
        (Some(stored), Some(name)) if stored.name == name => stored.clone(),
        (_, Some(name)) => tasks::TaskSpec::new(name, tasks::defaults(name).seq_len, 1_000_003),
        (None, None) => return Err("the model file names no task: give --task".into()),
    };
    if let Some(n) = args.task.seq_len.or(args.task.window) {
        spec.seq_len = n;
    }
    if let Some(column) = &args.task.column {
        spec.column = Some(column.clone());
    }
    if let Some(h) = args.task.horizon {
        spec.horizon = h;
    }
    if let Some(data) = &args.task.data {
        spec.data = Some(data.clone());
    }
    if let Some(seed) = args.seed {
        spec.eval_seed = seed;
    }
    let task = tasks::build(&spec)?;
    let config = loaded.model.config();
    let shape = task.shape();
    let input_ok = match shape.input {
        tasks::InputKind::Features(n) => config.vocab.is_none() && config.recurrent.input_size == n,
        tasks::InputKind::Tokens(v) => config.vocab == Some(v),
    };
    if !input_ok || config.outputs != shape.outputs || config.readout != shape.readout {
        return Err(format!(
            "the model does not fit {}: it reads {} and predicts {} value(s) per row ({:?}), the task needs {:?}, {} \
             output(s) ({:?})",
            task.describe(),
            match config.vocab {
                Some(v) => format!("tokens of a vocabulary of {v}"),
                None => format!("{} features", config.recurrent.input_size),
            },
            config.outputs,
            config.readout,
            shape.input,
            shape.outputs,
            shape.readout
        )
        .into());
    }
    let metrics = task.evaluate(&loaded.model)?;
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            metrics.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        println!("{}", task.describe());
        for (k, v) in &metrics {
            println!("{k:<16} {v:.6}");
        }
        if let Some(b) = task.baseline() {
            println!("{:<16} {:.6} ({}: {})", "baseline", b.value, b.metric, b.label);
        }
    }
    Ok(())
}
