//! Decoding the bytes of ONNX files into protobuf messages.

use prost::Message;

use crate::error::{Error, Result};
use crate::proto::{ModelProto, TensorProto};

/// Decodes an ONNX model: the bytes of a `.onnx` file, a serialized `ModelProto`.
///
/// Only the protobuf encoding is checked here; the graph's contents are checked by what reads them.
pub fn read_model(bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(bytes).map_err(|source| Error::Decode { message: "ModelProto", source })
}

/// Decodes one serialized `TensorProto`: the bytes of a `.pb` file such as ONNX's node tests'
/// `test_data_set_0/input_0.pb`.
///
/// The tensor's data is not checked against its dimensions here; [`to_f32_tensor`](crate::to_f32_tensor) and
/// [`to_integer_tensor`](crate::to_integer_tensor) do that.
pub fn read_tensor(bytes: &[u8]) -> Result<TensorProto> {
    TensorProto::decode(bytes).map_err(|source| Error::Decode { message: "TensorProto", source })
}
