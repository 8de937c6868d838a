//! The HTTP routes: the Open Inference Protocol's health, metadata and inference routes, and `/metrics`.
//!
//! | route | answers |
//! |---|---|
//! | `GET /v2/health/live`, `GET /v2/health/ready` | 200 (never behind the token) |
//! | `GET /v2` | the server's name, version and extensions (`sequence`) |
//! | `GET /v2/models/{name}[/versions/1]` | the model's input and output: names, datatypes, shapes |
//! | `GET /v2/models/{name}[/versions/1]/ready` | 200 |
//! | `POST /v2/models/{name}[/versions/1]/infer` | a stream's steps ([`crate::protocol`]) |
//! | `GET /v2/models/{name}/sequences/{id}` | recur's own: a stream's `sequence_step`, `sequence_durable_step` and whether it is parked (an id of digits is a number) |
//! | `GET /metrics` | Prometheus' text format ([`crate::metrics`]) |
//!
//! A refused request gets its status (400, 401, 404, 409, 503) and `{"error": "..."}`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{ServedModel, StepInput};
use crate::protocol::{INPUT, InferRequest, InferResponse, OUTPUT, ResponseOutput, SequenceId};
use crate::sequences::Batcher;

/// What every route reads.
pub(crate) struct Shared {
    pub model: Arc<ServedModel>,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub token: Option<String>,
}

/// The routes, with the body limit and, when a token is set, the bearer check on every route but health.
pub(crate) fn router(shared: Arc<Shared>, body_limit: usize) -> Router {
    let protected = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_version))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_version))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/v2/models/{name}/sequences/{id}", get(sequence_status))
        .route("/metrics", get(metrics));
    // Without a token there is nothing to check, and the layer's boxing would cost every request.
    let protected = match shared.token {
        Some(_) => protected.route_layer(middleware::from_fn_with_state(shared.clone(), bearer)),
        None => protected,
    };
    Router::new()
        .route("/v2/health/live", get(StatusCode::OK))
        .route("/v2/health/ready", get(StatusCode::OK))
        .merge(protected)
        .fallback(|| async { ServeError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

/// Refuses a request without the configured bearer token.
async fn bearer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = shared.token.as_deref().unwrap_or_default();
    let ok =
        given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
    if !ok {
        return ServeError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Whether `a == b`, in a time that does not depend on where they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "recur", "version": env!("CARGO_PKG_VERSION"), "extensions": ["sequence"] }))
}

/// The model, or a 404 naming the one there is.
fn model_named<'a>(shared: &'a Shared, name: &str) -> Result<&'a ServedModel, ServeError> {
    if name == shared.model.name() {
        Ok(&shared.model)
    } else {
        Err(ServeError::NotFound(format!("no model {name:?}: this server serves {:?}", shared.model.name())))
    }
}

/// The model, at version `version` (it has one, "1").
fn model_version<'a>(shared: &'a Shared, name: &str, version: &str) -> Result<&'a ServedModel, ServeError> {
    let model = model_named(shared, name)?;
    if version != "1" {
        return Err(ServeError::NotFound(format!("model {name:?} has one version, \"1\", not {version:?}")));
    }
    Ok(model)
}

fn metadata_of(model: &ServedModel) -> Json<Value> {
    let input = match model.input() {
        StepInput::Features(i) => json!({ "name": INPUT, "datatype": "FP32", "shape": [-1, i] }),
        StepInput::Tokens(_) => json!({ "name": INPUT, "datatype": "INT64", "shape": [-1] }),
    };
    Json(json!({
        "name": model.name(),
        "versions": ["1"],
        "platform": "recur",
        "inputs": [input],
        "outputs": [{ "name": OUTPUT, "datatype": "FP32", "shape": [-1, model.output_size()] }],
    }))
}

async fn model_metadata(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ServeError> {
    Ok(metadata_of(model_named(&shared, &name)?))
}

async fn model_metadata_version(
    State(shared): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ServeError> {
    Ok(metadata_of(model_version(&shared, &name, &version)?))
}

async fn model_ready(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Result<StatusCode, ServeError> {
    model_named(&shared, &name).map(|_| StatusCode::OK)
}

async fn model_ready_version(
    State(shared): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ServeError> {
    model_version(&shared, &name, &version).map(|_| StatusCode::OK)
}

async fn sequence_status(
    State(shared): State<Arc<Shared>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ServeError> {
    model_named(&shared, &name)?;
    let sequence = match id.parse::<u64>() {
        Ok(n) => SequenceId::Number(n),
        Err(_) => SequenceId::Text(id.clone()),
    };
    let shown = sequence.to_json();
    match shared.batcher.status(sequence).await? {
        Some(status) => Ok(Json(json!({
            "sequence_id": shown,
            "sequence_step": status.steps,
            "sequence_durable_step": status.durable,
            "parked": status.parked,
        }))),
        None => Err(ServeError::NotFound(format!("no live or parked sequence {id:?}"))),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
}

async fn infer(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    counted(&shared, run_infer(&shared, (&name, "1"), &headers, body).await)
}

async fn infer_version(
    State(shared): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    counted(&shared, run_infer(&shared, (&name, &version), &headers, body).await)
}

/// Counts a request refused before it reached the batcher (which counts the others).
fn counted<T>(shared: &Shared, result: Result<T, (ServeError, bool)>) -> Result<T, ServeError> {
    result.map_err(|(error, reached_batcher)| {
        if !reached_batcher {
            shared.metrics.requests_failed.fetch_add(1, Relaxed);
        }
        error
    })
}

/// The header of the binary tensor extension: the length of the JSON that starts a body.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// An inference request, start to end; the error says whether the batcher saw it.
async fn run_infer(
    shared: &Shared,
    (name, version): (&str, &str),
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, (ServeError, bool)> {
    let early = |e| (e, false);
    let model = model_version(shared, name, version).map_err(early)?;
    let body =
        body.map_err(|e| early(ServeError::BadRequest(format!("the body could not be read: {}", e.body_text()))))?;
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
            early(ServeError::BadRequest(format!("{HEADER_LENGTH} must be a byte count, found {v:?}")))
        })?),
    };
    let (request, binary) = InferRequest::from_body(&body, header_length).map_err(early)?;
    let request = request.into_stream_request(model.input(), binary).map_err(early)?;
    let (id, sequence, batched, binary_output) =
        (request.id.clone(), request.sequence.clone(), request.batched, request.binary_output);
    let steps = request.steps.count(model.input());
    let outputs = shared.batcher.submit(request).await.map_err(|e| (e, true))?;
    let mut parameters = Map::new();
    if let Some(sequence) = &sequence {
        parameters.insert("sequence_id".into(), sequence.to_json());
    }
    parameters.insert("sequence_step".into(), Value::from(outputs.sequence_step));
    parameters.insert("sequence_durable_step".into(), Value::from(outputs.durable_step));
    let width = model.output_size();
    let shape = if batched { vec![1, steps, width] } else { vec![steps, width] };
    let mut output =
        ResponseOutput { name: OUTPUT.into(), datatype: "FP32".into(), shape, parameters: Map::new(), data: None };
    let mut response = InferResponse {
        model_name: model.name().to_string(),
        model_version: "1".into(),
        id,
        parameters,
        outputs: Vec::new(),
    };
    if !binary_output {
        output.data = Some(outputs.values);
        response.outputs.push(output);
        return Ok(Json(response).into_response());
    }
    output.parameters.insert("binary_data_size".into(), Value::from(outputs.values.len() * 4));
    response.outputs.push(output);
    let mut bytes = serde_json::to_vec(&response).map_err(|e| (ServeError::Internal(e.to_string()), true))?;
    let json_length = bytes.len();
    bytes.extend(outputs.values.iter().flat_map(|v| v.to_le_bytes()));
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (HeaderName::from_static(HEADER_LENGTH), json_length.to_string()),
    ];
    Ok((headers, bytes).into_response())
}
