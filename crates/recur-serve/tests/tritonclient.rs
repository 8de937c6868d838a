//! NVIDIA's Python client, `tritonclient.http`, drives the server with interleaved sequences (binary and JSON
//! tensors) and checks every output against the model run natively: `tools/serve_tritonclient.py`.
//!
//! The client needs Python with `tools/requirements-serve.txt`, named by `RECUR_SERVE_PYTHON` (`.ci/run` sets it);
//! without it the test says it skipped the check and passes.

use std::path::Path;
use std::process::Command;

use recur::{Recurrent, RecurrentConfig, StreamState};
use recur_serve::{ServeOptions, ServedModel, Server};
use serde_json::{Value, json};

const INPUT: usize = 4;
const HIDDEN: usize = 16;

fn layer() -> Recurrent {
    Recurrent::with_seed(RecurrentConfig::gru(INPUT, HIDDEN).num_layers(2), 5).unwrap()
}

/// Stream `n`: its id, chunk lengths, inputs and native outputs.
fn stream(n: usize) -> Value {
    let chunks: Vec<usize> = (0..4 + n % 3).map(|k| 1 + (n + k) % 4).collect();
    let steps: usize = chunks.iter().sum();
    let inputs: Vec<f32> = (0..steps * INPUT).map(|i| ((n * 977 + i * 13) as f32 * 0.31).sin()).collect();
    let model = layer();
    let mut state = StreamState::new(&model, 1).unwrap();
    let expected: Vec<f32> = inputs.chunks_exact(INPUT).flat_map(|x| state.step(&model, x).unwrap().to_vec()).collect();
    let id = if n.is_multiple_of(3) { json!(format!("client-{n}")) } else { json!(1000 + n) };
    json!({ "id": id, "chunks": chunks, "inputs": inputs, "expected": expected })
}

#[test]
fn tritonclient_drives_interleaved_sequences_to_the_native_outputs() {
    let Some(python) = std::env::var_os("RECUR_SERVE_PYTHON") else {
        eprintln!("skipped the tritonclient check: RECUR_SERVE_PYTHON is not set (`.ci/run` sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = json!({
        "model": "gru",
        "input": INPUT,
        "output": HIDDEN,
        "streams": (0..12).map(stream).collect::<Vec<_>>(),
    });
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = std::sync::Arc::new(
        Server::new(ServedModel::from_layer("gru", layer()).unwrap(), ServeOptions::default()).unwrap(),
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        runtime.spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/serve_tritonclient.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(address.to_string())
        .arg(&cases_path)
        .output()
        .expect("run RECUR_SERVE_PYTHON");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    stop.send(()).unwrap();
    runtime.block_on(serving).unwrap().unwrap();
    assert!(out.status.success(), "the tritonclient check failed:\n{report}");
}
