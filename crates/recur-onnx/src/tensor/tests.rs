//! The conversions' errors. Several tensors declare far more elements than they hold (2^40 and up): a conversion
//! that allocated the declared size before checking it would abort the test binary rather than fail the test.

use super::*;
use crate::proto::StringStringEntryProto;
use crate::proto::tensor_proto::{DataType, Segment};

/// 2^40 elements: terabytes, far more than any test machine can allocate.
const HUGE: i64 = 1 << 40;

fn tensor(data_type: DataType, dims: &[i64]) -> TensorProto {
    TensorProto { name: Some("t".into()), data_type: Some(data_type as i32), dims: dims.to_vec(), ..Default::default() }
}

fn with_raw(mut tensor: TensorProto, raw: Vec<u8>) -> TensorProto {
    tensor.raw_data = Some(raw);
    tensor
}

fn le_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn float_values_come_from_float_data_or_raw_data() {
    let values = [1.0, -2.5, 3.25, 0.0, 5.0, -6.0];
    let typed = TensorProto { float_data: values.to_vec(), ..tensor(DataType::Float, &[2, 3]) };
    let raw = with_raw(tensor(DataType::Float, &[2, 3]), le_bytes_f32(&values));
    for proto in [typed, raw] {
        let converted = to_f32_tensor(&proto).unwrap();
        assert_eq!(converted.shape(), &[2, 3]);
        assert_eq!(converted.data(), &values);
    }
}

#[test]
fn double_values_are_rounded_to_f32() {
    let typed = TensorProto { double_data: vec![0.1, 1e300], ..tensor(DataType::Double, &[2]) };
    let raw = with_raw(tensor(DataType::Double, &[2]), [0.1f64, 1e300].iter().flat_map(|v| v.to_le_bytes()).collect());
    for proto in [typed, raw] {
        assert_eq!(to_f32_tensor(&proto).unwrap().data(), &[0.1f32, f32::INFINITY]);
    }
}

#[test]
fn integer_values_come_from_int32_int64_or_raw_data() {
    let int32 = TensorProto { int32_data: vec![3, -1], ..tensor(DataType::Int32, &[2]) };
    let int64 = TensorProto { int64_data: vec![3, -1], ..tensor(DataType::Int64, &[2]) };
    let raw32 = with_raw(tensor(DataType::Int32, &[2]), [3i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect());
    let raw64 = with_raw(tensor(DataType::Int64, &[2]), [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect());
    for proto in [int32, int64, raw32, raw64] {
        let converted = to_integer_tensor(&proto).unwrap();
        assert_eq!(converted.shape(), &[2]);
        assert_eq!(converted.data(), &[3, -1]);
    }
}

#[test]
fn a_scalar_and_an_empty_tensor_convert() {
    let scalar = TensorProto { float_data: vec![7.0], ..tensor(DataType::Float, &[]) };
    assert_eq!(to_f32_tensor(&scalar).unwrap().data(), &[7.0]);
    let empty = with_raw(tensor(DataType::Float, &[0, 4]), Vec::new());
    assert_eq!(to_f32_tensor(&empty).unwrap().shape(), &[0, 4]);
}

#[test]
fn truncated_raw_data_is_a_length_error() {
    let mut bytes = le_bytes_f32(&[1.0; 6]);
    bytes.pop();
    let err = to_f32_tensor(&with_raw(tensor(DataType::Float, &[2, 3]), bytes)).unwrap_err();
    assert!(
        matches!(err, Error::DataLength { field: "raw_data", unit: "bytes", expected: 24, found: 23, .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), "tensor `t` of shape [2, 3]: expected 24 bytes in `raw_data`, found 23");
}

#[test]
fn raw_data_longer_than_the_dims_declare_is_a_length_error() {
    let err = to_integer_tensor(&with_raw(tensor(DataType::Int64, &[2]), vec![0; 24])).unwrap_err();
    assert!(matches!(err, Error::DataLength { expected: 16, found: 24, .. }), "{err}");
}

#[test]
fn raw_data_whose_length_is_not_a_whole_number_of_elements_is_a_length_error() {
    let err = to_f32_tensor(&with_raw(tensor(DataType::Double, &[1]), vec![0; 4])).unwrap_err();
    assert!(matches!(err, Error::DataLength { expected: 8, found: 4, .. }), "{err}");
}

#[test]
fn a_huge_declared_size_over_a_few_raw_bytes_is_a_length_error_without_allocating_it() {
    let err = to_f32_tensor(&with_raw(tensor(DataType::Float, &[HUGE, 4]), vec![0; 16])).unwrap_err();
    assert!(matches!(err, Error::DataLength { found: 16, .. }), "{err}");
    let err = to_integer_tensor(&with_raw(tensor(DataType::Int64, &[HUGE]), vec![0; 8])).unwrap_err();
    assert!(matches!(err, Error::DataLength { found: 8, .. }), "{err}");
}

#[test]
fn a_huge_declared_size_over_a_few_typed_values_is_a_length_error_without_allocating_it() {
    let floats = TensorProto { float_data: vec![1.0; 3], ..tensor(DataType::Float, &[HUGE, HUGE >> 20]) };
    let err = to_f32_tensor(&floats).unwrap_err();
    assert!(matches!(err, Error::DataLength { field: "float_data", unit: "values", found: 3, .. }), "{err}");
    let ints = TensorProto { int32_data: vec![1], ..tensor(DataType::Int32, &[HUGE]) };
    let err = to_integer_tensor(&ints).unwrap_err();
    assert!(matches!(err, Error::DataLength { field: "int32_data", found: 1, .. }), "{err}");
}

#[test]
fn dims_whose_product_overflows_are_an_error() {
    // 2^32 · 2^32 wraps to 0 in 64 bits: unchecked, it would match the empty data.
    let wraps = with_raw(tensor(DataType::Float, &[1 << 32, 1 << 32]), Vec::new());
    let err = to_f32_tensor(&wraps).unwrap_err();
    assert!(matches!(err, Error::DimensionsOverflow { element_bytes: 4, .. }), "{err}");
    // 2^62 elements fit in usize, 2^62 · 8 bytes do not.
    let bytes_overflow = TensorProto { int64_data: vec![1], ..tensor(DataType::Int64, &[1 << 62]) };
    let err = to_integer_tensor(&bytes_overflow).unwrap_err();
    assert!(matches!(err, Error::DimensionsOverflow { element_bytes: 8, .. }), "{err}");
}

#[test]
fn a_negative_dimension_is_an_error() {
    let proto = TensorProto { float_data: vec![1.0], ..tensor(DataType::Float, &[1, -1]) };
    let err = to_f32_tensor(&proto).unwrap_err();
    assert!(matches!(err, Error::NegativeDimension { index: 1, found: -1, .. }), "{err}");
}

#[test]
fn unsupported_data_types_are_named() {
    for data_type in [DataType::Undefined, DataType::String, DataType::Float16, DataType::Bfloat16, DataType::Int64] {
        let err = to_f32_tensor(&tensor(data_type, &[1])).unwrap_err();
        let Error::DataType { expected, found, .. } = &err else { panic!("{err}") };
        assert_eq!((*expected, found.as_str()), ("FLOAT or DOUBLE", data_type.as_str_name()));
    }
    for data_type in [DataType::Float, DataType::Uint8, DataType::Int8, DataType::Uint64] {
        let err = to_integer_tensor(&tensor(data_type, &[1])).unwrap_err();
        assert!(matches!(err, Error::DataType { expected: "INT32 or INT64", .. }), "{err}");
    }
    let unknown = TensorProto { data_type: Some(999), ..tensor(DataType::Float, &[1]) };
    assert_eq!(
        to_f32_tensor(&unknown).unwrap_err().to_string(),
        "tensor `t` has data type 999 (not an ONNX data type); expected FLOAT or DOUBLE"
    );
}

#[test]
fn external_data_is_rejected_before_its_dims_are_read() {
    let location =
        TensorProto { data_location: Some(DataLocation::External as i32), ..tensor(DataType::Float, &[HUGE]) };
    let entries = TensorProto {
        external_data: vec![StringStringEntryProto { key: Some("location".into()), value: Some("w.bin".into()) }],
        ..tensor(DataType::Float, &[HUGE])
    };
    for proto in [location, entries] {
        let err = to_f32_tensor(&proto).unwrap_err();
        assert!(matches!(err, Error::ExternalData { .. }), "{err}");
    }
}

#[test]
fn a_segment_is_rejected() {
    let proto = TensorProto {
        segment: Some(Segment { begin: Some(0), end: Some(1) }),
        float_data: vec![1.0],
        ..tensor(DataType::Float, &[1])
    };
    assert!(matches!(to_f32_tensor(&proto).unwrap_err(), Error::Segmented { .. }));
}

#[test]
fn data_in_both_raw_data_and_a_typed_field_is_ambiguous() {
    let proto = TensorProto { float_data: vec![1.0], ..with_raw(tensor(DataType::Float, &[1]), le_bytes_f32(&[2.0])) };
    let err = to_f32_tensor(&proto).unwrap_err();
    assert!(matches!(err, Error::ConflictingData { field: "float_data", .. }), "{err}");
}

#[test]
fn an_empty_raw_data_beside_typed_values_reads_the_typed_values() {
    let proto = TensorProto { int64_data: vec![4, 5], ..with_raw(tensor(DataType::Int64, &[2]), Vec::new()) };
    assert_eq!(to_integer_tensor(&proto).unwrap().data(), &[4, 5]);
}
