//! `TensorProto`s from recur's values: the initializers of an exported graph, and the `.pb` inputs and outputs
//! of a test case. The values go in `raw_data`, little-endian, as ONNX's own tools write them.

use recur::Tensor;

use crate::proto::TensorProto;
use crate::proto::tensor_proto::DataType;

fn proto(name: &str, shape: &[usize], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_owned()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// A `FLOAT` tensor named `name` of `shape` holding `data` (row-major; `shape` `[]` for a scalar).
///
/// # Panics
///
/// When `data` does not hold exactly the values `shape` declares (a bug of the caller).
pub fn float_tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor `{name}`: data and shape differ");
    proto(name, shape, DataType::Float, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An `INT64` tensor named `name` of `shape` holding `data`.
///
/// # Panics
///
/// When `data` does not hold exactly the values `shape` declares.
pub fn int64_tensor(name: &str, shape: &[usize], data: &[i64]) -> TensorProto {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor `{name}`: data and shape differ");
    proto(name, shape, DataType::Int64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An `INT32` tensor named `name` of `shape` holding `data`.
///
/// # Panics
///
/// When `data` does not hold exactly the values `shape` declares.
pub fn int32_tensor(name: &str, shape: &[usize], data: &[i32]) -> TensorProto {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor `{name}`: data and shape differ");
    proto(name, shape, DataType::Int32, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// recur's tensor as a `FLOAT` tensor named `name`.
pub fn tensor_proto(name: &str, tensor: &Tensor) -> TensorProto {
    float_tensor(name, tensor.shape(), tensor.data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{to_f32_tensor, to_integer_tensor};

    #[test]
    fn tensors_read_back_as_written() {
        let t = Tensor::new([2, 3], (0..6).map(|k| k as f32 * 0.5 - 1.0).collect()).unwrap();
        assert_eq!(to_f32_tensor(&tensor_proto("t", &t)).unwrap(), t);
        let ints = to_integer_tensor(&int64_tensor("i", &[3], &[1, -2, 3])).unwrap();
        assert_eq!((ints.shape(), ints.data()), (&[3usize][..], &[1i64, -2, 3][..]));
        let ints = to_integer_tensor(&int32_tensor("j", &[], &[7])).unwrap();
        assert_eq!((ints.shape(), ints.data()), (&[][..], &[7i64][..]));
    }
}
