//! Which keys each query may attend to: PyTorch's `key_padding_mask` and `attn_mask`, key lengths, and the
//! causal mask, checked against the shapes once and then applied row by row to the scores.

use crate::error::{Error, Result};
use crate::kernels::Real;

/// Mask values in one of PyTorch's two forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskValues<'a> {
    /// Boolean, `true` where attention is **not** allowed (PyTorch's convention for `bool` masks).
    Ignore(&'a [bool]),
    /// Added to the scores before the softmax (a float mask; `-inf` forbids a position).
    Add(&'a [f32]),
}

impl MaskValues<'_> {
    fn len(&self) -> usize {
        match self {
            MaskValues::Ignore(v) => v.len(),
            MaskValues::Add(v) => v.len(),
        }
    }

    /// The value added to a score at `index`: `-inf` for a forbidden position.
    fn bias(&self, index: usize) -> f32 {
        match self {
            MaskValues::Ignore(v) => {
                if v[index] {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            }
            MaskValues::Add(v) => v[index],
        }
    }
}

/// Which keys of a sequence are padding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyPadding<'a> {
    /// The number of real keys of each batch element (`1..=S`); keys at later positions are ignored, as a packed
    /// sequence's padding is.
    Lengths(&'a [usize]),
    /// PyTorch's `key_padding_mask`, shape `(B, S)`.
    Mask(MaskValues<'a>),
}

/// The masks of one attention call. All are optional and combine: a score is forbidden when any of them forbids
/// it, and float masks add to it.
///
/// A query whose every key is forbidden has no softmax (PyTorch returns NaN there); recur returns an error naming
/// the batch element and query.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttentionMask<'a> {
    /// Padding keys, per batch element.
    pub key_padding: Option<KeyPadding<'a>>,
    /// PyTorch's `attn_mask`: shape `(L, S)`, shared by all batch elements and heads, or `(B·heads, L, S)`.
    pub attn_mask: Option<MaskValues<'a>>,
    /// Query `i` may attend to keys `0..=i` only (PyTorch's `is_causal`, for self-attention).
    pub causal: bool,
}

impl<'a> AttentionMask<'a> {
    /// No mask: every query attends to every key.
    pub fn none() -> Self {
        Self::default()
    }

    /// Keys past each batch element's length are padding.
    pub fn lengths(lengths: &'a [usize]) -> Self {
        AttentionMask { key_padding: Some(KeyPadding::Lengths(lengths)), ..Self::default() }
    }

    /// This mask, also causal.
    pub fn with_causal(self, causal: bool) -> Self {
        AttentionMask { causal, ..self }
    }
}

/// The sizes a mask is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaskDims {
    pub batch: usize,
    pub heads: usize,
    pub queries: usize,
    pub keys: usize,
}

/// A mask whose shapes have been checked against [`MaskDims`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckedMask<'a> {
    mask: AttentionMask<'a>,
    dims: MaskDims,
    /// Whether `attn_mask` has one `(L, S)` block per batch element and head.
    per_group: bool,
}

impl<'a> CheckedMask<'a> {
    /// Checks every mask's shape (and that no length is 0 or beyond `S`).
    pub fn new(mask: AttentionMask<'a>, dims: MaskDims) -> Result<Self> {
        let MaskDims { batch, heads, queries, keys } = dims;
        match mask.key_padding {
            Some(KeyPadding::Lengths(lengths)) => {
                if lengths.len() != batch {
                    return Err(Error::shape(
                        "key lengths",
                        format!("[{batch}] (one per batch element)"),
                        &[lengths.len()],
                    ));
                }
                if let Some((b, &len)) = lengths.iter().enumerate().find(|&(_, &n)| n == 0 || n > keys) {
                    return Err(Error::config(format!(
                        "key length of batch element {b} is {len}; expected 1..={keys} (the keys given)"
                    )));
                }
            }
            Some(KeyPadding::Mask(values)) if values.len() != batch * keys => {
                return Err(Error::shape("key_padding_mask", format!("[{batch}, {keys}]"), &[values.len()]));
            }
            _ => {}
        }
        let mut per_group = false;
        if let Some(values) = mask.attn_mask {
            let block = queries * keys;
            if values.len() == batch * heads * block && batch * heads != 1 {
                per_group = true;
            } else if values.len() != block {
                return Err(Error::shape(
                    "attn_mask",
                    format!("[{queries}, {keys}] or [{}, {queries}, {keys}]", batch * heads),
                    &[values.len()],
                ));
            }
        }
        Ok(CheckedMask { mask, dims, per_group })
    }

    /// Whether nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.mask == AttentionMask::default()
    }

    /// Applies the masks to the scores of query `i` of group `g = b·heads + h` (one row of `S` scores).
    ///
    /// Returns `false` when every key of the row is forbidden.
    pub fn apply<T: Real>(&self, g: usize, i: usize, row: &mut [T]) -> bool {
        let MaskDims { heads, queries, keys, .. } = self.dims;
        let b = g / heads;
        match self.mask.key_padding {
            Some(KeyPadding::Lengths(lengths)) => row[lengths[b]..].fill(T::neg_infinity()),
            Some(KeyPadding::Mask(values)) => add_bias(row, &values, b * keys),
            None => {}
        }
        if let Some(values) = self.mask.attn_mask {
            let block = if self.per_group { g } else { 0 };
            add_bias(row, &values, (block * queries + i) * keys);
        }
        if self.mask.causal && i + 1 < row.len() {
            row[i + 1..].fill(T::neg_infinity());
        }
        row.iter().any(|&s| s > T::neg_infinity())
    }

    /// The error for a query with no key to attend to.
    pub fn no_key_error(&self, g: usize, i: usize) -> Error {
        Error::config(format!(
            "query {i} of batch element {} (head {}) may attend to no key: every key is masked",
            g / self.dims.heads,
            g % self.dims.heads
        ))
    }
}

fn add_bias<T: Real>(row: &mut [T], values: &MaskValues<'_>, start: usize) {
    for (j, s) in row.iter_mut().enumerate() {
        let bias = values.bias(start + j);
        if bias == f32::NEG_INFINITY {
            *s = T::neg_infinity();
        } else if bias != 0.0 {
            *s += <T as Real>::from_f32(bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: MaskDims = MaskDims { batch: 2, heads: 2, queries: 3, keys: 4 };

    #[test]
    fn lengths_causal_and_masks_combine() {
        let ignore = [false, false, true, false, false, false, false, false];
        let attn: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mask = AttentionMask {
            key_padding: Some(KeyPadding::Mask(MaskValues::Ignore(&ignore))),
            attn_mask: Some(MaskValues::Add(&attn)),
            causal: true,
        };
        let checked = CheckedMask::new(mask, DIMS).unwrap();
        let mut row = [0.0f64; 4];
        assert!(checked.apply(1, 2, &mut row)); // batch 0, query 2
        assert_eq!(row, [8.0, 9.0, f64::NEG_INFINITY, f64::NEG_INFINITY]);

        let lengths = [4, 1];
        let checked = CheckedMask::new(AttentionMask::lengths(&lengths), DIMS).unwrap();
        let mut row = [1.0f64; 4];
        assert!(checked.apply(3, 0, &mut row)); // batch 1
        assert_eq!(row, [1.0, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY]);
    }

    #[test]
    fn a_row_with_every_key_masked_is_reported() {
        let ignore = [true; 8];
        let mask =
            AttentionMask { key_padding: Some(KeyPadding::Mask(MaskValues::Ignore(&ignore))), ..Default::default() };
        let checked = CheckedMask::new(mask, DIMS).unwrap();
        let mut row = [0.0f32; 4];
        assert!(!checked.apply(0, 0, &mut row));
        assert!(checked.no_key_error(3, 1).to_string().contains("query 1 of batch element 1 (head 1)"));
    }

    #[test]
    fn wrong_shapes_and_lengths_are_errors() {
        let short = [false; 7];
        let mask =
            AttentionMask { key_padding: Some(KeyPadding::Mask(MaskValues::Ignore(&short))), ..Default::default() };
        let err = CheckedMask::new(mask, DIMS).unwrap_err().to_string();
        assert!(err.contains("key_padding_mask") && err.contains("[2, 4]"), "{err}");

        let attn = [0.0f32; 13];
        let mask = AttentionMask { attn_mask: Some(MaskValues::Add(&attn)), ..Default::default() };
        let err = CheckedMask::new(mask, DIMS).unwrap_err().to_string();
        assert!(err.contains("[3, 4] or [4, 3, 4]"), "{err}");

        for lengths in [[0usize, 4], [5, 1]] {
            let err = CheckedMask::new(AttentionMask::lengths(&lengths), DIMS).unwrap_err().to_string();
            assert!(err.contains("expected 1..=4"), "{err}");
        }
        let err = CheckedMask::new(AttentionMask::lengths(&[1]), DIMS).unwrap_err().to_string();
        assert!(err.contains("key lengths"), "{err}");
    }
}
