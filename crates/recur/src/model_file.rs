//! Model files: safetensors holding parameters under PyTorch's `state_dict` names, with the layer's
//! configuration as JSON in the `config` metadata key. No pickle, ever.
//!
//! A file saved from PyTorch with `safetensors.torch.save_file(lstm.state_dict(), "m.safetensors")` has no
//! metadata: recur then infers the configuration from the tensors' names and shapes, and takes what they cannot
//! tell (`batch_first`, the vanilla RNN's nonlinearity) from [`LoadOptions`].
//!
//! A **quantized** file (see [`Recurrent::quantize`]) names its [`Scheme`] in the `quantization` metadata key
//! (`bf16`, `f16`, `int8` or `int8-tensor`) and holds each weight matrix in that format under its usual name:
//! `BF16` or `F16`, or for int8 an `I8` tensor `W` with its `F32` scales beside it as `W_scale` (one per row,
//! shape `[rows]`, or one, shape `[1]`; the name follows the `weight_scale` convention of compressed-tensors).
//! Biases and every other parameter stay `F32`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::cells::Nonlinearity;
use crate::error::{Error, Result};
use crate::kernels::quant::{Int8Scale, Scheme, StoredMatrix, StoredValues};
use crate::layer::{Mode, Recurrent, RecurrentConfig};
use crate::params::Module;
use crate::tensor::Tensor;

/// The metadata key that holds a layer's configuration as JSON.
pub const CONFIG_KEY: &str = "config";

/// The metadata key that names the [`Scheme`] of a quantized file's weight matrices.
pub const QUANTIZATION_KEY: &str = "quantization";

/// The suffix of the tensor that holds an int8 weight's scales: `weight_ih_l0_scale`.
pub const SCALE_SUFFIX: &str = "_scale";

/// What a caller supplies when a model file's metadata does not say it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Whether batched input is `(B, T, I)`. `None`: as the file says, else `false`.
    pub batch_first: Option<bool>,
    /// The vanilla RNN's nonlinearity. `None`: as the file says, else tanh.
    pub nonlinearity: Option<Nonlinearity>,
}

/// The tensors (converted to `f32`) and string metadata of a safetensors file, and the weight matrices of a
/// quantized file as they are stored.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Every tensor read as `f32`, by name.
    pub tensors: HashMap<String, Tensor>,
    /// The `__metadata__` of the header (empty when absent).
    pub metadata: HashMap<String, String>,
    /// A quantized file's weight matrices in its scheme (their int8 scales folded in), by name.
    pub stored: HashMap<String, StoredMatrix>,
}

/// Where the declared-size checks look up a tensor's shape: a map of tensors, or a whole file (whose stored
/// matrices count too).
pub trait TensorShapes {
    /// The shape of tensor `name`, if there is one.
    fn shape_of(&self, name: &str) -> Option<Vec<usize>>;
}

impl TensorShapes for HashMap<String, Tensor> {
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape().to_vec())
    }
}

impl TensorShapes for TensorFile {
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.shape_of(name).or_else(|| self.stored.get(name).map(|m| vec![m.rows(), m.cols()]))
    }
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
        let scheme = match metadata.get(QUANTIZATION_KEY) {
            None => None,
            Some(name) => Some(Scheme::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
                format(format!("unknown quantization scheme {name:?} in the metadata (known: {})", known.join(", ")))
            })?),
        };
        let mut tensors = HashMap::new();
        let mut raw = Vec::new();
        for (name, view) in parsed.tensors() {
            if scheme.is_some_and(|s| view.dtype() == stored_dtype(s)) {
                raw.push((name, view));
                continue;
            }
            let data = to_f32(&name, &view)?;
            tensors.insert(name, Tensor::from_parts(view.shape().to_vec(), data));
        }
        let mut stored = HashMap::new();
        if let Some(scheme) = scheme {
            for (name, view) in raw {
                let matrix = read_stored(&name, &view, scheme, &mut tensors).map_err(format)?;
                stored.insert(name, matrix);
            }
        }
        Ok(TensorFile { tensors, metadata, stored })
    }

    /// [`TensorFile::write`] with weight matrices stored in fewer bits beside the `f32` tensors, all in one scheme,
    /// which the `quantization` metadata key then names (see the [module documentation](self)).
    pub fn write_with_stored(
        path: impl AsRef<Path>,
        tensors: &[(String, Tensor)],
        stored: &[(String, &StoredMatrix)],
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let path = path.as_ref();
        let format = |reason: String| Error::Format { path: path.into(), reason };
        let mut metadata = metadata.clone();
        if let Some((_, first)) = stored.first() {
            let scheme = first.scheme();
            if stored.iter().any(|(_, m)| m.scheme() != scheme) {
                let schemes: Vec<&str> = stored.iter().map(|(_, m)| m.scheme().name()).collect();
                return Err(format(format!("a file holds one scheme, found {schemes:?}")));
            }
            metadata.insert(QUANTIZATION_KEY.into(), scheme.name().into());
        }
        let mut entries: Vec<(String, Dtype, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(name, t)| (name.clone(), Dtype::F32, le_bytes(t.data()), t.shape().to_vec()))
            .collect();
        for (name, m) in stored {
            let shape = vec![m.rows(), m.cols()];
            match m.values() {
                StoredValues::Bf16(v) => entries.push((name.clone(), Dtype::BF16, u16_bytes(v), shape)),
                StoredValues::F16(v) => entries.push((name.clone(), Dtype::F16, u16_bytes(v), shape)),
                StoredValues::Int8 { values, scales, .. } => {
                    entries.push((name.clone(), Dtype::I8, values.iter().map(|&q| q as u8).collect(), shape));
                    let scale_name = format!("{name}{SCALE_SUFFIX}");
                    entries.push((scale_name, Dtype::F32, le_bytes(scales), vec![scales.len()]));
                }
            }
        }
        let views = entries
            .iter()
            .map(|(name, dtype, data, shape)| TensorView::new(*dtype, shape.clone(), data).map(|v| (name.as_str(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format(format!("cannot build tensor: {e}")))?;
        let meta = (!metadata.is_empty()).then_some(metadata);
        let serialized = safetensors::serialize(views, meta).map_err(|e| format(format!("cannot serialise: {e}")))?;
        write_atomically(path, &serialized)
    }

    /// Writes `tensors` as `f32` with `metadata`, atomically: into a temporary file beside `path`, synced, then
    /// renamed over it, so that a crash never leaves a half-written file under `path`.
    pub fn write(
        path: impl AsRef<Path>,
        tensors: &[(String, Tensor)],
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        Self::write_with_stored(path, tensors, &[], metadata)
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

/// `values` as little-endian bytes.
fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn u16_bytes(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The safetensors dtype a scheme stores its weights in.
fn stored_dtype(scheme: Scheme) -> Dtype {
    match scheme {
        Scheme::Bf16 => Dtype::BF16,
        Scheme::F16 => Dtype::F16,
        Scheme::Int8(_) => Dtype::I8,
    }
}

/// A weight matrix of a quantized file, with (int8) its scales, which are taken out of `tensors`. The error is
/// the reason, naming the tensor.
fn read_stored(
    name: &str,
    view: &TensorView<'_>,
    scheme: Scheme,
    tensors: &mut HashMap<String, Tensor>,
) -> std::result::Result<StoredMatrix, String> {
    let &[rows, cols] = view.shape() else {
        return Err(format!(
            "tensor `{name}` is stored as {scheme} with shape {:?}, but only 2-D weight matrices are quantized",
            view.shape()
        ));
    };
    let data = view.data();
    let halves = || data.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    let values = match scheme {
        Scheme::Bf16 => StoredValues::Bf16(halves()),
        Scheme::F16 => StoredValues::F16(halves()),
        Scheme::Int8(per) => {
            let scale_name = format!("{name}{SCALE_SUFFIX}");
            let scales = tensors
                .remove(&scale_name)
                .ok_or_else(|| format!("the int8 tensor `{name}` has no scale tensor `{scale_name}`"))?;
            let want = if per == Int8Scale::Row { rows } else { 1 };
            if scales.shape() != [want] {
                return Err(format!(
                    "tensor `{scale_name}`: expected shape [{want}] ({} of {scheme}), found {:?}",
                    if per == Int8Scale::Row { "one scale per row" } else { "one scale" },
                    scales.shape()
                ));
            }
            if let Some((i, v)) = scales.data().iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
                return Err(format!("tensor `{scale_name}`: scale {i} is {v}; scales are finite and ≥ 0"));
            }
            let values = data.iter().map(|&b| b as i8).collect::<Vec<_>>();
            if let Some(i) = values.iter().position(|&q| q == i8::MIN) {
                return Err(format!("tensor `{name}`: value {i} is −128; symmetric int8 holds −127..=127"));
            }
            StoredValues::Int8 { values, scales: scales.data().to_vec(), per }
        }
    };
    Ok(StoredMatrix::from_values(rows, cols, values))
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
            None if file.stored.is_empty() => infer_config(&file.tensors, options)?,
            None => return Err(Error::config("a quantized file needs the `config` metadata recur writes")),
        };
        // Before anything of the declared sizes is allocated.
        check_declared_sizes(&config, "", "", file)?;
        let mut layer = Recurrent::zeros(config)?;
        let mut stored = file.stored.clone();
        layer.take_stored_weights(&mut stored)?;
        refuse_leftover_stored(&stored)?;
        layer.load_state_dict(&file.tensors)?;
        Ok(layer)
    }

    /// Saves the parameters under PyTorch's names, with the configuration in the `config` metadata, so that
    /// PyTorch's `load_state_dict(safetensors.torch.load_file(path))` and [`Recurrent::load`] both read it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let metadata = HashMap::from([(CONFIG_KEY.to_string(), self.config().to_json())]);
        TensorFile::write_with_stored(path, &self.state_dict(), &self.stored_weights(), &metadata)
    }
}

/// Fails on a stored matrix no part of the model took: a tensor that must stay `f32` (a bias, a peephole) or one
/// the model does not have.
pub(crate) fn refuse_leftover_stored(stored: &HashMap<String, StoredMatrix>) -> Result<()> {
    let mut names: Vec<&String> = stored.keys().collect();
    names.sort();
    match names.first() {
        None => Ok(()),
        Some(name) => Err(Error::config(format!(
            "tensor `{name}` is stored as {}, but it is not a weight matrix recur quantizes: it must be F32",
            stored[*name].scheme()
        ))),
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
    tensors: &impl TensorShapes,
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
    let layers = (0..).take_while(|&k| tensors.shape_of(&name("weight_ih", k, false)).is_some()).count();
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
        if tensors.shape_of(&tensor).is_some() == declared {
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
        if tensors.shape_of(&name("weight_hr", 0, false)).is_some() != projected {
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
    tensors: &impl TensorShapes,
    name: &str,
    dims: &[Dim<'_>],
    config: &RecurrentConfig,
) -> Result<()> {
    let expected: Vec<usize> = dims.iter().map(|&(size, _)| size).collect();
    let Some(found) = tensors.shape_of(name) else {
        return Err(Error::MissingTensor { name: name.into(), expected });
    };
    let found = found.as_slice();
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
