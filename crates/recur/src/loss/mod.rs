//! Training objectives, PyTorch's `nn.CrossEntropyLoss`, `nn.MSELoss` and `nn.BCEWithLogitsLoss` with mean
//! reduction, each returning the loss and its gradient with respect to the input in one pass.
//!
//! Every loss takes an optional per-row mask (`true` where the row counts) so that padded positions of a batch of
//! sequences drop out of both the sum and the count of the mean, exactly as if they had not been there.
//!
//! **A mean over nothing is NaN, as in PyTorch.** When no element counts (an empty input, every row masked or
//! ignored, or class weights summing to zero), the loss is `0/0 = NaN`, which is what PyTorch returns. The
//! gradient of every masked or ignored element is exactly zero, so an all-padding batch leaves the parameters
//! unchanged under any optimizer step; a caller who prefers to log 0 can test `loss.is_nan()`. (With class
//! weights summing to zero over counted rows, those rows' gradients are NaN, again as in PyTorch.)

mod bce;
mod cross_entropy;
mod mse;

pub use bce::BceWithLogitsLoss;
pub use cross_entropy::{CrossEntropyLoss, DEFAULT_IGNORE_INDEX};
pub use mse::MseLoss;

use crate::error::{Error, Result};

/// Which elements of a row-major `rows × cols` buffer count towards a masked mean.
#[derive(Clone, Copy, Debug)]
struct RowMask<'a> {
    mask: Option<&'a [bool]>,
    cols: usize,
}

impl<'a> RowMask<'a> {
    /// The mask of a buffer of `len` elements: all of them when `mask` is `None`, else `len` must split into
    /// `mask.len()` equal rows.
    fn new(what: &str, len: usize, mask: Option<&'a [bool]>) -> Result<Self> {
        let Some(m) = mask else {
            return Ok(RowMask { mask, cols: 0 });
        };
        let rows = m.len();
        // `is_multiple_of(0)` holds only for 0: no rows fit only an empty buffer.
        if !len.is_multiple_of(rows) {
            return Err(Error::shape(what, format!("[{rows}, *] (as many rows as the mask)"), &[len]));
        }
        Ok(RowMask { mask, cols: len.checked_div(rows).unwrap_or(0) })
    }

    /// Whether element `i` counts.
    fn counts(&self, i: usize) -> bool {
        self.mask.is_none_or(|m| m[i / self.cols])
    }

    /// How many of `len` elements count.
    fn count(&self, len: usize) -> usize {
        match self.mask {
            None => len,
            Some(m) => m.iter().filter(|&&keep| keep).count() * self.cols,
        }
    }
}

/// Checks that two buffers a loss pairs element by element have the same length.
fn check_same_len(what: &str, len: usize, expected: usize) -> Result<()> {
    if len == expected { Ok(()) } else { Err(Error::shape(what, format!("[{expected}] (the input's length)"), &[len])) }
}
