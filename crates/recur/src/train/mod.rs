//! Training utilities that sit above the layers: truncated backpropagation through time.

mod tbptt;

pub use tbptt::{CarriedState, contiguous_streams, windows};
