//! The element types this crate reads, and ONNX's names for all of them.

use crate::proto::tensor_proto::DataType;

/// An element type whose values can be read from a `TensorProto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    Float,
    Double,
    Int32,
    Int64,
}

impl Element {
    /// The element type of an ONNX `data_type` code, if it is one this crate reads.
    pub(crate) fn from_code(code: i32) -> Option<Element> {
        match DataType::try_from(code).ok()? {
            DataType::Float => Some(Element::Float),
            DataType::Double => Some(Element::Double),
            DataType::Int32 => Some(Element::Int32),
            DataType::Int64 => Some(Element::Int64),
            _ => None,
        }
    }

    /// Bytes per element in `raw_data` (little-endian).
    pub(crate) fn bytes(self) -> usize {
        match self {
            Element::Float | Element::Int32 => 4,
            Element::Double | Element::Int64 => 8,
        }
    }
}

/// ONNX's name for a `data_type` code (`FLOAT`, `INT64`, …), or the number itself when ONNX defines none.
pub(crate) fn data_type_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(data_type) => data_type.as_str_name().to_owned(),
        Err(_) => format!("{code} (not an ONNX data type)"),
    }
}
