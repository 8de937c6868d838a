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
        // Before anything of the declared sizes is allocated.
        check_declared_sizes(&config, "", "", &file.tensors)?;
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
/// projection (`weight_hr_l0`), peepholes (`weight_peephole_l0`), bias (`bias_ih_l0`) and direction
/// (`weight_ih_l0_reverse`); ONNX's other options (activations, `clip`, …) only a `config` can say. The number of layers
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
        num_layers,
        bias: tensors.contains_key("bias_ih_l0"),
        batch_first: options.batch_first.unwrap_or(false),
        bidirectional: tensors.contains_key("weight_ih_l0_reverse"),
        proj_size,
        peepholes: mode == Mode::Lstm && tensors.contains_key("weight_peephole_l0"),
        ..RecurrentConfig::new(mode, input_size, hidden_size)
    })
}

/// One dimension of a parameter a configuration declares: its size and the configuration field that sets it with
/// the field's value (`None` when the size follows from sizes already checked, so that a mismatch is the tensor's
/// fault).
pub(crate) type Dim<'a> = (usize, Option<(&'a str, usize)>);

/// Checks a configuration read from a model file against the file's tensors before a layer of that configuration
/// is built: every declared count and size must be those of the tensors that hold it, so that building the layer
/// allocates no more than the file holds. A file whose `config` declares `hidden_size` 2^31 over tensors of a
/// few values is refused here, naming the field, rather than aborting the process on the allocation.
///
/// `prefix` is the layer's parameter prefix in a larger model (`rnn.`), `field_prefix` that of its
/// configuration (`recurrent.`); both are empty for a layer file. Sizes are computed with checked arithmetic.
/// Extra tensors are left to [`Module::load_state_dict`], which names them; they allocate nothing.
pub fn check_declared_sizes(
    config: &RecurrentConfig,
    prefix: &str,
    field_prefix: &str,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    config.validate()?;
    let field = |name: &str| format!("{field_prefix}{name}");
    let name = |base: &str, layer: usize, reverse: bool| {
        format!("{prefix}{base}_l{layer}{}", if reverse { "_reverse" } else { "" })
    };
    let mismatch = |name: &str, declared: &dyn std::fmt::Display, found: String| Error::DeclaredSize {
        field: field(name),
        declared: declared.to_string(),
        found,
    };

    // Which tensors exist tells the number of layers and the flags; the layers counted are bounded by the
    // number of tensors, so that nothing below loops over a declared count the file does not back.
    let layers = (0..).take_while(|&k| tensors.contains_key(&name("weight_ih", k, false))).count();
    if layers != config.num_layers {
        let found = match layers {
            0 => format!("the file has no tensor `{}`", name("weight_ih", 0, false)),
            1 => format!("the file holds 1 layer (tensor `{}`)", name("weight_ih", 0, false)),
            n => format!(
                "the file holds {n} layers (tensors `{}` to `{}`)",
                name("weight_ih", 0, false),
                name("weight_ih", n - 1, false)
            ),
        };
        return Err(mismatch("num_layers", &config.num_layers, found));
    }
    let presence = |flag: &str, declared: bool, tensor: String| {
        if tensors.contains_key(&tensor) == declared {
            Ok(())
        } else {
            let has = if declared { "has no" } else { "has a" };
            Err(mismatch(flag, &declared, format!("the file {has} tensor `{tensor}`")))
        }
    };
    presence("bidirectional", config.bidirectional, name("weight_ih", 0, true))?;
    presence("bias", config.bias, name("bias_ih", 0, false))?;
    presence("peepholes", config.peepholes, name("weight_peephole", 0, false))?;
    if config.mode == Mode::Lstm {
        let projected = config.proj_size > 0;
        if tensors.contains_key(&name("weight_hr", 0, false)) != projected {
            let has = if projected { "has no" } else { "has a" };
            return Err(mismatch(
                "proj_size",
                &config.proj_size,
                format!("the file {has} tensor `{}`", name("weight_hr", 0, false)),
            ));
        }
    }

    let hidden = config.hidden_size;
    let rows =
        config.mode.gates().checked_mul(hidden).ok_or_else(|| {
            mismatch("hidden_size", &hidden, format!("{} × hidden_size overflows", config.mode.gates()))
        })?;
    let out = config.output_size();
    let out_field = if config.proj_size > 0 { "proj_size" } else { "hidden_size" };
    let layer_input = config
        .directions()
        .checked_mul(out)
        .ok_or_else(|| mismatch(out_field, &out, format!("{} × {out_field} overflows", config.directions())))?;
    let (hidden_field, input_field, out_field) = (field("hidden_size"), field("input_size"), field(out_field));
    let h = Some((hidden_field.as_str(), hidden));
    let i = Some((input_field.as_str(), config.input_size));
    let o = Some((out_field.as_str(), out));
    // The first layer's tensors carry every declared size, each checked against the field that declares it; the
    // other layers' follow from those, so that a mismatch there is the tensor's.
    for layer in 0..config.num_layers {
        for reverse in [false, true].into_iter().take(config.directions()) {
            let first = layer == 0 && !reverse;
            let by = |f| if first { f } else { None };
            let input = if layer == 0 { (config.input_size, by(i)) } else { (layer_input, None) };
            check_shape(tensors, &name("weight_ih", layer, reverse), &[(rows, by(h)), input], config)?;
            check_shape(tensors, &name("weight_hh", layer, reverse), &[(rows, by(h)), (out, by(o))], config)?;
            if config.proj_size > 0 {
                let shape = [(config.proj_size, by(o)), (hidden, by(h))];
                check_shape(tensors, &name("weight_hr", layer, reverse), &shape, config)?;
            }
            if config.peepholes {
                check_shape(tensors, &name("weight_peephole", layer, reverse), &[(3, None), (hidden, by(h))], config)?;
            }
            if config.bias {
                for bias in ["bias_ih", "bias_hh"] {
                    check_shape(tensors, &name(bias, layer, reverse), &[(rows, by(h))], config)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks that tensor `name` has the shape `dims`: a mismatch in a dimension a field declares is a
/// [`Error::DeclaredSize`] naming that field (or `mode`, when the rows are another cell's gates × hidden), any
/// other a [`Error::TensorShape`].
pub(crate) fn check_shape(
    tensors: &HashMap<String, Tensor>,
    name: &str,
    dims: &[Dim<'_>],
    config: &RecurrentConfig,
) -> Result<()> {
    let expected: Vec<usize> = dims.iter().map(|&(size, _)| size).collect();
    let Some(tensor) = tensors.get(name) else {
        return Err(Error::MissingTensor { name: name.into(), expected });
    };
    let found = tensor.shape();
    if found == expected.as_slice() {
        return Ok(());
    }
    // The first dimension that differs (or the first one, when the ranks differ) is the one to blame.
    let axis = if found.len() == dims.len() { found.iter().zip(&expected).position(|(a, b)| a != b) } else { None };
    let (size, field) = dims[axis.unwrap_or(0)];
    let Some((field, declared)) = field else {
        return Err(Error::TensorShape { name: name.into(), expected, found: found.to_vec() });
    };
    let hidden = config.hidden_size;
    let rows_of_another_mode = axis == Some(0)
        && size == config.mode.gates().saturating_mul(hidden)
        && found[0].is_multiple_of(hidden)
        && [1, 3, 4].contains(&(found[0] / hidden));
    let (field, declared) = if rows_of_another_mode && field.ends_with("hidden_size") {
        (field.replace("hidden_size", "mode"), config.mode.to_string())
    } else {
        (field.to_string(), declared.to_string())
    };
    let found = format!("tensor `{name}`: expected shape {expected:?}, found {found:?}");
    Err(Error::DeclaredSize { field, declared, found })
}
