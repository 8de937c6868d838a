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

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    #[test]
    fn reads_f64_and_rejects_ints() {
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

        std::fs::write(&path, b"garbage").unwrap();
        let err = read_npy(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid .npy"), "{err}");
    }
}
