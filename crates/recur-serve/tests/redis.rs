//! Two servers share one Redis (`ServeOptions::state_redis`): a stream started on one and parked there resumes on
//! the other, exactly where it was, and its record goes when it ends; while one server holds a stream, the other
//! refuses its requests, and a claim left by a server that stopped runs out.
//!
//! The test starts Debian's `redis-server` itself on a free loopback port (`.ci/run` installs it); without it the
//! test says it skipped and passes.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recur::{Recurrent, RecurrentConfig, StreamState};
use recur_serve::{BatchOptions, ServeOptions, ServedModel, Server};
use serde_json::{Value, json};
use tower::ServiceExt;

const INPUT: usize = 3;

fn layer() -> Recurrent {
    Recurrent::with_seed(RecurrentConfig::gru(INPUT, 6).num_layers(2), 4).unwrap()
}

fn inputs() -> Vec<f32> {
    (0..8 * INPUT).map(|i| (i as f32 * 0.41).sin()).collect()
}

fn native() -> Vec<f32> {
    let model = layer();
    let mut state = StreamState::new(&model, 1).unwrap();
    inputs().chunks_exact(INPUT).flat_map(|x| state.step(&model, x).unwrap().to_vec()).collect()
}

/// A redis-server of its own on a free port, killed when dropped.
struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child, port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

/// A redis-server of its own and its URL, or `None` (having said the test skipped) when it is not installed.
fn redis_or_skip() -> Option<(Redis, String)> {
    let Some(redis) = start_redis() else {
        eprintln!("skipped the Redis test: redis-server is not installed (`.ci/run` installs it)");
        return None;
    };
    let url = format!("redis://127.0.0.1:{}", redis.1);
    Some((redis, url))
}

fn server(url: &str) -> Router {
    let batch =
        BatchOptions { idle_timeout: Duration::from_millis(50), max_delay: Duration::ZERO, ..BatchOptions::default() };
    let options = ServeOptions { batch, state_redis: Some(url.into()), ..ServeOptions::default() };
    Server::new(ServedModel::from_layer("gru", layer()).unwrap(), options).unwrap().router()
}

async fn call(router: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
    let response =
        router.clone().oneshot(Request::builder().method(method).uri(uri).body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

async fn steps(router: &Router, from: usize, to: usize, start: bool, end: bool) -> (StatusCode, Value) {
    steps_of(router, "moving", (from, to), start, end).await
}

async fn steps_of(
    router: &Router,
    id: &str,
    (from, to): (usize, usize),
    start: bool,
    end: bool,
) -> (StatusCode, Value) {
    let x = &inputs()[from * INPUT..to * INPUT];
    let body = json!({
        "parameters": { "sequence_id": id, "sequence_start": start, "sequence_end": end },
        "inputs": [{ "name": "INPUT", "shape": [to - from, INPUT], "datatype": "FP32", "data": x }],
    });
    call(router, "POST", "/v2/models/gru/infer", Some(body)).await
}

fn outputs(response: &Value) -> Vec<f32> {
    response["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_parked_by_one_server_resumes_on_another() {
    let Some((_redis, url)) = redis_or_skip() else { return };
    let (a, b) = (server(&url), server(&url));

    let (status, first) = steps(&a, 0, 3, true, false).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // While A holds it, B refuses to step it or to start it again, and changes nothing.
    for start in [false, true] {
        let (status, refused) = steps(&b, 3, 4, start, false).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert!(refused["error"].as_str().unwrap().contains("held by another server"), "{refused}");
    }
    // Idle past the timeout, A parks the stream in Redis and lets it go.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, metrics) = call(&a, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("recur_streams{state=\"live\"} 0") && metrics.contains("recur_streams{state=\"parked\"} 0"),
        "{metrics}"
    );
    let (status, seen) = call(&b, "GET", "/v2/models/gru/sequences/moving", None).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["sequence_step"], json!(3));
    assert_eq!(seen["parked"], json!(true));

    // B takes it from there.
    let (status, second) = steps(&b, 3, 8, false, true).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["parameters"]["sequence_step"], json!(8));
    let mut got = outputs(&first);
    got.extend(outputs(&second));
    assert_eq!(got, native());

    // It ended: no server holds it, and Redis has no record of it.
    let (status, refused) = steps(&a, 0, 1, false, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused["error"].as_str().unwrap().contains("never started"), "{refused}");
    let (status, _) = call(&a, "GET", "/v2/models/gru/sequences/moving", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut connection = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("recur*").query(&mut connection).unwrap();
    assert!(keys.is_empty(), "neither a record nor a claim is left: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_stopped_server_runs_out() {
    let Some((_redis, url)) = redis_or_skip() else { return };
    let mut connection = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    // What a server that stopped without letting its streams go leaves: its claim, until its lease runs out. A
    // string id's key is its UTF-8 in hex after an `s`.
    let key = format!("recur-claim:gru:s{}", "orphan".bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let () = redis::cmd("SET").arg(&key).arg("gone").arg("PX").arg(600).query(&mut connection).unwrap();
    let b = server(&url);
    let (status, refused) = steps_of(&b, "orphan", (0, 2), true, false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, started) = steps_of(&b, "orphan", (0, 2), true, false).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let owner: String = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
    assert_ne!(owner, "gone", "B holds the claim now");
}
