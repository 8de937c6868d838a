//! `recur forward`: run a model over an input and write `output`, `h_n` and (LSTM) `c_n`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use recur::model_file::TensorFile;
use recur::{LoadOptions, Nonlinearity, Recurrent};

use super::CommandResult;
use crate::npy::read_npy;

/// Arguments of `recur forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Model file: safetensors with PyTorch `state_dict` names (optionally a `config` metadata entry).
    #[arg(long)]
    model: PathBuf,
    /// Input sequence, `.npy` (f32 or f64, C order): (T, B, I), (B, T, I) with --batch-first, or unbatched (T, I).
    #[arg(long)]
    input: PathBuf,
    /// Initial hidden state, `.npy`: (L·D, B, H_out), or (L·D, H_out) for unbatched input.
    #[arg(long)]
    h0: Option<PathBuf>,
    /// Initial cell state (LSTM only), `.npy`: (L·D, B, H), or (L·D, H) for unbatched input.
    #[arg(long)]
    c0: Option<PathBuf>,
    /// Batched input is (B, T, I), for a model file without `config` metadata.
    #[arg(long)]
    batch_first: bool,
    /// Nonlinearity of a vanilla RNN, for a model file without `config` metadata.
    #[arg(long, value_enum)]
    nonlinearity: Option<NonlinearityArg>,
    /// Where to write the results: safetensors with f32 tensors `output`, `h_n` and, for LSTM, `c_n`.
    #[arg(long)]
    output: PathBuf,
}

/// The `--nonlinearity` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum NonlinearityArg {
    Tanh,
    Relu,
}

/// Runs `recur forward`.
pub fn run(args: &ForwardArgs) -> CommandResult {
    let options = LoadOptions {
        batch_first: args.batch_first.then_some(true),
        nonlinearity: args.nonlinearity.map(|n| match n {
            NonlinearityArg::Tanh => Nonlinearity::Tanh,
            NonlinearityArg::Relu => Nonlinearity::Relu,
        }),
    };
    let model = Recurrent::load(&args.model, &options)?;
    let input = read_npy(&args.input)?;
    let h0 = args.h0.as_deref().map(read_npy).transpose()?;
    let c0 = args.c0.as_deref().map(read_npy).transpose()?;
    let out = model.forward(&input, h0.as_ref(), c0.as_ref())?;
    let mut tensors = vec![
        ("output".to_string(), out.output),
        ("h_n".to_string(), out.h_n),
    ];
    if let Some(c_n) = out.c_n {
        tensors.push(("c_n".to_string(), c_n));
    }
    TensorFile::write(&args.output, &tensors, &HashMap::new())?;
    Ok(())
}
