//! A tensor's declared dimensions, checked before anything of their size is allocated.

use crate::error::{Error, Result};

/// Dimensions that are each non-negative and whose element count, in bytes, fits in `usize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeclaredShape {
    pub(crate) dims: Vec<usize>,
    pub(crate) elements: usize,
}

/// Checks a tensor's `dims` for elements of `element_bytes` bytes.
///
/// Only the dimensions are read: the caller compares `elements` with the data actually present before allocating,
/// so a file declaring a huge shape over a few bytes fails here or there, never in the allocator.
pub(crate) fn check_dims(tensor: &str, dims: &[i64], element_bytes: usize) -> Result<DeclaredShape> {
    let mut shape = Vec::with_capacity(dims.len());
    for (index, &dim) in dims.iter().enumerate() {
        let size = usize::try_from(dim).map_err(|_| Error::NegativeDimension {
            tensor: tensor.to_owned(),
            index,
            found: dim,
        })?;
        shape.push(size);
    }
    let overflow = || Error::DimensionsOverflow { tensor: tensor.to_owned(), dims: dims.to_vec(), element_bytes };
    // Checked: dimensions whose product wraps around could otherwise match the length of a short buffer.
    let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(overflow)?;
    elements.checked_mul(element_bytes).ok_or_else(overflow)?;
    Ok(DeclaredShape { dims: shape, elements })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_has_one_element_and_an_empty_dimension_none() {
        assert_eq!(check_dims("s", &[], 4).unwrap(), DeclaredShape { dims: vec![], elements: 1 });
        assert_eq!(check_dims("e", &[3, 0, 5], 4).unwrap().elements, 0);
    }

    #[test]
    fn a_negative_dimension_is_named() {
        let err = check_dims("x", &[2, -1], 4).unwrap_err();
        assert!(matches!(err, Error::NegativeDimension { index: 1, found: -1, .. }), "{err}");
    }

    #[test]
    fn a_product_that_wraps_around_is_an_error() {
        // 2^32 · 2^32 wraps to 0 in 64 bits, which would match an empty buffer.
        let err = check_dims("x", &[1 << 32, 1 << 32], 4).unwrap_err();
        assert!(matches!(err, Error::DimensionsOverflow { .. }), "{err}");
    }

    #[test]
    fn a_product_that_fits_only_without_the_element_size_is_an_error() {
        let err = check_dims("x", &[1 << 62], 8).unwrap_err();
        assert!(matches!(err, Error::DimensionsOverflow { element_bytes: 8, .. }), "{err}");
    }
}
