//! Reading numpy `.npy` arrays (f32 or f64, C order) into recur tensors.

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

/// Reads an `.npy` file holding an f32 or f64 array in C order.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let fail = |reason: String| NpyError { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let file = npyz::NpyFile::new(&bytes[..]).map_err(|e| fail(format!("not a valid .npy file: {e}")))?;
    if file.order() != npyz::Order::C {
        return Err(fail("the array is in Fortran order; save it in C order (np.ascontiguousarray)".into()));
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let dtype = file.dtype().descr();
    let data: Vec<f32> = match file.try_data::<f32>() {
        Ok(reader) => reader.collect::<Result<_, _>>().map_err(|e| fail(format!("cannot read data: {e}")))?,
        Err(file) => match file.try_data::<f64>() {
            Ok(reader) => reader
                .map(|v| v.map(|v| v as f32))
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("cannot read data: {e}")))?,
            Err(_) => {
                return Err(fail(format!("dtype {dtype} is not supported; expected float32 or float64")));
            }
        },
    };
    Tensor::new(shape, data).map_err(|e| fail(e.to_string()))
}

/// Reads an `.npy` file of sequence lengths: a 1-D int64 or int32 array of non-negative values.
pub fn read_lengths(path: &Path) -> Result<Vec<usize>, NpyError> {
    let fail = |reason: String| NpyError { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let file = npyz::NpyFile::new(&bytes[..]).map_err(|e| fail(format!("not a valid .npy file: {e}")))?;
    if file.shape().len() != 1 {
        return Err(fail(format!("lengths must be a 1-D array, found shape {:?}", file.shape())));
    }
    let dtype = file.dtype().descr();
    let values: Vec<i64> = match file.try_data::<i64>() {
        Ok(reader) => reader.collect::<Result<_, _>>().map_err(|e| fail(format!("cannot read data: {e}")))?,
        Err(file) => match file.try_data::<i32>() {
            Ok(reader) => reader
                .map(|v| v.map(i64::from))
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("cannot read data: {e}")))?,
            Err(_) => return Err(fail(format!("lengths have dtype {dtype}; expected int64 or int32"))),
        },
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| fail(format!("lengths[{i}] = {v} is negative"))))
        .collect()
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
}
