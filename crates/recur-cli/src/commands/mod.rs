//! One module per subcommand.

pub mod bench;
pub mod bench_onnx;
pub mod demo;
pub mod demo_attention;
pub mod eval;
pub mod export;
pub mod forward;
pub mod generate;
pub mod gradflow;
pub mod import;
pub mod info;
pub mod quantize;
pub mod serve;
pub mod train;
pub mod translate;

/// What a subcommand returns: a failure is printed as one line.
pub type CommandResult = Result<(), Box<dyn std::error::Error>>;

/// Sizes the worker pool (`--threads`); all cores when `None`.
pub fn set_threads(threads: Option<usize>) -> Result<(), String> {
    match threads {
        Some(0) => Err("--threads must be at least 1, found 0".into()),
        Some(n) => {
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads {n}: {e}"))
        }
        None => Ok(()),
    }
}
