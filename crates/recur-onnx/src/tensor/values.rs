//! Copying a tensor's values out of `raw_data` or a typed field, after checking their amount against the shape.

use super::shape::DeclaredShape;
use crate::error::{Error, Result};

/// The values of a tensor of `declared` shape, from `raw` (little-endian, `N` bytes each) when it is present and
/// from the typed field `field` (`typed`) otherwise.
///
/// The amount present is checked against the shape first, so what is allocated is never more than what the file
/// holds.
pub(crate) fn read_values<T: Copy, const N: usize>(
    tensor: &str,
    declared: &DeclaredShape,
    raw: Option<&[u8]>,
    field: &'static str,
    typed: &[T],
    from_le_bytes: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let length_error = |field, unit, expected, found| Error::DataLength {
        tensor: tensor.to_owned(),
        shape: declared.dims.clone(),
        field,
        unit,
        expected,
        found,
    };
    match raw {
        // An empty `raw_data` next to a typed field is how some writers leave the field unset.
        Some(raw) if !raw.is_empty() || typed.is_empty() => {
            if !typed.is_empty() {
                return Err(Error::ConflictingData { tensor: tensor.to_owned(), field });
            }
            // `check_dims` has already checked this product; saturating so that a caller's mistake cannot wrap.
            let expected = declared.elements.saturating_mul(N);
            if raw.len() != expected {
                return Err(length_error("raw_data", "bytes", expected, raw.len()));
            }
            Ok(raw.chunks_exact(N).map(|chunk| from_le_bytes(array_of(chunk))).collect())
        }
        _ => {
            if typed.len() != declared.elements {
                return Err(length_error(field, "values", declared.elements, typed.len()));
            }
            Ok(typed.to_vec())
        }
    }
}

/// A chunk of exactly `N` bytes as an array.
fn array_of<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(chunk);
    bytes
}
