//! Model files: safetensors holding parameters under PyTorch's `state_dict` names, with the layer's
//! configuration as JSON in the `config` metadata key. No pickle, ever.
//!
//! A file saved from PyTorch with `safetensors.torch.save_file(lstm.state_dict(), "m.safetensors")` has no
//! metadata: recur then infers the configuration from the tensors' names and shapes, and takes what they cannot
//! tell (`batch_first`, the vanilla RNN's nonlinearity) from [`LoadOptions`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::cells::Nonlinearity;
use crate::error::{Error, Result};
use crate::layer::{Mode, Recurrent, RecurrentConfig};
use crate::params::Module;
use crate::tensor::Tensor;

/// The metadata key that holds a layer's configuration as JSON.
pub const CONFIG_KEY: &str = "config";

/// What a caller supplies when a model file's metadata does not say it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Whether batched input is `(B, T, I)`. `None`: as the file says, else `false`.
    pub batch_first: Option<bool>,
    /// The vanilla RNN's nonlinearity. `None`: as the file says, else tanh.
    pub nonlinearity: Option<Nonlinearity>,
}

/// The tensors (converted to `f32`) and string metadata of a safetensors file.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Every tensor, by name.
    pub tensors: HashMap<String, Tensor>,
    /// The `__metadata__` of the header (empty when absent).
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads a safetensors file, converting F32, F64, F16 and BF16 tensors to `f32`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.into(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a safetensors file; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let format = |reason: String| Error::Format { path: path.into(), reason };
        let parsed =
            SafeTensors::deserialize(bytes).map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = HashMap::new();
        for (name, view) in parsed.tensors() {
            let data = to_f32(&name, &view)?;
            tensors.insert(name, Tensor::from_parts(view.shape().to_vec(), data));
        }
        Ok(TensorFile { tensors, metadata })
    }

    /// Writes `tensors` as `f32` with `metadata`, atomically: into a temporary file beside `path`, synced, then
    /// renamed over it, so that a crash never leaves a half-written file under `path`.
    pub fn write(
        path: impl AsRef<Path>,
        tensors: &[(String, Tensor)],
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let path = path.as_ref();
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(name, t)| {
                (name.clone(), t.data().iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape().to_vec())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, data, shape)| TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.as_str(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Format { path: path.into(), reason: format!("cannot build tensor: {e}") })?;
        let meta = (!metadata.is_empty()).then(|| metadata.clone());
        let serialized = safetensors::serialize(views, meta)
            .map_err(|e| Error::Format { path: path.into(), reason: format!("cannot serialise: {e}") })?;
        write_atomically(path, &serialized)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.into(), source };
    let mut tmp = PathBuf::from(path);
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    tmp.set_file_name(name);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Converts a tensor's little-endian bytes to `f32`.
fn to_f32(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(Error::Dtype { name: name.to_string(), dtype: format!("{other:?}") });
        }
    })
}

impl Recurrent {
    /// Loads a layer from a safetensors model file (see the [module documentation](self)).
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        Self::from_tensor_file(&file, options).map_err(|e| match e {
            Error::Config(reason) => {
                Error::Format { path: path.into(), reason: format!("invalid configuration: {reason}") }
            }
            other => other,
        })
    }

    /// Builds a layer from tensors and metadata already read.
    pub fn from_tensor_file(file: &TensorFile, options: &LoadOptions) -> Result<Self> {
        let config = match file.metadata.get(CONFIG_KEY) {
            Some(json) => apply_options(RecurrentConfig::from_json(json)?, options)?,
            None => infer_config(&file.tensors, options)?,
        };
        let mut layer = Recurrent::zeros(config)?;
        layer.load_state_dict(&file.tensors)?;
        Ok(layer)
    }

    /// Saves the parameters under PyTorch's names, with the configuration in the `config` metadata, so that
    /// PyTorch's `load_state_dict(safetensors.torch.load_file(path))` and [`Recurrent::load`] both read it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let metadata = HashMap::from([(CONFIG_KEY.to_string(), self.config().to_json())]);
        TensorFile::write(path, &self.state_dict(), &metadata)
    }
}

/// Checks that the caller's options agree with a configuration read from a file.
fn apply_options(config: RecurrentConfig, options: &LoadOptions) -> Result<RecurrentConfig> {
    if let Some(batch_first) = options.batch_first
        && batch_first != config.batch_first
    {
        return Err(Error::config(format!(
            "the file's config says batch_first={}, but batch_first={batch_first} was requested",
            config.batch_first
        )));
    }
    if let Some(nonlinearity) = options.nonlinearity
        && config.mode.is_rnn()
        && Mode::rnn(nonlinearity) != config.mode
    {
        return Err(Error::config(format!(
            "the file's config says mode {}, but nonlinearity {nonlinearity:?} was requested",
            config.mode
        )));
    }
    Ok(config)
}

/// Infers a configuration from PyTorch `state_dict` names and shapes alone.
///
/// The first layer's tensors tell the mode (from the gate multiple `rows(weight_ih) / hidden`), the sizes, the
/// projection (`weight_hr_l0`), bias (`bias_ih_l0`) and direction (`weight_ih_l0_reverse`); the number of layers
/// is that of the `weight_ih_l{k}` tensors. The remaining tensors are checked when the parameters are assigned.
pub fn infer_config(tensors: &HashMap<String, Tensor>, options: &LoadOptions) -> Result<RecurrentConfig> {
    let shape_of = |name: &str| tensors.get(name).map(|t| t.shape().to_vec());
    let matrix = |name: &str| -> Result<Option<(usize, usize)>> {
        match shape_of(name) {
            None => Ok(None),
            Some(s) if s.len() == 2 => Ok(Some((s[0], s[1]))),
            Some(s) => Err(Error::TensorShape { name: name.into(), expected: vec![0, 0], found: s }),
        }
    };
    let Some((rows, input_size)) = matrix("weight_ih_l0")? else {
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        names.truncate(6);
        return Err(Error::config(format!(
            "cannot infer a recurrent layer: no tensor `weight_ih_l0` and no `config` metadata (found {names:?})"
        )));
    };
    let Some((hh_rows, recurrent)) = matrix("weight_hh_l0")? else {
        return Err(Error::MissingTensor { name: "weight_hh_l0".into(), expected: vec![rows, 0] });
    };
    if hh_rows != rows {
        return Err(Error::TensorShape {
            name: "weight_hh_l0".into(),
            expected: vec![rows, recurrent],
            found: vec![hh_rows, recurrent],
        });
    }
    let (hidden_size, proj_size) = match matrix("weight_hr_l0")? {
        Some((proj, hidden)) => (hidden, proj),
        None => (recurrent, 0),
    };
    if hidden_size == 0 || !rows.is_multiple_of(hidden_size) {
        return Err(Error::config(format!(
            "weight_ih_l0 has {rows} rows, not a multiple of the hidden size {hidden_size}"
        )));
    }
    let mode = match rows / hidden_size {
        1 => Mode::rnn(options.nonlinearity.unwrap_or_default()),
        3 => Mode::Gru,
        4 => Mode::Lstm,
        g => {
            return Err(Error::config(format!(
                "weight_ih_l0 has {g}×hidden_size rows; expected 1× (RNN), 3× (GRU) or 4× (LSTM)"
            )));
        }
    };
    let num_layers = (0..).take_while(|k| tensors.contains_key(&format!("weight_ih_l{k}"))).count();
    Ok(RecurrentConfig {
        mode,
        input_size,
        hidden_size,
        num_layers,
        bias: tensors.contains_key("bias_ih_l0"),
        batch_first: options.batch_first.unwrap_or(false),
        dropout: 0.0,
        bidirectional: tensors.contains_key("weight_ih_l0_reverse"),
        proj_size,
        forget_bias: None,
    })
}
