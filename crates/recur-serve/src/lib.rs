//! recur's inference server: many live streams of one recurrent model behind the Open Inference Protocol (KServe
//! v2) over HTTP, with Triton's sequence extension, their steps batched across streams.
//!
//! A client names its stream with `sequence_id` (an integer or a string) and marks its first and last requests
//! with `sequence_start` and `sequence_end`; each request carries one step, or a chunk of steps, of that one
//! stream, and gets that many steps of outputs back. The server keeps each stream's state between requests, and
//! the steps of different streams waiting at one moment run as one batched step ([`sequences`]). A stream idle for
//! `idle_timeout` is parked as bytes and resumes at its next request. The routes are in [`http`]'s documentation
//! and in `docs/serving.md`.
//!
//! ```no_run
//! use recur::{Recurrent, RecurrentConfig};
//! use recur_serve::{ServeOptions, ServedModel, Server};
//!
//! let layer = Recurrent::with_seed(RecurrentConfig::gru(8, 32), 1)?;
//! let server = Server::new(ServedModel::from_layer("sensors", layer)?, ServeOptions::default())?;
//! server.run("127.0.0.1:8000".parse().unwrap())?; // until Ctrl-C
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod parked;
pub mod protocol;
pub mod sequences;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use error::ServeError;
pub use model::{ServedModel, StepInput};
pub use sequences::BatchOptions;

/// How a [`Server`] runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How steps are batched and idle streams parked.
    pub batch: BatchOptions,
    /// The largest request body accepted, in bytes (default 8 MiB); a larger one is refused with a 400.
    pub body_limit: usize,
    /// When set, every route but `/v2/health/*` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// When set, streams are stored there ([`store::DirStore`]) when parked, and live ones every
    /// `batch.snapshot_every`; a server started on it resumes them.
    pub state_dir: Option<std::path::PathBuf>,
    /// When set (`redis://host:port`), streams are stored in that Redis ([`store::RedisStore`]) as in `state_dir`,
    /// shared with the other servers of the same model name there: a parked stream resumes on whichever server
    /// its next request reaches, and a stream one server holds is refused (409) by the others.
    pub state_redis: Option<String>,
    /// How long a connection may take to send a request's headers, or stay idle between requests, before it is
    /// closed (default 10 s).
    pub header_timeout: Duration,
    /// The most connections open at once (default 16 384); one past it is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            batch: BatchOptions::default(),
            body_limit: 8 << 20,
            token: None,
            state_dir: None,
            state_redis: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 16_384,
        }
    }
}

/// A server of one model: its batcher's thread runs from [`Server::new`] on; [`Server::serve`] answers requests
/// on a listener, or [`Server::router`] gives its routes to embed in a program's own `axum` server.
pub struct Server {
    shared: Arc<http::Shared>,
    body_limit: usize,
    header_timeout: Duration,
    max_connections: usize,
}

impl Server {
    /// Starts the batcher for `model`: a thread, and a [`recur::StepWorker`] that steps a large model's batches on
    /// the second core.
    pub fn new(model: ServedModel, options: ServeOptions) -> std::io::Result<Self> {
        let model = Arc::new(model);
        let metrics = Arc::new(metrics::Metrics::default());
        let store: Option<Box<dyn store::StateStore>> = match (&options.state_dir, &options.state_redis) {
            (Some(_), Some(_)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a server keeps its streams in a directory or in Redis, not both",
                ));
            }
            (Some(dir), None) => Some(Box::new(store::DirStore::open(dir)?)),
            (None, Some(url)) => {
                // Claims are renewed with each snapshot, and last three of them (at least a second).
                let lease = (options.batch.snapshot_every * 3).max(Duration::from_secs(1));
                Some(Box::new(store::RedisStore::open(url, model.name())?.with_lease(lease)))
            }
            (None, None) => None,
        };
        let batcher = sequences::Batcher::start(model.clone(), options.batch, metrics.clone(), store)?;
        let shared = Arc::new(http::Shared { model, batcher, metrics, token: options.token });
        Ok(Server {
            shared,
            body_limit: options.body_limit,
            header_timeout: options.header_timeout,
            max_connections: options.max_connections,
        })
    }

    /// The routes, to serve or to test without a socket.
    pub fn router(&self) -> axum::Router {
        http::router(self.shared.clone(), self.body_limit)
    }

    /// Answers requests on `listener` until `shutdown` completes (then stops accepting; open connections end
    /// with the runtime). Each connection is HTTP/1.1 with keep-alive, closed when it takes `header_timeout` to
    /// send a request's headers; past `max_connections` open ones, a new connection is closed at once.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let open = Arc::new(tokio::sync::Semaphore::new(self.max_connections));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (socket, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors, or a connection reset before it was accepted: wait a moment rather
                    // than spin, and go on.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return Ok(()),
            };
            let Ok(permit) = open.clone().try_acquire_owned() else { continue };
            let _ = socket.set_nodelay(true);
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            let mut connection = hyper::server::conn::http1::Builder::new();
            connection.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(self.header_timeout);
            tokio::spawn(async move {
                let _ = connection.serve_connection(hyper_util::rt::TokioIo::new(socket), service).await;
                drop(permit);
            });
        }
    }

    /// Listens on `address` and answers requests until Ctrl-C (or SIGTERM), on a runtime of its own.
    pub fn run(&self, address: SocketAddr) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(address).await?;
            eprintln!("recur serve: {:?} on http://{}", self.shared.model.name(), listener.local_addr()?);
            self.serve(listener, shutdown_signal()).await
        })
    }
}

/// Completes at Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
