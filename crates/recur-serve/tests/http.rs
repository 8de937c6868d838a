//! The server through its routes: interleaved streams give what the model gives natively, the protocol's errors,
//! idle streams parked and resumed, the bearer token, the body limit, metadata and metrics, and one request over a
//! real socket.

use std::time::Duration;

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
    Recurrent::with_seed(RecurrentConfig::lstm(INPUT, 8).num_layers(2), 11).unwrap()
}

fn server(options: ServeOptions) -> Server {
    Server::new(ServedModel::from_layer("lstm", layer()).unwrap(), options).unwrap()
}

fn options(max_delay_us: u64, idle_ms: u64) -> ServeOptions {
    let batch = BatchOptions {
        max_batch: 64,
        max_delay: Duration::from_micros(max_delay_us),
        idle_timeout: Duration::from_millis(idle_ms),
        ..BatchOptions::default()
    };
    ServeOptions { batch, ..ServeOptions::default() }
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
    let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// The inputs of stream `s` at steps `steps`.
fn inputs(s: usize, steps: std::ops::Range<usize>) -> Vec<f32> {
    steps.flat_map(|t| (0..INPUT).map(move |i| ((s * 131 + t * 17 + i * 5) as f32 * 0.173).sin())).collect()
}

fn step_request(sequence: Value, start: bool, end: bool, x: &[f32]) -> Value {
    json!({
        "parameters": { "sequence_id": sequence, "sequence_start": start, "sequence_end": end },
        "inputs": [{ "name": "INPUT", "shape": [x.len() / INPUT, INPUT], "datatype": "FP32", "data": x }],
    })
}

fn output_data(response: &Value) -> Vec<f32> {
    response["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// Stream `s`'s outputs for steps `0..steps`, run natively.
fn native(s: usize, steps: usize) -> Vec<f32> {
    let model = layer();
    let mut state = StreamState::new(&model, 1).unwrap();
    let x = inputs(s, 0..steps);
    x.chunks_exact(INPUT).flat_map(|x| state.step(&model, x).unwrap().to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_streams_give_what_the_model_gives_natively() {
    let server = server(options(500, 10_000));
    let router = server.router();
    // Eight streams, some named by numbers and some by strings, each sent in chunks of 1 to 4 steps, all at once.
    let ids: Vec<Value> =
        (0..8).map(|s| if s % 2 == 0 { json!(s + 1) } else { json!(format!("stream-{s}")) }).collect();
    let mut tasks = Vec::new();
    for (s, id) in ids.iter().enumerate() {
        let (router, id) = (router.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let chunks = [1, 3, 1, 4, 2];
            let (mut t, mut out) = (0, Vec::new());
            for (k, &len) in chunks.iter().enumerate() {
                let body = step_request(id.clone(), k == 0, k == chunks.len() - 1, &inputs(s, t..t + len));
                let (status, response) = call(&router, "POST", "/v2/models/lstm/infer", Some(body), None).await;
                assert_eq!(status, StatusCode::OK, "{response}");
                t += len;
                assert_eq!(response["parameters"]["sequence_step"], json!(t));
                assert_eq!(response["parameters"]["sequence_id"], id);
                assert_eq!(response["outputs"][0]["shape"], json!([len, 8]));
                out.extend(output_data(&response));
            }
            (s, out)
        }));
    }
    for task in tasks {
        let (s, out) = task.await.unwrap();
        let want = native(s, 11);
        assert_eq!(out.len(), want.len());
        for (k, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-6, "stream {s}, value {k}: {a} vs {b}");
        }
    }
    let (_, metrics) = call(&router, "GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("recur_requests_total{outcome=\"ok\"} 40"), "{metrics}");
    assert!(metrics.contains("recur_steps_total 88"), "{metrics}");
    assert!(metrics.contains("recur_streams{state=\"live\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_sequence_is_a_whole_sequence() {
    let router = server(options(0, 10_000)).router();
    let x = inputs(3, 0..5);
    let body = json!({ "id": "whole", "inputs": [{ "name": "INPUT", "shape": [1, 5, INPUT], "datatype": "FP32", "data": x }] });
    let (status, response) = call(&router, "POST", "/v2/models/lstm/versions/1/infer", Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["id"], json!("whole"));
    assert_eq!(response["outputs"][0]["shape"], json!([1, 5, 8]));
    assert_eq!(output_data(&response), native(3, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_protocols_errors_and_the_others_go_on() {
    let router = server(options(0, 10_000)).router();
    let x = inputs(0, 0..1);
    let cases = [
        ("/v2/models/lstm/infer", step_request(json!(5), false, false, &x), StatusCode::BAD_REQUEST, "never started"),
        ("/v2/models/other/infer", step_request(json!(5), true, false, &x), StatusCode::NOT_FOUND, "serves \"lstm\""),
        (
            "/v2/models/lstm/versions/2/infer",
            step_request(json!(5), true, false, &x),
            StatusCode::NOT_FOUND,
            "one version",
        ),
        ("/v2/models/lstm/infer", json!({"inputs": "no"}), StatusCode::BAD_REQUEST, "not an inference request"),
    ];
    for (uri, body, status, says) in cases {
        let (got, response) = call(&router, "POST", uri, Some(body), None).await;
        assert_eq!(got, status, "{uri}: {response}");
        assert!(response["error"].as_str().unwrap().contains(says), "{uri}: {response}");
    }
    // A stream started twice, and one used after its end.
    let (status, _) =
        call(&router, "POST", "/v2/models/lstm/infer", Some(step_request(json!(9), true, false, &x)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, response) =
        call(&router, "POST", "/v2/models/lstm/infer", Some(step_request(json!(9), true, false, &x)), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(response["error"].as_str().unwrap().contains("already live"), "{response}");
    let (status, _) =
        call(&router, "POST", "/v2/models/lstm/infer", Some(step_request(json!(9), false, true, &x)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, response) =
        call(&router, "POST", "/v2/models/lstm/infer", Some(step_request(json!(9), false, false, &x)), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    // The server still serves, and counted the errors.
    let (status, _) =
        call(&router, "POST", "/v2/models/lstm/infer", Some(step_request(json!(9), true, true, &x)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = call(&router, "GET", "/metrics", None, None).await;
    assert!(metrics.as_str().unwrap().contains("recur_requests_total{outcome=\"error\"} 6"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_parked_and_resumes_where_it_was() {
    let router = server(options(0, 30)).router();
    let mut out = Vec::new();
    for (k, steps) in [0..2, 2..3, 3..6].into_iter().enumerate() {
        if k > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (_, metrics) = call(&router, "GET", "/metrics", None, None).await;
            assert!(metrics.as_str().unwrap().contains("recur_streams{state=\"parked\"} 1"), "{metrics}");
        }
        let body = step_request(json!("idle"), k == 0, false, &inputs(4, steps));
        let (status, response) = call(&router, "POST", "/v2/models/lstm/infer", Some(body), None).await;
        assert_eq!(status, StatusCode::OK, "{response}");
        out.extend(output_data(&response));
    }
    assert_eq!(out, native(4, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_route_but_health() {
    let router = server(ServeOptions { token: Some("s3cret".into()), ..options(0, 10_000) }).router();
    assert_eq!(call(&router, "GET", "/v2/health/live", None, None).await.0, StatusCode::OK);
    assert_eq!(call(&router, "GET", "/v2/health/ready", None, None).await.0, StatusCode::OK);
    assert_eq!(call(&router, "GET", "/v2", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&router, "GET", "/v2", None, Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    let body = step_request(json!(1), true, true, &inputs(0, 0..1));
    assert_eq!(
        call(&router, "POST", "/v2/models/lstm/infer", Some(body.clone()), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&router, "POST", "/v2/models/lstm/infer", Some(body), Some("s3cret")).await.0, StatusCode::OK);
    assert_eq!(call(&router, "GET", "/metrics", None, Some("s3cret")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_describes_the_model_and_the_sequence_extension() {
    let router = server(ServeOptions { body_limit: 1000, ..options(0, 10_000) }).router();
    let (status, server) = call(&router, "GET", "/v2", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server["name"], json!("recur"));
    assert!(server["extensions"].as_array().unwrap().contains(&json!("sequence")));
    let (status, model) = call(&router, "GET", "/v2/models/lstm", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(model["inputs"], json!([{ "name": "INPUT", "datatype": "FP32", "shape": [-1, INPUT] }]));
    assert_eq!(model["outputs"], json!([{ "name": "OUTPUT", "datatype": "FP32", "shape": [-1, 8] }]));
    assert_eq!(call(&router, "GET", "/v2/models/lstm/ready", None, None).await.0, StatusCode::OK);
    assert_eq!(call(&router, "GET", "/v2/models/lstm/versions/1", None, None).await.0, StatusCode::OK);
    // A body past the limit.
    let body = step_request(json!(1), true, true, &inputs(0, 0..200));
    let (status, response) = call(&router, "POST", "/v2/models/lstm/infer", Some(body), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert!(response["error"].as_str().unwrap().contains("could not be read"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_a_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = std::sync::Arc::new(server(options(0, 10_000)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let body = step_request(json!(77), true, true, &inputs(7, 0..2)).to_string();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v2/models/lstm/infer HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(output_data(&json), native(7, 2));
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_in_and_out() {
    let router = server(options(0, 10_000)).router();
    let x = inputs(6, 0..3);
    let header = json!({
        "parameters": { "sequence_id": 12, "sequence_start": true, "sequence_end": true },
        "inputs": [{ "name": "INPUT", "shape": [3, INPUT], "datatype": "FP32", "parameters": { "binary_data_size": x.len() * 4 } }],
        "outputs": [{ "name": "OUTPUT", "parameters": { "binary_data": true } }],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    let request = Request::builder()
        .method("POST")
        .uri("/v2/models/lstm/infer")
        .header("inference-header-content-length", header.len())
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json_length: usize = response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes[..json_length]).unwrap();
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], json!(3 * 8 * 4));
    assert!(json["outputs"][0].get("data").is_none(), "{json}");
    let values: Vec<f32> =
        bytes[json_length..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values, native(6, 3));
}

/// Serves `server` on a loopback port until the returned sender is dropped or fired.
async fn listen(server: Server) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
    });
    (address, stop)
}

/// One request over a new connection; the status line.
async fn status_line(address: std::net::SocketAddr, body: &Value) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v2/models/lstm/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or("").to_string()
}

/// Whether the server closes `socket` within `within`.
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, socket.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_the_others_served() {
    let options =
        ServeOptions { header_timeout: Duration::from_millis(300), max_connections: 300, ..options(0, 10_000) };
    let (address, _stop) = listen(server(options)).await;
    // 250 connections that send nothing (few enough for a limit of 1024 open files): a stream is still served
    // beside them.
    let mut silent = Vec::new();
    for _ in 0..250 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let body = step_request(json!(2), true, true, &inputs(0, 0..2));
    assert_eq!(status_line(address, &body).await, "HTTP/1.1 200 OK");
    // 100 more: those past the limit of 300 are closed at once.
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let mut closed_at_once = 0;
    for socket in silent.iter_mut().rev().take(100) {
        if closed_within(socket, Duration::from_millis(20)).await {
            closed_at_once += 1;
        }
    }
    assert!((50..=100).contains(&closed_at_once), "{closed_at_once} closed at once");
    // The header timeout closes the silent ones.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for socket in silent.iter_mut().take(100) {
        assert!(closed_within(socket, Duration::from_millis(100)).await, "a silent connection stayed open");
    }
    let body = step_request(json!(3), true, true, &inputs(0, 0..2));
    assert_eq!(status_line(address, &body).await, "HTTP/1.1 200 OK");
}
