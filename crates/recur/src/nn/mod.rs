//! The feed-forward building blocks around a recurrent layer, PyTorch's `nn.Linear`, `nn.Embedding` and
//! `nn.Dropout`, each with an explicit forward and backward.
//!
//! Every block is generic over [`Real`](crate::real::Real) so that its backward is checked against finite
//! differences in `f64`; models use the `f32` default. Parameters keep their gradient beside their value, and a
//! backward pass adds into it (as PyTorch accumulates `.grad`) until [`Trainable::zero_grad`] is called.
//!
//! Data is passed as row-major slices with the number of rows given explicitly, so that a training loop can reuse
//! its buffers (`*_into` methods) and a shape mistake is reported rather than silently reinterpreted.
//!
//! [`Trainable::zero_grad`]: crate::params::Trainable::zero_grad

mod dropout;
mod embedding;
mod linear;

pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::Linear;

use crate::error::{Error, Result};

/// Checks that a row-major buffer holds `rows × cols` values; `what` names it in the error.
pub(crate) fn check_len(what: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(Error::shape(
            what,
            format!("[{rows}, {cols}] ({} values)", rows.saturating_mul(cols)),
            &[len],
        )),
    }
}
