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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{GraphProto, NodeProto};

    #[test]
    fn a_model_round_trips_through_its_bytes() {
        let node = NodeProto { op_type: Some("LSTM".into()), ..Default::default() };
        let model = ModelProto {
            ir_version: Some(10),
            graph: Some(GraphProto { node: vec![node], ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(read_model(&model.encode_to_vec()).unwrap(), model);
    }

    #[test]
    fn truncated_bytes_are_a_decode_error() {
        let tensor = TensorProto { dims: vec![2], float_data: vec![1.0, 2.0], ..Default::default() };
        let bytes = tensor.encode_to_vec();
        let err = read_tensor(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(err, Error::Decode { message: "TensorProto", .. }), "{err}");
    }

    #[test]
    fn a_field_declaring_more_bytes_than_present_is_a_decode_error_without_allocating_them() {
        // Field 4 (float_data), length-delimited, declaring 2^40 bytes of packed floats, followed by 8 bytes.
        let mut bytes = vec![(4 << 3) | 2];
        let mut length = 1u64 << 40;
        while length >= 0x80 {
            bytes.push((length as u8) | 0x80);
            length >>= 7;
        }
        bytes.push(length as u8);
        bytes.extend([0; 8]);
        let err = read_tensor(&bytes).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }

    #[test]
    fn bytes_that_are_not_a_model_are_a_decode_error() {
        let err = read_model(b"not an onnx file").unwrap_err();
        assert!(err.to_string().starts_with("not a valid ModelProto: "), "{err}");
    }
}
