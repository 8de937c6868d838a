//! `recur`: the command-line face of the recur library.
//!
//! Every failure caused by the user (a missing file, a wrong shape) ends with one line on standard error and a
//! non-zero exit code, never a panic.

mod charts;
mod commands;
mod gradflow;
mod interrupt;
mod metrics;
mod model_kind;
mod modelfile;
mod npy;
mod options;
mod plot;
mod progress;
mod run;
mod tasks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recurrent neural networks (RNN, LSTM, GRU) with PyTorch's exact semantics.
#[derive(Parser)]
#[command(name = "recur", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model file over an input sequence and write its outputs.
    Forward(commands::forward::ForwardArgs),
    /// Time recur's named benchmark cases.
    Bench(commands::bench::BenchArgs),
    /// Train a model on a task; writes metrics, checkpoints, the model and plots to a run directory.
    Train(commands::train::TrainArgs),
    /// Score a trained model on a task's evaluation data.
    Eval(commands::eval::EvalArgs),
    /// Write a model (a run directory's, or a layer's file) as an ONNX file that ONNX Runtime serves as it is.
    Export(commands::export::ExportArgs),
    /// Show a model file's configuration, tensors, shapes and sizes.
    Info(commands::info::InfoArgs),
    /// Store a model's weight matrices in bf16, f16 or int8: a smaller file that computes from them as stored.
    Quantize(commands::quantize::QuantizeArgs),
    /// Train an RNN, an LSTM and a GRU on the adding problem at several lengths (`demo attention`: an
    /// encoder-decoder without and with attention); table and plots.
    Demo(commands::demo::DemoArgs),
    /// Plot the norm of the gradient reaching each hidden state (vanishing gradients), per model.
    Gradflow(commands::gradflow::GradflowArgs),
    /// Generate text from a character model, streamed as it is produced.
    Generate(commands::generate::GenerateArgs),
    /// Translate one input with a sequence-to-sequence model (reverse, sort, add, dates), greedily or by beam search.
    Translate(commands::translate::TranslateArgs),
    /// Turn an ONNX model (LSTM, GRU or RNN layers, with an embedding and a linear head) into a recur model file.
    Import(commands::import::ImportArgs),
    /// Serve a model to many live streams over the Open Inference Protocol (KServe v2, Triton's sequences).
    Serve(commands::serve::ServeArgs),
}

/// mimalloc rather than the system's allocator: `recur serve` allocates and frees small buffers for every request
/// on several threads, where glibc's malloc took about a sixth of the server's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are not errors; a usage error is one line, like every other failure.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            eprintln!("error: {first} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Forward(args) => commands::forward::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::Info(args) => commands::info::run(&args),
        Command::Quantize(args) => commands::quantize::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Gradflow(args) => commands::gradflow::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Translate(args) => commands::translate::run(&args),
        Command::Import(args) => commands::import::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
