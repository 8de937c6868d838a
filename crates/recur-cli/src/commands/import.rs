//! `recur import`: an ONNX file (from `torch.onnx.export`, tf2onnx or `recur export`) into a recur model file.

use std::path::PathBuf;

use clap::Args;
use recur_onnx::{ImportedModel, OutputRole, import_model_file};

use super::CommandResult;

/// Arguments of `recur import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The ONNX model: LSTM, GRU or RNN layers, with the reshapes, states, embedding and linear head exporters
    /// write around them.
    onnx: PathBuf,
    /// Where to write the recur model (safetensors, PyTorch's names, the configuration in its metadata).
    #[arg(short, long)]
    output: PathBuf,
}

/// Runs `recur import`.
pub fn run(args: &ImportArgs) -> CommandResult {
    let imported = import_model_file(&args.onnx).map_err(|e| format!("{}: {e}", args.onnx.display()))?;
    let config = imported.recurrent().config();
    let stack = format!(
        "{} × {} layer{}{}, input {}, hidden {}",
        config.mode,
        config.num_layers,
        if config.num_layers == 1 { "" } else { "s" },
        if config.bidirectional { ", bidirectional" } else { "" },
        config.input_size,
        config.hidden_size,
    );
    match &imported.model {
        ImportedModel::Layer(_) => println!("a recurrent layer: {stack}"),
        ImportedModel::Sequence(model) => {
            let c = model.config();
            let embedding = c.vocab.map(|v| format!("embedding {v} × {}, ", config.input_size)).unwrap_or_default();
            println!("a sequence model: {embedding}{stack}, head on {:?} → {} outputs", c.readout, c.outputs);
        }
    }
    let sig = &imported.signature;
    let mut inputs = vec![format!("`{}`", sig.input)];
    for (name, what) in [(&sig.sequence_lens, "sequence_lens"), (&sig.initial_h, "h0"), (&sig.initial_c, "c0")] {
        if let Some(name) = name {
            inputs.push(format!("`{name}` ({what})"));
        }
    }
    let outputs: Vec<String> = sig
        .outputs
        .iter()
        .map(|(name, role)| {
            let what = match role {
                OutputRole::Output => "output",
                OutputRole::OnnxY => "ONNX's Y",
                OutputRole::FinalH => "h_n",
                OutputRole::FinalC => "c_n",
                OutputRole::Predictions | OutputRole::PredictionRows => "predictions",
            };
            format!("`{name}` ({what})")
        })
        .collect();
    println!("inputs {}; outputs {}", inputs.join(", "), outputs.join(", "));
    imported.save(&args.output)?;
    println!("wrote {}", args.output.display());
    Ok(())
}
