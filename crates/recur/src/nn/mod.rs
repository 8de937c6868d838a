//! The feed-forward building blocks around a recurrent layer, PyTorch's `nn.Linear`, `nn.Embedding`,
//! `nn.Dropout` and `nn.LayerNorm`, each with an explicit forward and backward, and the sinusoidal positional
//! encoding of a Transformer.
//!
//! Every block is generic over [`Real`](crate::kernels::Real) so that its backward is checked against finite
//! differences in `f64`; models use the `f32` default. Parameters keep their gradient beside their value, and a
//! backward pass adds into it (as PyTorch accumulates `.grad`) until [`Trainable::zero_grad`] is called.
//!
//! Data is passed as row-major slices with the number of rows given explicitly, so that a training loop can reuse
//! its buffers (`*_into` methods) and a shape mistake is reported rather than silently reinterpreted.
//!
//! ```
//! use rand::SeedableRng;
//! use recur::{CrossEntropyLoss, Embedding, Linear, Trainable};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut embed = Embedding::new(10, 4, Some(0), &mut rng)?; // vocabulary 10, row 0 is padding
//! let mut head = Linear::new(4, 3, true, &mut rng)?; // 3 classes
//!
//! let tokens = [3usize, 0, 7]; // one row per token
//! let targets = [2i64, -100, 1]; // -100: PyTorch's default ignore_index
//! let x = embed.forward(&tokens)?; // 3 × 4
//! let logits = head.forward(&x, 3)?; // 3 × 3
//! let (loss, dlogits) = CrossEntropyLoss::new().forward(&logits, 3, &targets, None)?;
//! let dx = head.backward(&x, &dlogits, 3)?; // accumulates head's weight and bias gradients
//! embed.backward(&tokens, &dx)?; // scatter-adds into the embedding's gradient
//! assert!(loss > 0.0);
//! assert_eq!(head.parameters().len(), 2);
//! # Ok::<(), recur::Error>(())
//! ```
//!
//! [`Trainable::zero_grad`]: crate::params::Trainable::zero_grad

mod dropout;
mod embedding;
mod head;
mod layer_norm;
mod linear;
mod positional;

pub use dropout::{Dropout, dropout_mask};
pub use embedding::Embedding;
pub use head::{Head, HeadCache, Layout, Readout, SequenceShape};
pub use layer_norm::{LayerNorm, LayerNormCache};
pub use linear::Linear;
pub use positional::{PositionalEncoding, sinusoidal_positions};

use crate::error::{Error, Result};

/// Checks that a row-major buffer holds `rows × cols` values; `what` names it in the error.
pub(crate) fn check_len(what: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(Error::shape(what, format!("[{rows}, {cols}] ({} values)", rows.saturating_mul(cols)), &[len])),
    }
}
