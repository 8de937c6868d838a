//! ONNX's protobuf messages (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`, …) as prost types.
//!
//! `proto/onnx.rs` is generated from `crates/recur-onnx/proto/onnx.proto` (onnx 1.22.0) by
//! `tools/onnx-proto-gen` and committed, so building this crate needs neither `protoc` nor a build script. Do not
//! edit it by hand: change the `.proto` file and regenerate (see `tools/onnx-proto-gen/README.md`).
//!
//! The field docs are ONNX's own comments, copied by the generator.

// Generated code: its items carry the .proto comments (or none), which are not written as rustdoc.
#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

mod onnx;

pub use self::onnx::*;
