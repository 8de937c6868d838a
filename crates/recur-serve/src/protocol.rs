//! The Open Inference Protocol's (KServe v2) JSON over HTTP, with Triton's sequence extension: the request and
//! response bodies, and what a request asks of a stream once it is checked against the model.
//!
//! A stream's request carries one input tensor, `INPUT`: `FP32` features of shape `[T, I]` (or `[1, T, I]`), or,
//! for a model with an embedding, `INT64`/`INT32` token ids of shape `[T]` (or `[1, T]`): `T ≥ 1` steps of one
//! stream. Its `parameters` name the stream: `sequence_id` (an integer, or a string), `sequence_start` and
//! `sequence_end` (booleans). Without a `sequence_id` (or with 0) the request is a whole sequence of its own. The
//! response's one output, `OUTPUT`, holds each step's outputs, `FP32 [T, O]` (or `[1, T, O]`, as the input was).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ServeError;
use crate::model::StepInput;

/// The name of the one input tensor.
pub const INPUT: &str = "INPUT";
/// The name of the one output tensor.
pub const OUTPUT: &str = "OUTPUT";

/// An inference request's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// `sequence_id`, `sequence_start`, `sequence_end` (others are ignored).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The input tensors: `INPUT` alone.
    pub inputs: Vec<RequestInput>,
    /// The outputs asked for: `OUTPUT` or none (which means every output).
    #[serde(default)]
    pub outputs: Vec<RequestOutput>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
pub struct RequestInput {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its datatype (`FP32`, `INT64`, …).
    pub datatype: String,
    /// Tensor parameters (ignored).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The values, row-major, flat or nested.
    pub data: Value,
}

/// One output a request asks for.
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    /// Its name.
    pub name: String,
    /// Output parameters (ignored).
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// A response's body.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// The model's name.
    pub model_name: String,
    /// The model's version (always "1").
    pub model_version: String,
    /// The request's id, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The stream's `sequence_id` and its step count after this request, `sequence_step`.
    pub parameters: Map<String, Value>,
    /// `OUTPUT`.
    pub outputs: Vec<ResponseOutput>,
}

/// An output tensor of a response.
#[derive(Debug, Serialize)]
pub struct ResponseOutput {
    /// Its name.
    pub name: String,
    /// Always `FP32`.
    pub datatype: String,
    /// `[T, O]`, or `[1, T, O]`.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// A stream's name: Triton's `sequence_id`, an unsigned integer or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SequenceId {
    /// An integer id (never 0, which means "no sequence").
    Number(u64),
    /// A string id (never empty).
    Text(String),
}

impl SequenceId {
    /// The id as the protocol writes it.
    pub fn to_json(&self) -> Value {
        match self {
            SequenceId::Number(n) => Value::from(*n),
            SequenceId::Text(s) => Value::from(s.as_str()),
        }
    }
}

impl std::fmt::Display for SequenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SequenceId::Number(n) => write!(f, "{n}"),
            SequenceId::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The steps of one stream a request carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Steps {
    /// `T × I` features.
    Features(Vec<f32>),
    /// `T` token ids.
    Tokens(Vec<usize>),
}

impl Steps {
    /// Number of steps `T`.
    pub fn count(&self, input: StepInput) -> usize {
        match (self, input) {
            (Steps::Features(x), StepInput::Features(i)) => x.len() / i.max(1),
            (Steps::Tokens(ids), _) => ids.len(),
            (Steps::Features(x), StepInput::Tokens(_)) => x.len(),
        }
    }
}

/// A request checked against the model: which stream, what to do with it, and its steps.
#[derive(Debug)]
pub struct StreamRequest {
    /// The request's id, echoed.
    pub id: Option<String>,
    /// The stream, or `None` for a whole sequence of its own.
    pub sequence: Option<SequenceId>,
    /// Whether the stream starts here (from the zero state).
    pub start: bool,
    /// Whether the stream ends after these steps.
    pub end: bool,
    /// The steps.
    pub steps: Steps,
    /// Whether the input had a leading batch dimension of 1 (the output then has one too).
    pub batched: bool,
}

impl InferRequest {
    /// Parses a body.
    pub fn from_json(body: &[u8]) -> Result<Self, ServeError> {
        serde_json::from_slice(body)
            .map_err(|e| ServeError::BadRequest(format!("the body is not an inference request: {e}")))
    }

    /// Checks the request against a model whose steps take `input`.
    pub fn into_stream_request(self, input: StepInput) -> Result<StreamRequest, ServeError> {
        let bad = |m: String| Err(ServeError::BadRequest(m));
        if let Some(other) = self.outputs.iter().find(|o| o.name != OUTPUT) {
            return bad(format!("unknown output {:?}: the model's one output is {OUTPUT:?}", other.name));
        }
        let (sequence, start, end) = sequence_parameters(&self.parameters)?;
        let [tensor] = <[RequestInput; 1]>::try_from(self.inputs).map_err(|inputs| {
            ServeError::BadRequest(format!("expected one input, {INPUT:?}, found {}", inputs.len()))
        })?;
        if tensor.name != INPUT {
            return bad(format!("unknown input {:?}: the model's one input is {INPUT:?}", tensor.name));
        }
        let (steps, batched) = tensor_steps(&tensor, input)?;
        Ok(StreamRequest { id: self.id, sequence, start, end, steps, batched })
    }
}

/// `sequence_id`, `sequence_start`, `sequence_end` of a request's parameters.
fn sequence_parameters(parameters: &Map<String, Value>) -> Result<(Option<SequenceId>, bool, bool), ServeError> {
    let flag = |name: &str| match parameters.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ServeError::BadRequest(format!("parameter {name} must be a boolean, found {other}"))),
    };
    let sequence = match parameters.get("sequence_id") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => None,
            Some(id) => Some(SequenceId::Number(id)),
            None => {
                return Err(ServeError::BadRequest(format!(
                    "sequence_id must be an unsigned 64-bit integer or a string, found {n}"
                )));
            }
        },
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(SequenceId::Text(s.clone())),
        Some(other) => {
            return Err(ServeError::BadRequest(format!(
                "sequence_id must be an unsigned 64-bit integer or a string, found {other}"
            )));
        }
    };
    let (start, end) = (flag("sequence_start")?, flag("sequence_end")?);
    if sequence.is_none() && (start || end) {
        return Err(ServeError::BadRequest("sequence_start and sequence_end need a sequence_id".into()));
    }
    Ok((sequence, start, end))
}

/// The steps of `tensor` for a model whose steps take `input`, and whether its shape had a batch dimension.
fn tensor_steps(tensor: &RequestInput, input: StepInput) -> Result<(Steps, bool), ServeError> {
    let shape = &tensor.shape;
    let bad_shape = |expected: String| {
        Err(ServeError::BadRequest(format!("input {INPUT:?}: expected shape {expected}, found {shape:?}")))
    };
    let (steps, batched) = match (input, shape.as_slice()) {
        (StepInput::Features(i), &[t, w]) if t >= 1 && w == i as i64 => (t, false),
        (StepInput::Features(i), &[1, t, w]) if t >= 1 && w == i as i64 => (t, true),
        (StepInput::Features(i), _) => return bad_shape(format!("[T, {i}] or [1, T, {i}] with T ≥ 1")),
        (StepInput::Tokens(_), &[t]) if t >= 1 => (t, false),
        (StepInput::Tokens(_), &[1, t]) if t >= 1 => (t, true),
        (StepInput::Tokens(_), _) => return bad_shape("[T] or [1, T] with T ≥ 1".into()),
    };
    let steps =
        usize::try_from(steps).map_err(|_| ServeError::BadRequest(format!("input {INPUT:?}: too many steps")))?;
    let want = match input {
        StepInput::Features(i) => steps.checked_mul(i),
        StepInput::Tokens(_) => Some(steps),
    }
    .ok_or_else(|| ServeError::BadRequest(format!("input {INPUT:?}: shape {shape:?} is too large")))?;
    let mut values = Vec::new();
    flatten(&tensor.data, want, &mut values)?;
    if values.len() != want {
        return Err(ServeError::BadRequest(format!(
            "input {INPUT:?}: shape {shape:?} holds {want} values, data has {}",
            values.len()
        )));
    }
    let steps = match (input, tensor.datatype.as_str()) {
        (StepInput::Features(_), "FP32") => Steps::Features(to_f32(&values)?),
        (StepInput::Tokens(vocab), "INT64" | "INT32") => Steps::Tokens(to_ids(&values, vocab)?),
        (StepInput::Features(_), other) => {
            return Err(ServeError::BadRequest(format!("input {INPUT:?}: expected datatype FP32, found {other}")));
        }
        (StepInput::Tokens(_), other) => {
            return Err(ServeError::BadRequest(format!(
                "input {INPUT:?}: expected datatype INT64 or INT32 (token ids), found {other}"
            )));
        }
    };
    Ok((steps, batched))
}

/// The numbers of `data` (flat or nested arrays), row-major, refusing more than `most`.
fn flatten<'a>(data: &'a Value, most: usize, out: &mut Vec<&'a serde_json::Number>) -> Result<(), ServeError> {
    match data {
        Value::Number(n) => {
            if out.len() == most {
                return Err(ServeError::BadRequest(format!("input {INPUT:?}: data has more than {most} values")));
            }
            out.push(n);
        }
        Value::Array(items) => {
            for item in items {
                flatten(item, most, out)?;
            }
        }
        other => {
            return Err(ServeError::BadRequest(format!("input {INPUT:?}: data must hold numbers, found {other}")));
        }
    }
    Ok(())
}

fn to_f32(values: &[&serde_json::Number]) -> Result<Vec<f32>, ServeError> {
    values
        .iter()
        .map(|n| {
            n.as_f64()
                .map(|v| v as f32)
                .filter(|v| v.is_finite())
                .ok_or_else(|| ServeError::BadRequest(format!("input {INPUT:?}: {n} is not a finite FP32 value")))
        })
        .collect()
}

fn to_ids(values: &[&serde_json::Number], vocab: usize) -> Result<Vec<usize>, ServeError> {
    values
        .iter()
        .map(|n| {
            n.as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v < vocab)
                .ok_or_else(|| ServeError::BadRequest(format!("input {INPUT:?}: token id {n} is not in 0..{vocab}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, input: StepInput) -> Result<StreamRequest, ServeError> {
        InferRequest::from_json(body.as_bytes())?.into_stream_request(input)
    }

    #[test]
    fn a_stream_step_parses_with_its_sequence_parameters() {
        let body = r#"{"id": "r1", "parameters": {"sequence_id": 42, "sequence_start": true},
            "inputs": [{"name": "INPUT", "shape": [1, 2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}]}"#;
        let r = request(body, StepInput::Features(3)).unwrap();
        assert_eq!(r.sequence, Some(SequenceId::Number(42)));
        assert!(r.start && !r.end && r.batched);
        assert_eq!(r.steps, Steps::Features(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(r.id.as_deref(), Some("r1"));
        let tokens = r#"{"parameters": {"sequence_id": "user-7", "sequence_end": true},
            "inputs": [{"name": "INPUT", "shape": [3], "datatype": "INT64", "data": [0, 4, 2]}]}"#;
        let r = request(tokens, StepInput::Tokens(5)).unwrap();
        assert_eq!(r.sequence, Some(SequenceId::Text("user-7".into())));
        assert_eq!(r.steps, Steps::Tokens(vec![0, 4, 2]));
        assert!(r.end && !r.batched);
    }

    #[test]
    fn bad_requests_say_what_was_expected() {
        let cases = [
            ("not json", "not an inference request"),
            (r#"{"inputs": []}"#, "expected one input"),
            (r#"{"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#, "unknown input"),
            (r#"{"inputs": [{"name": "INPUT", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, "[T, 3]"),
            (r#"{"inputs": [{"name": "INPUT", "shape": [0, 3], "datatype": "FP32", "data": []}]}"#, "T ≥ 1"),
            (
                r#"{"inputs": [{"name": "INPUT", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
                "data has 3",
            ),
            (
                r#"{"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#,
                "more than 3",
            ),
            (r#"{"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "INT8", "data": [1, 2, 3]}]}"#, "FP32"),
            (r#"{"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, "a", 3]}]}"#, "numbers"),
            (
                r#"{"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 1e300, 3]}]}"#,
                "finite",
            ),
            (
                r#"{"parameters": {"sequence_id": -1}, "inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
                "unsigned",
            ),
            (
                r#"{"parameters": {"sequence_start": true}, "inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
                "need a sequence_id",
            ),
            (
                r#"{"parameters": {"sequence_id": 1, "sequence_end": "yes"}, "inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
                "boolean",
            ),
            (
                r#"{"inputs": [{"name": "INPUT", "shape": [9223372036854775807, 3], "datatype": "FP32", "data": [1]}]}"#,
                "too large",
            ),
        ];
        for (body, says) in cases {
            let err = request(body, StepInput::Features(3)).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let token = r#"{"inputs": [{"name": "INPUT", "shape": [2], "datatype": "INT64", "data": [1, 9]}]}"#;
        assert!(request(token, StepInput::Tokens(5)).unwrap_err().to_string().contains("0..5"));
    }
}
