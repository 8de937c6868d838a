//! `recur eval`: scores a trained model on a task's evaluation data (by default the task and settings it was
//! trained with, as stored in the model file; `--seq-len` tests it at another length).

use std::path::PathBuf;

use clap::Args;

use super::CommandResult;
use crate::modelfile::LoadedSeq2Seq;
use crate::options::TaskArgs;
use crate::tasks::translate::{Translate, json_name};
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
    let loaded = match modelfile::load_any(&args.model)? {
        modelfile::Any::Sequence(loaded) => *loaded,
        modelfile::Any::Seq2Seq(loaded) => return run_seq2seq(args, &loaded),
    };
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

/// `recur eval` of an encoder-decoder: greedy decoding of its task's held-out set (`--seq-len` and `--seed` draw
/// another one), scored by exact match and per-token accuracy.
fn run_seq2seq(args: &EvalArgs, loaded: &LoadedSeq2Seq) -> CommandResult {
    let mut spec = loaded.task.clone();
    if let Some(name) = args.task.task.filter(|&name| name != spec.name) {
        return Err(format!(
            "the model was trained on --task {}, a sequence-to-sequence task; it cannot be scored on --task {}",
            spec.name.as_str(),
            name.as_str()
        )
        .into());
    }
    if let Some(n) = args.task.seq_len.or(args.task.window) {
        spec.seq_len = n;
    }
    if let Some(seed) = args.seed {
        spec.eval_seed = seed;
    }
    let task = Translate::new(&spec)?;
    task.fits(loaded.model.config())?;
    if (task.source_vocab(), task.target_vocab()) != (&loaded.source, &loaded.target) {
        return Err(format!("the model's vocabularies are not those of {}", task.describe()).into());
    }
    let metrics = task.evaluate(&loaded.model)?;
    if args.json {
        let mut map: serde_json::Map<String, serde_json::Value> =
            metrics.iter().map(|(k, v)| (json_name(k).to_string(), (*v).into())).collect();
        map.insert("task".into(), spec.name.as_str().into());
        map.insert("count".into(), tasks::translate::HELD_OUT.into());
        println!("{}", serde_json::Value::Object(map));
    } else {
        println!("{}: {} held-out pairs, greedy decoding", task.describe(), tasks::translate::HELD_OUT);
        for (k, v) in &metrics {
            println!("{:<16} {v:.6}", json_name(k));
        }
    }
    Ok(())
}
