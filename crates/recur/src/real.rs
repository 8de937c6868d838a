//! The scalar type of recur's arithmetic. Models run in `f32`; every backward is also checked against finite
//! differences in `f64`, through the very same generic code, so cells, the driver, the kernels, heads and losses
//! are written over [`Real`].

use std::fmt::Debug;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use crate::driver::scratch::{Pool, SharedPool};
use crate::kernels::activation;
use crate::kernels::packed::{self, TileKernel};
use crate::kernels::simd::{self, Vectorised};

/// `f32` or `f64`.
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Default
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Converts from `f32` (exact for both types).
    fn from_f32(x: f32) -> Self;
    /// Converts to `f32` (rounding for `f64`).
    fn to_f32(self) -> f32;
    /// Converts to `f64` (exact for both types).
    fn to_f64(self) -> f64;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64_lossy(x: f64) -> Self;
    /// `σ(x) = 1 / (1 + e^{-x})`, the gates' activation.
    fn sigmoid(self) -> Self;
    /// `tanh(x)`, the gates' activation.
    fn act_tanh(self) -> Self;
    /// The pool of large work buffers kept between passes, one per type (see `driver::scratch`).
    fn scratch_pool() -> &'static SharedPool<Self>;
    /// Runs element-wise `work` (a cell's gate pass), built for the CPU's vector instructions where the type
    /// has them ([`simd::run_vectorised`] for `f32`).
    fn vectorised<V: Vectorised>(work: V) {
        work.run()
    }
    /// The tile kernel of [`packed::packed_product`] for this type.
    fn tile_kernel() -> TileKernel<Self> {
        TileKernel::portable()
    }
    /// Whether [`Self::tile_kernel`] is a vector kernel, fast enough for the large products too.
    fn has_vector_tile_kernel() -> bool {
        false
    }
}

impl Real for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }

    fn to_f32(self) -> f32 {
        self
    }

    fn to_f64(self) -> f64 {
        self as f64
    }

    fn from_f64_lossy(x: f64) -> Self {
        x as f32
    }

    #[inline(always)]
    fn sigmoid(self) -> Self {
        activation::sigmoid(self)
    }

    #[inline(always)]
    fn act_tanh(self) -> Self {
        activation::tanh(self)
    }

    fn vectorised<V: Vectorised>(work: V) {
        simd::run_vectorised(work)
    }

    fn scratch_pool() -> &'static SharedPool<Self> {
        static POOL: SharedPool<f32> = SharedPool::new(Pool::new());
        &POOL
    }

    fn tile_kernel() -> TileKernel<Self> {
        packed::tile_f32_kernel()
    }

    fn has_vector_tile_kernel() -> bool {
        packed::has_vector_f32_kernel()
    }
}

/// The reference type: libm's functions, exact to the last bit that finite differences need.
impl Real for f64 {
    fn scratch_pool() -> &'static SharedPool<Self> {
        static POOL: SharedPool<f64> = SharedPool::new(Pool::new());
        &POOL
    }

    fn from_f32(x: f32) -> Self {
        x as f64
    }

    fn to_f32(self) -> f32 {
        self as f32
    }

    fn to_f64(self) -> f64 {
        self
    }

    fn from_f64_lossy(x: f64) -> Self {
        x
    }

    fn sigmoid(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }

    fn act_tanh(self) -> Self {
        self.tanh()
    }
}
