//! Converting ONNX `TensorProto`s into recur's tensors: `f32` data for weights and activations, `i64` data for
//! integer inputs such as `sequence_lens`.
//!
//! Each conversion checks, in this order, that the tensor is whole and inline (no segment, no external data),
//! that its data type is one it reads, that its dimensions are non-negative and multiply without overflow, and
//! that the data present is exactly what the dimensions declare. Only then does it allocate, so the size of any
//! allocation is bounded by the bytes of the file.

mod element;
mod shape;
mod values;

use recur::Tensor;

use self::element::{Element, data_type_name};
use self::shape::{DeclaredShape, check_dims};
use self::values::read_values;
use crate::error::{Error, Result};
use crate::proto::TensorProto;
use crate::proto::tensor_proto::DataLocation;

/// A dense, row-major tensor of integers: what ONNX stores as `INT32` or `INT64`, such as an RNN's
/// `sequence_lens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegerTensor {
    shape: Vec<usize>,
    data: Vec<i64>,
}

impl IntegerTensor {
    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The row-major values, widened to `i64`.
    pub fn data(&self) -> &[i64] {
        &self.data
    }

    /// Consumes the tensor and returns its values.
    pub fn into_data(self) -> Vec<i64> {
        self.data
    }
}

/// Converts a `FLOAT` or `DOUBLE` tensor into a [`recur::Tensor`]; `DOUBLE` values are rounded to the nearest
/// `f32`.
///
/// The values come from `raw_data` (little-endian) or from `float_data` / `double_data`. Fails with an [`Error`]
/// naming the tensor for any other data type, external or segmented data, data in both places, negative or
/// overflowing dimensions, and data whose length differs from what the dimensions declare.
pub fn to_f32_tensor(tensor: &TensorProto) -> Result<Tensor> {
    let name = tensor.name();
    let element = element_of(tensor, &[Element::Float, Element::Double], "FLOAT or DOUBLE")?;
    let shape = check_dims(name, &tensor.dims, element.bytes())?;
    let raw = tensor.raw_data.as_deref();
    let data = match element {
        Element::Double => {
            let values = read_values(name, &shape, raw, "double_data", &tensor.double_data, f64::from_le_bytes)?;
            values.into_iter().map(|v| v as f32).collect()
        }
        _ => read_values(name, &shape, raw, "float_data", &tensor.float_data, f32::from_le_bytes)?,
    };
    let DeclaredShape { dims, .. } = shape;
    Ok(Tensor::new(dims, data)?)
}

/// Converts an `INT32` or `INT64` tensor into an [`IntegerTensor`].
///
/// The values come from `raw_data` (little-endian) or from `int32_data` / `int64_data`. Fails like
/// [`to_f32_tensor`] for any other data type or any mismatch between the dimensions and the data.
pub fn to_integer_tensor(tensor: &TensorProto) -> Result<IntegerTensor> {
    let name = tensor.name();
    let element = element_of(tensor, &[Element::Int32, Element::Int64], "INT32 or INT64")?;
    let shape = check_dims(name, &tensor.dims, element.bytes())?;
    let raw = tensor.raw_data.as_deref();
    let data = match element {
        Element::Int32 => {
            let values = read_values(name, &shape, raw, "int32_data", &tensor.int32_data, i32::from_le_bytes)?;
            values.into_iter().map(i64::from).collect()
        }
        _ => read_values(name, &shape, raw, "int64_data", &tensor.int64_data, i64::from_le_bytes)?,
    };
    Ok(IntegerTensor { shape: shape.dims, data })
}

/// The tensor's element type, after checking that its data is whole, inside the file, and of one of the
/// `accepted` types (`expected` names them for the error).
fn element_of(tensor: &TensorProto, accepted: &[Element], expected: &'static str) -> Result<Element> {
    let name = tensor.name();
    if tensor.segment.is_some() {
        return Err(Error::Segmented { tensor: name.to_owned() });
    }
    if tensor.data_location() == DataLocation::External || !tensor.external_data.is_empty() {
        return Err(Error::ExternalData { tensor: name.to_owned() });
    }
    let code = tensor.data_type();
    match Element::from_code(code) {
        Some(element) if accepted.contains(&element) => Ok(element),
        _ => Err(Error::DataType { tensor: name.to_owned(), expected, found: data_type_name(code) }),
    }
}

#[cfg(test)]
mod tests;
