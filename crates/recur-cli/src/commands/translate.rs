//! `recur translate`: decodes one input with a sequence-to-sequence model (`recur train --task reverse|sort|add|
//! dates`), greedily or by beam search, reading both vocabularies and the task from the model file; optionally
//! draws the attention weights as a heatmap.

use std::path::{Path, PathBuf};

use clap::Args;
use recur::seq2seq::Decoded;

use super::CommandResult;
use crate::modelfile::{self, Any};
use crate::plot;
use crate::tasks::translate::{Translate, translate};

/// Arguments of `recur translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// A sequence-to-sequence model file, or its run directory.
    #[arg(long)]
    model: PathBuf,
    /// The text to translate (its characters must be in the model's source vocabulary).
    #[arg(long)]
    input: String,
    /// Hypotheses kept by beam search (1: greedy decoding).
    #[arg(long, default_value_t = 1)]
    beam: usize,
    /// The longest output (default: twice the task's --seq-len, plus 10).
    #[arg(long)]
    max_len: Option<usize>,
    /// Draw the attention weights (output characters × input characters) into this PNG file.
    #[arg(long, value_name = "FILE.png")]
    heatmap: Option<PathBuf>,
    /// Print one line of JSON: the input, the output, whether it ended, its log-probability.
    #[arg(long)]
    json: bool,
}

/// Runs `recur translate`.
pub fn run(args: &TranslateArgs) -> CommandResult {
    if args.beam == 0 {
        return Err("--beam must be at least 1, found 0".into());
    }
    if args.max_len == Some(0) {
        return Err("--max-len must be at least 1, found 0".into());
    }
    let path = modelfile::model_path(&args.model);
    let loaded = match modelfile::load_any(&args.model)? {
        Any::Seq2Seq(loaded) => loaded,
        Any::Sequence(_) => {
            return Err(format!(
                "{} is not a sequence-to-sequence model (train one with --task reverse, sort, add or dates)",
                path.display()
            )
            .into());
        }
    };
    let task = Translate::new(&loaded.task)?;
    let mut options = task.decode_options(args.beam);
    if let Some(n) = args.max_len {
        options.max_len = n;
    }
    let (output, decoded) = translate(&loaded.model, &loaded.source, &loaded.target, &args.input, &options)?;
    if let Some(file) = &args.heatmap {
        if decoded.weights.is_empty() {
            return Err("--heatmap: this model has no attention (it was trained with --attention none)".into());
        }
        heatmap(file, &args.input, &output, &decoded)?;
    }
    if args.json {
        let json = serde_json::json!({
            "input": args.input,
            "output": output,
            "finished": decoded.finished,
            "log_prob": decoded.log_prob,
            "beam": args.beam,
        });
        println!("{json}");
    } else {
        println!("{output}");
        if !decoded.finished {
            eprintln!("warning: the output reached --max-len {} without ending", options.max_len);
        }
    }
    Ok(())
}

/// Draws the attention weights of `decoded`, the decoding of `input` into `output`, into the PNG `file`: a row per
/// generated character (the end token as `</s>`), a column per input character.
pub fn heatmap(file: &Path, input: &str, output: &str, decoded: &Decoded) -> Result<(), String> {
    let columns: Vec<String> = input.chars().map(|c| c.to_string()).collect();
    let steps = decoded.weights.len() / columns.len().max(1);
    let mut rows: Vec<String> = output.chars().map(|c| c.to_string()).collect();
    rows.truncate(steps);
    while rows.len() < steps {
        rows.push("</s>".into());
    }
    let title = format!("attention: {input:?} → {output:?}");
    plot::heatmap(file, &title, &decoded.weights, &rows, &columns)
}
