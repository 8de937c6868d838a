//! `recur serve --state-dir`: killed with SIGKILL mid-stream and restarted on its directory, every stream resumes
//! from its last durable step, and a client that resends its inputs from there gets exactly the outputs of an
//! uninterrupted run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recur::{Recurrent, RecurrentConfig, StreamState};
use serde_json::{Value, json};

const INPUT: usize = 3;
const STEPS: usize = 10;

fn layer() -> Recurrent {
    Recurrent::with_seed(RecurrentConfig::lstm(INPUT, 8).num_layers(2), 21).unwrap()
}

fn inputs(s: usize) -> Vec<f32> {
    (0..STEPS * INPUT).map(|i| ((s * 53 + i * 7) as f32 * 0.29).cos()).collect()
}

fn native(s: usize) -> Vec<f32> {
    let model = layer();
    let mut state = StreamState::new(&model, 1).unwrap();
    inputs(s).chunks_exact(INPUT).flat_map(|x| state.step(&model, x).unwrap().to_vec()).collect()
}

/// Starts `recur serve` on a free loopback port and returns it with its address (read from its first line).
fn start(model: &Path, dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["serve", model.to_str().unwrap(), "--name", "lstm", "--listen", "127.0.0.1:0"])
        .args(["--state-dir", dir.to_str().unwrap(), "--snapshot-ms", "200", "--idle-timeout-s", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().expect("a first line").unwrap();
    let address =
        line.split("http://").nth(1).unwrap_or_else(|| panic!("no address in {line:?}")).trim().parse().unwrap();
    // Keep reading its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, address)
}

/// One HTTP/1.1 request; the status and the JSON body.
fn request(address: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut socket = TcpStream::connect(address).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        socket,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let json = response.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

fn id(s: usize) -> Value {
    if s == 1 { json!("second") } else { json!(100 + s) }
}

/// Steps `from..to` of stream `s` in one request; its outputs.
fn steps(address: SocketAddr, s: usize, from: usize, to: usize, expect: Option<usize>) -> (u16, Value) {
    let x = &inputs(s)[from * INPUT..to * INPUT];
    let mut parameters = json!({ "sequence_id": id(s), "sequence_start": from == 0, "sequence_end": to == STEPS });
    if let Some(expect) = expect {
        parameters["sequence_step"] = json!(expect);
    }
    let body = json!({
        "parameters": parameters,
        "inputs": [{ "name": "INPUT", "shape": [to - from, INPUT], "datatype": "FP32", "data": x }],
    });
    request(address, "POST", "/v2/models/lstm/infer", Some(&body))
}

fn outputs(response: &Value) -> Vec<f32> {
    response["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

fn status(address: SocketAddr, s: usize) -> Value {
    let id = id(s);
    let shown = id.as_str().map_or_else(|| id.to_string(), str::to_string);
    let (code, json) = request(address, "GET", &format!("/v2/models/lstm/sequences/{shown}"), None);
    assert_eq!(code, 200, "{json}");
    json
}

#[test]
fn streams_survive_kill_9_from_their_last_durable_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("lstm.safetensors");
    layer().save(&model).unwrap();
    let state_dir = dir.path().join("state");

    let (mut server, address) = start(&model, &state_dir);
    let mut got: Vec<Vec<f32>> = vec![Vec::new(); 3];
    // Five steps of each stream, interleaved, a step a request.
    for t in 0..5 {
        for (s, out) in got.iter_mut().enumerate() {
            let (code, response) = steps(address, s, t, t + 1, None);
            assert_eq!(code, 200, "{response}");
            assert_eq!(response["parameters"]["sequence_step"], json!(t + 1));
            out.extend(outputs(&response));
        }
    }
    // Wait for a snapshot to make them durable.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (0..3).any(|s| status(address, s)["sequence_durable_step"] != json!(5)) {
        assert!(Instant::now() < deadline, "the streams never became durable: {}", status(address, 0));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two more steps of stream 0, then SIGKILL at once: they may or may not have been stored.
    let (code, response) = steps(address, 0, 5, 7, Some(5));
    assert_eq!(code, 200, "{response}");
    got[0].extend(outputs(&response));
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, address) = start(&model, &state_dir);
    for (s, out) in got.iter_mut().enumerate() {
        let status = status(address, s);
        assert_eq!(status["parked"], json!(true), "{status}");
        let durable = status["sequence_durable_step"].as_u64().unwrap() as usize;
        assert_eq!(status["sequence_step"].as_u64().unwrap() as usize, durable, "{status}");
        let sent = out.len() / 8;
        assert!((5..=sent).contains(&durable), "stream {s}: durable step {durable}, {sent} sent");
        if durable < sent {
            // A client that believes the stream is further along is told where it is, and nothing changes.
            let (code, response) = steps(address, s, sent, STEPS, Some(sent));
            assert_eq!(code, 400, "{response}");
            assert!(response["error"].as_str().unwrap().contains(&format!("is at step {durable}")), "{response}");
        }
        // Resend from the durable step.
        out.truncate(durable * 8);
        let (code, response) = steps(address, s, durable, STEPS, Some(durable));
        assert_eq!(code, 200, "{response}");
        assert_eq!(response["parameters"]["sequence_step"], json!(STEPS));
        out.extend(outputs(&response));
        assert_eq!(*out, native(s), "stream {s}");
    }
    // Every stream ended: nothing is left stored.
    let left: Vec<_> = std::fs::read_dir(&state_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}
