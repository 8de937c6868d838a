//! `recur serve`: a model file served to many live streams over the Open Inference Protocol (KServe v2) with
//! Triton's sequence extension, their steps batched ([`recur_serve`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use recur_serve::{BatchOptions, ServeOptions, ServedModel, Server};

use super::CommandResult;
use crate::modelfile;

/// Arguments of `recur serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model file (a recurrent layer, or a sequence model whose head reads every step), or a run directory.
    model: PathBuf,
    /// The name clients address the model by (default: the file's name without its extension, or the run
    /// directory's name).
    #[arg(long)]
    name: Option<String>,
    /// The address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The most streams stepped together.
    #[arg(long, default_value_t = defaults().batch.max_batch)]
    max_batch: usize,
    /// The longest the oldest waiting request waits for more streams to join its batch, in microseconds.
    #[arg(long, default_value_t = defaults().batch.max_delay.as_micros() as u64)]
    max_delay_us: u64,
    /// Seconds without a request after which a stream is parked as bytes (it resumes at its next request).
    #[arg(long, default_value_t = defaults().batch.idle_timeout.as_secs_f64())]
    idle_timeout_s: f64,
    /// The largest request body accepted, in MiB.
    #[arg(long, default_value_t = defaults().body_limit >> 20)]
    body_limit_mb: usize,
    /// A file whose first line is a bearer token that every route but health then requires.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A directory where streams are stored when parked, and live ones every --snapshot-ms, atomically and
    /// checksummed: a server restarted on it (even after `kill -9`) resumes every stream from its last durable step.
    #[arg(long, conflicts_with = "state")]
    state_dir: Option<PathBuf>,
    /// A Redis (`redis://HOST:PORT`) where streams are stored as with --state-dir, shared with the other servers of
    /// the same model name there: a parked stream resumes on whichever server its next request reaches, and a
    /// stream one server holds is refused (409) by the others.
    #[arg(long)]
    state: Option<String>,
    /// With --state-dir or --state: milliseconds between stores of the live streams that stepped since their last.
    #[arg(long, default_value_t = defaults().batch.snapshot_every.as_millis() as u64)]
    snapshot_ms: u64,
    /// Seconds a connection may take to send a request's headers, or stay idle between requests, before it is
    /// closed.
    #[arg(long, default_value_t = defaults().header_timeout.as_secs_f64())]
    header_timeout_s: f64,
    /// The most connections open at once; one past it is closed as soon as it is accepted.
    #[arg(long, default_value_t = defaults().max_connections)]
    max_connections: usize,
}

/// The library's defaults, which the flags' defaults are.
fn defaults() -> ServeOptions {
    ServeOptions::default()
}

/// Runs `recur serve` until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs) -> CommandResult {
    if args.max_batch == 0 {
        return Err("--max-batch must be at least 1".into());
    }
    for (flag, seconds) in [("--idle-timeout-s", args.idle_timeout_s), ("--header-timeout-s", args.header_timeout_s)] {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(format!("{flag} must be a positive number of seconds, found {seconds}").into());
        }
    }
    let path = modelfile::model_path(&args.model);
    let name = args.name.clone().unwrap_or_else(|| default_name(&args.model));
    let model = ServedModel::load(&path, name).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = match &args.token_file {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("--token-file {}: {e}", file.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if token.is_empty() {
                return Err(format!("--token-file {}: the first line is empty", file.display()).into());
            }
            Some(token)
        }
        None => None,
    };
    let batch = BatchOptions {
        max_batch: args.max_batch,
        max_delay: Duration::from_micros(args.max_delay_us),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout_s),
        snapshot_every: Duration::from_millis(args.snapshot_ms.max(1)),
    };
    let options = ServeOptions {
        batch,
        body_limit: args.body_limit_mb << 20,
        token,
        state_dir: args.state_dir.clone(),
        state_redis: match &args.state {
            Some(url) if url.starts_with("redis://") => Some(url.clone()),
            Some(other) => return Err(format!("--state takes redis://HOST:PORT, found {other:?}").into()),
            None => None,
        },
        header_timeout: Duration::from_secs_f64(args.header_timeout_s),
        max_connections: args.max_connections,
    };
    let server = Server::new(model, options).map_err(|e| format!("starting the server: {e}"))?;
    server.run(args.listen).map_err(|e| format!("{}: {e}", args.listen))?;
    Ok(())
}

/// The file's stem, or a run directory's name.
fn default_name(path: &std::path::Path) -> String {
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    stem.map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}
