//! The scalar type of recur's arithmetic. Models run in `f32`; every backward is also checked against finite
//! differences in `f64`, through the very same generic code, so cells, the driver, the kernels, heads and losses
//! are written over [`Real`].

use std::fmt::Debug;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use super::activation;

mod sealed {
    /// Only `f32` and `f64` are [`super::Real`]: the kernels, the scratch pool and the fixtures are written for
    /// those two, and a third type would compile against code that was never checked for it.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// `f32` or `f64` (sealed: no other type can implement it).
pub trait Real:
    sealed::Sealed
    + num_traits::Float
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
    /// `eˣ`, the softmax's: the gates' vectorisable polynomial for `f32`, libm's for `f64`.
    fn act_exp(self) -> Self;
    /// `s` itself when `Self` is `f32`: the kernels that read weights stored in fewer bits
    /// ([`super::quant`]) compute in `f32` only.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// [`Real::as_f32`], mutably.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f32 {
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }

    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }

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

    #[inline(always)]
    fn act_exp(self) -> Self {
        activation::exp(self)
    }
}

/// The reference type: libm's functions, exact to the last bit that finite differences need.
impl Real for f64 {
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }

    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
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

    fn act_exp(self) -> Self {
        self.exp()
    }
}
