//! Kernels: the only code that speaks in raw slices and strides, and the scalar type [`Real`] they are written
//! over. The bottom of the crate: nothing here imports another module of recur. Everything above speaks of gates,
//! steps, layers and directions.
//!
//! Each kernel with a vector form (the tile kernels of [`packed`], the row kernel of [`rowvec`], the activations)
//! is chosen at run time by the CPU's features ([`simd::level`], capped by `RECUR_SIMD`) and tested against a plain
//! reference.

pub mod activation;
pub mod gemm;
pub mod packed;
pub mod quant;
mod real;
pub mod rowvec;
pub mod simd;
#[cfg(test)]
mod test_matrices;

pub use real::Real;
