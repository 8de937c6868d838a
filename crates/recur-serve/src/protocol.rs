//! The Open Inference Protocol's (KServe v2) JSON over HTTP, with Triton's sequence extension: the request and
//! response bodies, and what a request asks of a stream once it is checked against the model.
//!
//! A stream's request carries one input tensor, `INPUT`: `FP32` features of shape `[T, I]` (or `[1, T, I]`), or,
//! for a model with an embedding, `INT64`/`INT32` token ids of shape `[T]` (or `[1, T]`): `T ≥ 1` steps of one
//! stream. Its `parameters` name the stream: `sequence_id` (an integer, or a string), `sequence_start` and
//! `sequence_end` (booleans), and optionally `sequence_step`, the step count the client expects the stream to be at
//! (the `sequence_step` of its previous answer): a request that finds the stream elsewhere is refused and changes
//! nothing. Without a `sequence_id` (or with 0) the request is a whole sequence of its own. The
//! response's one output, `OUTPUT`, holds each step's outputs, `FP32 [T, O]` (or `[1, T, O]`, as the input was).
//!
//! Tensors travel as JSON `data`, or in the protocol's binary tensor extension: with the header
//! `Inference-Header-Content-Length: N`, the body's first `N` bytes are the JSON and the rest the raw values
//! (little-endian) of the input that declares `"parameters": {"binary_data_size": bytes}`; an output asked for with
//! `"parameters": {"binary_data": true}` (or every output, with the request parameter `binary_data_output`) comes
//! back the same way.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ServeError;
use crate::model::StepInput;

/// The name of the one input tensor.
pub const INPUT: &str = "INPUT";
/// The name of the one output tensor.
pub const OUTPUT: &str = "OUTPUT";
/// The longest string `sequence_id`, in bytes (a stored stream's file is named after it).
pub const MAX_ID_BYTES: usize = 100;

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
    /// Tensor parameters: `binary_data_size` when its values follow the JSON as bytes.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The values, row-major, flat or nested (absent when they come as bytes).
    #[serde(default)]
    pub data: Option<JsonNumbers>,
}

/// A tensor's JSON `data`: numbers, or arrays of them nested to any depth (serde_json's recursion limit aside),
/// read straight into one row-major list, without a [`Value`] for each number or an array for each row.
#[derive(Debug, Default, PartialEq)]
pub struct JsonNumbers(pub Vec<serde_json::Number>);

impl<'de> Deserialize<'de> for JsonNumbers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut numbers = Vec::new();
        deserializer.deserialize_any(Flatten(&mut numbers))?;
        Ok(JsonNumbers(numbers))
    }
}

/// Appends a number, or the numbers of a (nested) array, to a list.
struct Flatten<'a>(&'a mut Vec<serde_json::Number>);

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("numbers, or arrays of numbers")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v.into());
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v.into());
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        let number = serde_json::Number::from_f64(v).ok_or_else(|| E::custom(format!("{v} is not a JSON number")))?;
        self.0.push(number);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// One output a request asks for.
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    /// Its name.
    pub name: String,
    /// Output parameters: `binary_data` asks for the values as bytes after the JSON.
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
    /// `binary_data_size` when the values follow the JSON as bytes.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// The values, row-major (absent when they follow the JSON as bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
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
    /// Whether the output goes back as bytes after the JSON.
    pub binary_output: bool,
    /// The stream's step count the client expects before these steps (the request parameter `sequence_step`, the
    /// `sequence_step` of its previous answer), if it says.
    pub expect_step: Option<u64>,
}

impl InferRequest {
    /// Parses a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ServeError> {
        serde_json::from_slice(body)
            .map_err(|e| ServeError::BadRequest(format!("the body is not an inference request: {e}")))
    }

    /// Splits a body into its request and the bytes after its JSON: all of it is JSON without `header_length`
    /// (the `Inference-Header-Content-Length` header), else its first `header_length` bytes are.
    pub fn from_body(body: &[u8], header_length: Option<usize>) -> Result<(Self, &[u8]), ServeError> {
        match header_length {
            None => Ok((Self::from_json(body)?, &[])),
            Some(n) if n <= body.len() => Ok((Self::from_json(&body[..n])?, &body[n..])),
            Some(n) => Err(ServeError::BadRequest(format!(
                "Inference-Header-Content-Length is {n}, but the body has {} bytes",
                body.len()
            ))),
        }
    }

    /// Checks the request against a model whose steps take `input`; `binary` is what followed the JSON.
    pub fn into_stream_request(self, input: StepInput, binary: &[u8]) -> Result<StreamRequest, ServeError> {
        let bad = |m: String| Err(ServeError::BadRequest(m));
        if let Some(other) = self.outputs.iter().find(|o| o.name != OUTPUT) {
            return bad(format!("unknown output {:?}: the model's one output is {OUTPUT:?}", other.name));
        }
        let (sequence, start, end) = sequence_parameters(&self.parameters)?;
        let mut binary_output = flag(&self.parameters, "binary_data_output")?;
        for output in &self.outputs {
            binary_output |= flag(&output.parameters, "binary_data")?;
        }
        let [tensor] = <[RequestInput; 1]>::try_from(self.inputs).map_err(|inputs| {
            ServeError::BadRequest(format!("expected one input, {INPUT:?}, found {}", inputs.len()))
        })?;
        if tensor.name != INPUT {
            return bad(format!("unknown input {:?}: the model's one input is {INPUT:?}", tensor.name));
        }
        let data = match (tensor.parameters.get("binary_data_size"), &tensor.data) {
            (None, Some(json)) if binary.is_empty() => TensorData::Json(json),
            (None, Some(_)) => {
                return bad(format!("{} bytes follow the JSON, but no input declares binary_data_size", binary.len()));
            }
            (Some(size), None) => {
                let size = size.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                    ServeError::BadRequest(format!("binary_data_size must be a byte count, found {size}"))
                })?;
                if size != binary.len() {
                    return bad(format!(
                        "input {INPUT:?} declares {size} bytes of binary data, {} follow the JSON",
                        binary.len()
                    ));
                }
                TensorData::Binary(binary)
            }
            (None, None) => return bad(format!("input {INPUT:?} has neither data nor binary_data_size")),
            (Some(_), Some(_)) => return bad(format!("input {INPUT:?} has both data and binary_data_size")),
        };
        let expect_step = match self.parameters.get("sequence_step") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ServeError::BadRequest(format!("parameter sequence_step must be a step count, found {v}"))
            })?),
        };
        if expect_step.is_some() && sequence.is_none() {
            return bad("sequence_step needs a sequence_id".into());
        }
        let (steps, batched) = tensor_steps(&tensor, data, input)?;
        Ok(StreamRequest { id: self.id, sequence, start, end, steps, batched, binary_output, expect_step })
    }
}

/// An input's values as they came.
#[derive(Clone, Copy, Debug)]
enum TensorData<'a> {
    /// JSON numbers, flat or nested.
    Json(&'a JsonNumbers),
    /// Raw little-endian values.
    Binary(&'a [u8]),
}

/// The boolean parameter `name`, false when absent.
fn flag(parameters: &Map<String, Value>, name: &str) -> Result<bool, ServeError> {
    match parameters.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ServeError::BadRequest(format!("parameter {name} must be a boolean, found {other}"))),
    }
}

/// `sequence_id`, `sequence_start`, `sequence_end` of a request's parameters.
fn sequence_parameters(parameters: &Map<String, Value>) -> Result<(Option<SequenceId>, bool, bool), ServeError> {
    let not_an_id = |shown: &dyn std::fmt::Display| {
        ServeError::BadRequest(format!("sequence_id must be an unsigned 64-bit integer or a string, found {shown}"))
    };
    let sequence = match parameters.get("sequence_id") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => None,
            Some(id) => Some(SequenceId::Number(id)),
            None => return Err(not_an_id(n)),
        },
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s.len() > MAX_ID_BYTES => {
            return Err(ServeError::BadRequest(format!(
                "a string sequence_id has at most {MAX_ID_BYTES} bytes, found {}",
                s.len()
            )));
        }
        Some(Value::String(s)) => Some(SequenceId::Text(s.clone())),
        Some(other) => return Err(not_an_id(other)),
    };
    let (start, end) = (flag(parameters, "sequence_start")?, flag(parameters, "sequence_end")?);
    if sequence.is_none() && (start || end) {
        return Err(ServeError::BadRequest("sequence_start and sequence_end need a sequence_id".into()));
    }
    Ok((sequence, start, end))
}

/// The steps of `tensor` (its values `data`) for a model whose steps take `input`, and whether its shape had a
/// batch dimension.
fn tensor_steps(tensor: &RequestInput, data: TensorData<'_>, input: StepInput) -> Result<(Steps, bool), ServeError> {
    let shape = &tensor.shape;
    let bad = |m: String| Err(ServeError::BadRequest(format!("input {INPUT:?}: {m}")));
    let (steps, batched) = match (input, shape.as_slice()) {
        (StepInput::Features(i), &[t, w]) if t >= 1 && w == i as i64 => (t, false),
        (StepInput::Features(i), &[1, t, w]) if t >= 1 && w == i as i64 => (t, true),
        (StepInput::Features(i), _) => {
            return bad(format!("expected shape [T, {i}] or [1, T, {i}] with T ≥ 1, found {shape:?}"));
        }
        (StepInput::Tokens(_), &[t]) if t >= 1 => (t, false),
        (StepInput::Tokens(_), &[1, t]) if t >= 1 => (t, true),
        (StepInput::Tokens(_), _) => return bad(format!("expected shape [T] or [1, T] with T ≥ 1, found {shape:?}")),
    };
    let too_large = || ServeError::BadRequest(format!("input {INPUT:?}: shape {shape:?} is too large"));
    let steps = usize::try_from(steps).map_err(|_| too_large())?;
    let want = match input {
        StepInput::Features(i) => steps.checked_mul(i),
        StepInput::Tokens(_) => Some(steps),
    }
    .ok_or_else(too_large)?;
    let datatype = tensor.datatype.as_str();
    let numbers = match (input, datatype) {
        (StepInput::Features(_), "FP32") | (StepInput::Tokens(_), "INT64" | "INT32") => Numbers::read(data, datatype)?,
        (StepInput::Features(_), other) => return bad(format!("expected datatype FP32, found {other}")),
        (StepInput::Tokens(_), other) => {
            return bad(format!("expected datatype INT64 or INT32 (token ids), found {other}"));
        }
    };
    if numbers.len() != want {
        return bad(format!("shape {shape:?} holds {want} values, data has {}", numbers.len()));
    }
    let steps = match input {
        StepInput::Features(_) => Steps::Features(numbers.to_f32()?),
        StepInput::Tokens(vocab) => Steps::Tokens(numbers.to_ids(vocab)?),
    };
    Ok((steps, batched))
}

/// An input's numbers, as JSON gave them or as its bytes hold them.
enum Numbers<'a> {
    Json(&'a [serde_json::Number]),
    F32(Vec<f32>),
    Int(Vec<i64>),
}

impl<'a> Numbers<'a> {
    /// The values of `data`, of `datatype` (`FP32`, `INT64` or `INT32`).
    fn read(data: TensorData<'a>, datatype: &str) -> Result<Self, ServeError> {
        let bytes = match data {
            TensorData::Json(json) => return Ok(Numbers::Json(&json.0)),
            TensorData::Binary(bytes) => bytes,
        };
        let width = if datatype == "INT64" { 8 } else { 4 };
        if bytes.len() % width != 0 {
            return Err(ServeError::BadRequest(format!(
                "input {INPUT:?}: {} bytes of binary data are not whole {datatype} values",
                bytes.len()
            )));
        }
        let words = || bytes.chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]);
        Ok(match datatype {
            "FP32" => Numbers::F32(words().map(f32::from_le_bytes).collect()),
            "INT32" => Numbers::Int(words().map(|w| i64::from(i32::from_le_bytes(w))).collect()),
            _ => Numbers::Int(
                bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
            ),
        })
    }

    fn len(&self) -> usize {
        match self {
            Numbers::Json(v) => v.len(),
            Numbers::F32(v) => v.len(),
            Numbers::Int(v) => v.len(),
        }
    }

    fn to_f32(&self) -> Result<Vec<f32>, ServeError> {
        let finite = |v: f32, shown: &dyn std::fmt::Display| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(ServeError::BadRequest(format!("input {INPUT:?}: {shown} is not a finite FP32 value")))
            }
        };
        match self {
            Numbers::Json(v) => v.iter().map(|n| finite(n.as_f64().map_or(f32::NAN, |x| x as f32), n)).collect(),
            Numbers::F32(v) => v.iter().map(|&x| finite(x, &x)).collect(),
            Numbers::Int(v) => v.iter().map(|&x| finite(x as f32, &x)).collect(),
        }
    }

    fn to_ids(&self, vocab: usize) -> Result<Vec<usize>, ServeError> {
        let id = |v: Option<u64>, shown: &dyn std::fmt::Display| {
            v.and_then(|v| usize::try_from(v).ok()).filter(|&v| v < vocab).ok_or_else(|| {
                ServeError::BadRequest(format!("input {INPUT:?}: token id {shown} is not in 0..{vocab}"))
            })
        };
        match self {
            Numbers::Json(v) => v.iter().map(|n| id(n.as_u64(), n)).collect(),
            Numbers::Int(v) => v.iter().map(|&n| id(u64::try_from(n).ok(), &n)).collect(),
            Numbers::F32(v) => v.iter().map(|&x| id(None, &x)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, input: StepInput) -> Result<StreamRequest, ServeError> {
        InferRequest::from_json(body.as_bytes())?.into_stream_request(input, &[])
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

    /// A body of the binary tensor extension: `json`, then `bytes`.
    fn binary(json: &str, bytes: &[u8], header: Option<usize>, input: StepInput) -> Result<StreamRequest, ServeError> {
        let mut body = json.as_bytes().to_vec();
        body.extend_from_slice(bytes);
        let (request, rest) = InferRequest::from_body(&body, Some(header.unwrap_or(json.len())))?;
        request.into_stream_request(input, rest)
    }

    #[test]
    fn binary_tensors_are_read_and_their_lengths_checked() {
        let values: Vec<u8> = [1.5f32, -2.0, 0.25, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let json = r#"{"parameters": {"sequence_id": 3, "sequence_start": true, "binary_data_output": true},
            "inputs": [{"name": "INPUT", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}]}"#;
        let r = binary(json, &values, None, StepInput::Features(3)).unwrap();
        assert_eq!(r.steps, Steps::Features(vec![1.5, -2.0, 0.25, 4.0, 5.0, 6.0]));
        assert!(r.binary_output);
        let ids: Vec<u8> = [2i64, 0, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let json = r#"{"inputs": [{"name": "INPUT", "shape": [3], "datatype": "INT64", "parameters": {"binary_data_size": 24}}],
            "outputs": [{"name": "OUTPUT", "parameters": {"binary_data": true}}]}"#;
        let r = binary(json, &ids, None, StepInput::Tokens(5)).unwrap();
        assert_eq!(r.steps, Steps::Tokens(vec![2, 0, 4]));
        assert!(r.binary_output);

        let features = StepInput::Features(3);
        let declares = |n: usize| {
            format!(
                r#"{{"inputs": [{{"name": "INPUT", "shape": [2, 3], "datatype": "FP32", "parameters": {{"binary_data_size": {n}}}}}]}}"#
            )
        };
        let cases: [(String, &[u8], Option<usize>, &str); 6] = [
            (declares(24), &values[..20], None, "declares 24 bytes"),
            (declares(22), &values[..22], None, "not whole FP32"),
            (declares(20), &values[..20], None, "data has 5"),
            (declares(24), &values, Some(10_000), "the body has"),
            (declares(24), &values, Some(5), "not an inference request"),
            (
                r#"{"inputs": [{"name": "INPUT", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}"#
                    .into(),
                &values,
                None,
                "no input declares",
            ),
        ];
        for (json, bytes, header, says) in cases {
            let err = binary(&json, bytes, header, features).unwrap_err().to_string();
            assert!(err.contains(says), "{json}: {err}");
        }
        let nan: Vec<u8> = [1.0f32, f32::NAN, 0.0, 1.0, 1.0, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(binary(&declares(24), &nan, None, features).unwrap_err().to_string().contains("finite"));
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
                r#"{"inputs": [{"name": "INPUT", "shape": [1, 3], "datatype": "FP32", "data": [[1, 2], [3, [4]]]}]}"#,
                "data has 4",
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
