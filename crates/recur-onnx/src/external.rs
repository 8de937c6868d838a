//! Initializers kept beside the model: ONNX's external data (`data_location = EXTERNAL`, with `location`, `offset`
//! and `length` entries), which `torch.onnx.export` writes by default for all but the smallest tensors. Each is read
//! into the tensor's `raw_data` from the file it names, so that the usual checks of its length against its
//! dimensions follow.
//!
//! A location is a path relative to the model's folder, without `..` and not absolute (as `onnx.checker`
//! requires), so that a model cannot read files elsewhere; the range must lie inside the file, which is checked
//! against its size before anything is read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::proto::ModelProto;
use crate::proto::tensor_proto::DataLocation;

/// Reads every external initializer of `model` from the files beside `folder` into its `raw_data`.
pub fn load_external_data(model: &mut ModelProto, folder: &Path) -> Result<()> {
    let Some(graph) = model.graph.as_mut() else { return Ok(()) };
    for tensor in &mut graph.initializer {
        if tensor.data_location() != DataLocation::External {
            continue;
        }
        let name = tensor.name().to_owned();
        let fail = |reason: String| Error::ExternalFile { tensor: name.clone(), reason };
        let entry = |key: &str| tensor.external_data.iter().find(|e| e.key() == key).map(|e| e.value().to_owned());
        let location = entry("location").ok_or_else(|| fail("no `location` entry".into()))?;
        let number = |key: &str| -> Result<Option<u64>> {
            entry(key)
                .map(|v| v.parse::<u64>().map_err(|_| fail(format!("`{key}` is `{v}`, not a byte count"))))
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let relative = Path::new(&location);
        if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(fail(format!(
                "location `{location}` leaves the model's folder; expected a relative path inside it"
            )));
        }
        let path = folder.join(relative);
        let mut file = std::fs::File::open(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let size = file.metadata().map_err(|e| fail(format!("{}: {e}", path.display())))?.len();
        let length = length.unwrap_or(size.saturating_sub(offset));
        match offset.checked_add(length) {
            Some(end) if end <= size => {}
            _ => {
                return Err(fail(format!(
                    "bytes {offset}..{offset}+{length} of {}, which holds {size} bytes",
                    path.display()
                )));
            }
        }
        let mut bytes = vec![0u8; usize::try_from(length).map_err(|_| fail("a length beyond memory".into()))?];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        tensor.raw_data = Some(bytes);
        tensor.data_location = Some(DataLocation::Default as i32);
        tensor.external_data.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tensor_proto::DataType;
    use crate::proto::{GraphProto, StringStringEntryProto, TensorProto};
    use crate::to_f32_tensor;

    fn model(entries: &[(&str, &str)]) -> ModelProto {
        let external_data = entries
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: Some((*k).into()), value: Some((*v).into()) })
            .collect();
        let tensor = TensorProto {
            name: Some("w".into()),
            dims: vec![2],
            data_type: Some(DataType::Float as i32),
            data_location: Some(DataLocation::External as i32),
            external_data,
            ..Default::default()
        };
        ModelProto { graph: Some(GraphProto { initializer: vec![tensor], ..Default::default() }), ..Default::default() }
    }

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = [9.0f32, 1.5, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("weights.bin"), bytes).unwrap();
        dir
    }

    #[test]
    fn a_range_of_a_file_beside_the_model_becomes_the_tensors_data() {
        let dir = folder();
        let mut m = model(&[("location", "weights.bin"), ("offset", "4"), ("length", "8")]);
        load_external_data(&mut m, dir.path()).unwrap();
        let t = to_f32_tensor(&m.graph.unwrap().initializer[0]).unwrap();
        assert_eq!(t.data(), [1.5, -2.0]);
    }

    #[test]
    fn paths_out_of_the_folder_bad_ranges_and_missing_files_are_errors() {
        let dir = folder();
        let cases = [
            (vec![("location", "../weights.bin")], "leaves the model's folder"),
            (vec![("location", "/etc/passwd")], "leaves the model's folder"),
            (vec![("location", "weights.bin"), ("offset", "8"), ("length", "8")], "which holds 12 bytes"),
            (vec![("location", "weights.bin"), ("offset", "18446744073709551615"), ("length", "8")], "holds 12"),
            (vec![("location", "weights.bin"), ("length", "eight")], "not a byte count"),
            (vec![("location", "missing.bin")], "missing.bin"),
            (vec![("offset", "0")], "no `location`"),
        ];
        for (entries, needle) in cases {
            let mut m = model(&entries);
            let err = load_external_data(&mut m, dir.path()).unwrap_err().to_string();
            assert!(err.contains(needle), "{entries:?}: {err}");
        }
        // Bytes alone cannot reach the file: the tensor says so.
        let err = to_f32_tensor(&model(&[("location", "weights.bin")]).graph.unwrap().initializer[0]).unwrap_err();
        assert!(err.to_string().contains("import the model from its path"), "{err}");
    }
}
