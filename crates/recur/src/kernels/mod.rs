//! Kernels: the only code that speaks in raw `f32` slices and strides. Everything above them speaks of gates,
//! steps, layers and directions.

pub mod activation;
pub mod gemm;
pub mod packed;
pub mod rowvec;
pub mod simd;
#[cfg(test)]
mod test_matrices;
