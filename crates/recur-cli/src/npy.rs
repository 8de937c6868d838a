//! Reading numpy `.npy` arrays (f32 or f64, C order) into recur tensors, and int32 or int64 sequence lengths.
//!
//! The header is checked against the file before any data is read: the header length, the nesting of its dict,
//! the shape's product (checked arithmetic) and the bytes that product needs. A file therefore cannot make the
//! reader allocate more than it holds, and every problem is a one-line error saying what was expected.
//!
//! This module depends on nothing else of the CLI, so that the fuzz targets can include it.

use std::fmt;
use std::path::{Path, PathBuf};

use recur::Tensor;

/// Why an `.npy` file could not be used.
#[derive(Debug)]
pub struct NpyError {
    path: PathBuf,
    reason: String,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for NpyError {}

/// What a well-formed header looks like, for the messages.
const EXAMPLE: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)}";

/// Headers longer than this are refused: numpy writes a simple array's header in well under 200 bytes (and its
/// own reader refuses headers over 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 16;

/// The deepest bracket nesting a header may have: a simple array's has two (the dict and the shape tuple).
const MAX_NESTING: usize = 8;

/// An element type this reader decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    F32,
    F64,
    I32,
    I64,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::F32 | Kind::I32 => 4,
            Kind::F64 | Kind::I64 => 8,
        }
    }
}

/// A parsed, checked `.npy` array: its element type, shape and the bytes of its data.
struct Array<'a> {
    descr: String,
    kind: Option<(Kind, bool)>,
    shape: Vec<usize>,
    fortran_order: bool,
    data: &'a [u8],
}

impl Array<'_> {
    /// The values of a float32 or float64 array, as `f32`.
    fn floats(&self) -> Option<Vec<f32>> {
        let (kind, big_endian) = self.kind?;
        Some(match kind {
            Kind::F32 => self.words::<4>(big_endian).map(f32::from_le_bytes).collect(),
            Kind::F64 => self.words::<8>(big_endian).map(|w| f64::from_le_bytes(w) as f32).collect(),
            Kind::I32 | Kind::I64 => return None,
        })
    }

    /// The values of an int32 or int64 array.
    fn integers(&self) -> Option<Vec<i64>> {
        let (kind, big_endian) = self.kind?;
        Some(match kind {
            Kind::I32 => self.words::<4>(big_endian).map(|w| i64::from(i32::from_le_bytes(w))).collect(),
            Kind::I64 => self.words::<8>(big_endian).map(i64::from_le_bytes).collect(),
            Kind::F32 | Kind::F64 => return None,
        })
    }

    /// The data as little-endian words of `N` bytes.
    fn words<const N: usize>(&self, big_endian: bool) -> impl Iterator<Item = [u8; N]> + '_ {
        self.data.chunks_exact(N).map(move |chunk| {
            let mut word = [0u8; N];
            word.copy_from_slice(chunk);
            if big_endian {
                word.reverse();
            }
            word
        })
    }
}

/// Parses an `.npy` file's bytes holding an f32 or f64 array in C order.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    let array = parse(bytes)?;
    if array.fortran_order {
        return Err("the array is in Fortran order; save it in C order (np.ascontiguousarray)".into());
    }
    let data =
        array.floats().ok_or_else(|| format!("dtype {} is not supported; expected float32 or float64", array.descr))?;
    Tensor::new(array.shape, data).map_err(|e| e.to_string())
}

/// Parses an `.npy` file's bytes holding sequence lengths: a 1-D int64 or int32 array of non-negative values.
pub fn parse_lengths(bytes: &[u8]) -> Result<Vec<usize>, String> {
    let array = parse(bytes)?;
    if array.shape.len() != 1 {
        return Err(format!("lengths must be a 1-D array, found shape {:?}", array.shape));
    }
    let values =
        array.integers().ok_or_else(|| format!("lengths have dtype {}; expected int64 or int32", array.descr))?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| format!("lengths[{i}] = {v} is negative")))
        .collect()
}

/// Reads an `.npy` file holding an f32 or f64 array in C order.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    read(path, parse_npy)
}

/// Reads an `.npy` file of sequence lengths: a 1-D int64 or int32 array of non-negative values.
pub fn read_lengths(path: &Path) -> Result<Vec<usize>, NpyError> {
    read(path, parse_lengths)
}

fn read<T>(path: &Path, parse: impl Fn(&[u8]) -> Result<T, String>) -> Result<T, NpyError> {
    let fail = |reason: String| NpyError { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    parse(&bytes).map_err(fail)
}

/// Parses the header (magic, version, header length, the header's dict) and checks the data against it.
fn parse(bytes: &[u8]) -> Result<Array<'_>, String> {
    let invalid = |what: String| format!("not a valid .npy file: {what}");
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or_else(|| invalid("expected the magic string \\x93NUMPY at the start".into()))?;
    let (length_bytes, rest) = match rest {
        [1, 0, rest @ ..] => (2, rest),
        [2 | 3, 0, rest @ ..] => (4, rest),
        [major, minor, ..] => return Err(invalid(format!("version {major}.{minor}; expected 1.0, 2.0 or 3.0"))),
        _ => return Err(invalid("the file ends inside the version; expected two bytes after the magic".into())),
    };
    let Some((length, rest)) = rest.split_at_checked(length_bytes) else {
        return Err(invalid(format!("the file ends inside the header length; expected {length_bytes} bytes")));
    };
    let length = length.iter().rev().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    if length > MAX_HEADER {
        return Err(invalid(format!("the header declares {length} bytes; expected at most {MAX_HEADER}")));
    }
    let Some((header, data)) = rest.split_at_checked(length) else {
        return Err(invalid(format!("the header declares {length} bytes, but only {} follow", rest.len())));
    };
    let header = std::str::from_utf8(header).map_err(|_| invalid("the header is not UTF-8 text".into()))?;
    let dict = parse_dict(header).map_err(|problem| invalid(format!("{problem}; expected a header like {EXAMPLE}")))?;

    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| matches!(k, py_literal::Value::String(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("the header has no '{key}'; expected a header like {EXAMPLE}")))
    };
    let descr = match get("descr")? {
        py_literal::Value::String(s) => s.clone(),
        other => return Err(invalid(format!("'descr' is {other}; expected a type string such as '<f4'"))),
    };
    let fortran_order = match get("fortran_order")? {
        py_literal::Value::Boolean(b) => *b,
        other => return Err(invalid(format!("'fortran_order' is {other}; expected True or False"))),
    };
    let shape_value = get("shape")?;
    let shape = match shape_value {
        py_literal::Value::Tuple(dims) => dims
            .iter()
            .map(|d| match d {
                py_literal::Value::Integer(n) => n.to_string().parse::<usize>().ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or_else(|| invalid(format!("'shape' is {shape_value}; expected a tuple of sizes such as (3, 2)")))?;

    let kind = kind_of(&descr);
    // The product of the non-zero sizes bounds every partial product, so that no size computed from the shape
    // overflows even when a zero makes the whole product zero.
    let too_many = || invalid(format!("the shape {shape:?} has more values than fit in memory"));
    let nonzero = shape.iter().filter(|&&d| d > 0).try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(too_many)?;
    let values = if shape.contains(&0) { 0 } else { nonzero };
    if let Some(kind) = kind {
        let needed = values.checked_mul(kind.size()).ok_or_else(too_many)?;
        if data.len() < needed {
            return Err(invalid(format!(
                "the shape {shape:?} of {descr} needs {needed} bytes of data, but the file holds {}",
                data.len()
            )));
        }
        let kind = Some((kind, big_endian(&descr)));
        return Ok(Array { descr, kind, shape, fortran_order, data: &data[..needed] });
    }
    Ok(Array { descr, kind: None, shape, fortran_order, data })
}

/// Parses the header text as a Python dict literal, in one line on failure.
fn parse_dict(header: &str) -> Result<Vec<(py_literal::Value, py_literal::Value)>, String> {
    // Python's parser recurses per bracket: a header of ten thousand `(` must not exhaust the stack.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for c in header.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    if deepest > MAX_NESTING {
        return Err(format!("the header nests brackets {deepest} deep, at most {MAX_NESTING} expected"));
    }
    let text = header.strip_suffix('\n').unwrap_or(header);
    match text.parse::<py_literal::Value>() {
        Ok(py_literal::Value::Dict(entries)) => Ok(entries),
        Ok(other) => Err(format!("the header is {}, not a dict", kind_name(&other))),
        Err(e) => Err(format!("the header is not a Python literal ({})", one_line(&e.to_string()))),
    }
}

/// A parser's multi-line report (position, the line with a caret, what was expected) as one line.
fn one_line(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let position = lines.iter().find_map(|l| l.split_once("-->")).map(|(_, p)| p.trim());
    let expected = lines.iter().find_map(|l| l.strip_prefix("= ")).map(str::trim);
    match (position, expected) {
        (Some(p), Some(e)) => format!("at {p}: {e}"),
        (None, Some(e)) => e.to_string(),
        _ => lines.join(" "),
    }
}

/// What kind of literal a header holds, in words.
fn kind_name(value: &py_literal::Value) -> &'static str {
    match value {
        py_literal::Value::String(_) => "a string",
        py_literal::Value::Bytes(_) => "bytes",
        py_literal::Value::Integer(_) => "an integer",
        py_literal::Value::Float(_) => "a float",
        py_literal::Value::Complex(_) => "a complex number",
        py_literal::Value::Tuple(_) => "a tuple",
        py_literal::Value::List(_) => "a list",
        py_literal::Value::Dict(_) => "a dict",
        py_literal::Value::Set(_) => "a set",
        py_literal::Value::Boolean(_) => "a boolean",
        py_literal::Value::None => "None",
    }
}

/// The element type of a type string (`'<f4'`, `'>i8'`, …), when this reader decodes it.
fn kind_of(descr: &str) -> Option<Kind> {
    let code = descr.strip_prefix(['<', '>', '=', '|']).unwrap_or(descr);
    match code {
        "f4" => Some(Kind::F32),
        "f8" => Some(Kind::F64),
        "i4" => Some(Kind::I32),
        "i8" => Some(Kind::I64),
        _ => None,
    }
}

/// Whether a type string's data is big-endian (`'='` and no prefix are this machine's order).
fn big_endian(descr: &str) -> bool {
    match descr.as_bytes().first() {
        Some(b'>') => true,
        Some(b'<') => false,
        _ => cfg!(target_endian = "big"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    #[test]
    fn reads_floats_and_lengths_and_rejects_the_wrong_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2, 2]).writer(&mut out).begin_nd().unwrap();
        w.extend([1.0f64, 2.0, 3.0, 4.5]).unwrap();
        w.finish().unwrap();
        std::fs::write(&path, &out).unwrap();
        let t = read_npy(&path).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.data(), &[1.0, 2.0, 3.0, 4.5]);

        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2]).writer(&mut out).begin_nd().unwrap();
        w.extend([1i64, 2]).unwrap();
        w.finish().unwrap();
        std::fs::write(&path, &out).unwrap();
        let err = read_npy(&path).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");

        let lengths = dir.path().join("l.npy");
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[3]).writer(&mut out).begin_nd().unwrap();
        w.extend([3i32, 1, 2]).unwrap();
        w.finish().unwrap();
        std::fs::write(&lengths, &out).unwrap();
        assert_eq!(read_lengths(&lengths).unwrap(), vec![3, 1, 2]);
        assert_eq!(read_lengths(&path).unwrap(), vec![1, 2], "int64 lengths");
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2]).writer(&mut out).begin_nd().unwrap();
        w.extend([2.0f32, 1.0]).unwrap();
        w.finish().unwrap();
        std::fs::write(&lengths, &out).unwrap();
        let err = read_lengths(&lengths).unwrap_err().to_string();
        assert!(err.contains("expected int64 or int32"), "{err}");
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2]).writer(&mut out).begin_nd().unwrap();
        w.extend([2i64, -1]).unwrap();
        w.finish().unwrap();
        std::fs::write(&lengths, &out).unwrap();
        let err = read_lengths(&lengths).unwrap_err().to_string();
        assert!(err.contains("lengths[1] = -1 is negative"), "{err}");

        std::fs::write(&path, b"garbage").unwrap();
        let err = read_npy(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid .npy"), "{err}");
    }

    /// A file whose header says `'<f4'`, `fortran_order`, `shape` as given, followed by `data`.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn big_endian_and_fortran_order_and_empty_arrays() {
        let header = "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }\n";
        let data: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(parse_npy(&npy(header, &data)).unwrap().data(), &[1.5, -2.0]);
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1)}";
        let err = parse_npy(&npy(header, &[0; 4])).unwrap_err();
        assert!(err.contains("Fortran order"), "{err}");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}";
        assert_eq!(parse_npy(&npy(header, &[])).unwrap().shape(), &[0, 3]);
    }

    /// Every malformed header is one line saying what was expected, and no header makes the reader allocate
    /// more than the file holds.
    #[test]
    fn malformed_headers_are_one_line_errors_saying_what_was_expected() {
        let f4 = |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}}}");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", &[]), "expected a header like"),
            (npy("{'descr': '<f4' 'fortran_order': False}", &[]), "not a Python literal (at 1:"),
            (npy("[1, 2]", &[]), "the header is a list, not a dict"),
            (npy("{'descr': '<f4', 'shape': (1,)}", &[0; 4]), "the header has no 'fortran_order'"),
            (npy(&f4("(2, 'x')"), &[0; 8]), "'shape' is (2, 'x'); expected a tuple of sizes"),
            (npy(&f4("(-1,)"), &[]), "expected a tuple of sizes"),
            (npy(&f4("(4294967296, 4294967296)"), &[]), "more values than fit in memory"),
            (npy(&f4("(0, 4294967296, 4294967296)"), &[]), "more values than fit in memory"),
            (npy(&f4("(1000000000,)"), &[0; 8]), "needs 4000000000 bytes of data, but the file holds 8"),
            (npy(&"(".repeat(5000), &[]), "nests brackets 5000 deep"),
            (b"\x93NUMPY\x01\x00\xff\xff{".to_vec(), "declares 65535 bytes, but only 1 follow"),
            (b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec(), "expected at most 65536"),
            (b"\x93NUMPY\x07\x00".to_vec(), "version 7.0; expected 1.0, 2.0 or 3.0"),
            (b"\x93NUM".to_vec(), "expected the magic string"),
        ];
        for (bytes, needle) in cases {
            let err = parse_npy(&bytes).unwrap_err();
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
