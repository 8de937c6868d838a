//! `recur quantize`: a model file with its weight matrices stored in bf16, f16 or int8, the file to ship. The
//! model computes from the stored values directly (see `recur::model_file`); biases stay f32, and every other
//! piece of metadata (task, vocabulary) is kept, so `recur eval`, `recur generate` and `recur info` read the new
//! file as they read the old.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rand::{Rng, SeedableRng};
use recur::model_file::{CONFIG_KEY, TensorFile};
use recur::{Int8Scale, LoadOptions, Module, Recurrent, Scheme, SequenceInput, SequenceModel, Tensor};
use recur_tasks::TokenVocab;

use super::CommandResult;
use crate::model_kind::describe;
use crate::modelfile;

/// The `--to` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// bfloat16: f32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half precision.
    F16,
    /// Symmetric int8, one f32 scale per output row (per gate unit); activations quantized per step and row.
    Int8,
    /// Symmetric int8 with one scale per tensor.
    Int8Tensor,
}

impl SchemeArg {
    fn scheme(self) -> Scheme {
        match self {
            SchemeArg::Bf16 => Scheme::Bf16,
            SchemeArg::F16 => Scheme::F16,
            SchemeArg::Int8 => Scheme::Int8(Int8Scale::Row),
            SchemeArg::Int8Tensor => Scheme::Int8(Int8Scale::Tensor),
        }
    }
}

/// Arguments of `recur quantize`.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// A model file (a trained sequence model, or a recurrent layer's safetensors) or a run directory (its
    /// model.safetensors).
    model: PathBuf,
    /// Where to write the quantized model file.
    #[arg(short, long)]
    output: PathBuf,
    /// The format of the weight matrices.
    #[arg(long, value_enum)]
    to: SchemeArg,
}

/// Runs `recur quantize`.
pub fn run(args: &QuantizeArgs) -> CommandResult {
    let path = modelfile::model_path(&args.model);
    let file = TensorFile::read(&path)?;
    let scheme = args.to.scheme();
    let in_file = |e: recur::Error| format!("{}: {e}", path.display());
    if file.metadata.contains_key(TokenVocab::SOURCE_METADATA_KEY) {
        return Err(
            format!("{} holds a sequence-to-sequence model, which cannot be quantized yet", path.display()).into()
        );
    }
    let (what, error) = if file.metadata.contains_key("model") {
        let model = SequenceModel::from_tensor_file(&file).map_err(in_file)?;
        let quantized = model.quantize(scheme).map_err(in_file)?;
        TensorFile::write_with_stored(
            &args.output,
            &quantized.state_dict(),
            &quantized.stored_weights(),
            &file.metadata,
        )?;
        (describe(&model.config().recurrent), sequence_model_error(&model, &quantized)?)
    } else {
        let layer = Recurrent::from_tensor_file(&file, &LoadOptions::default()).map_err(in_file)?;
        let quantized = layer.quantize(scheme).map_err(in_file)?;
        // A layer saved by PyTorch has no configuration; a quantized file must say it (nothing is inferred from
        // stored tensors).
        let mut metadata = file.metadata.clone();
        metadata.insert(CONFIG_KEY.into(), layer.config().to_json());
        TensorFile::write_with_stored(&args.output, &quantized.state_dict(), &quantized.stored_weights(), &metadata)?;
        (describe(layer.config()), layer_error(&layer, &quantized)?)
    };
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (before, after) = (size(&path), size(&args.output));
    println!(
        "wrote {} ({scheme}): {what}; {} → {} bytes ({:.1}%)",
        args.output.display(),
        before,
        after,
        100.0 * after as f64 / before.max(1) as f64
    );
    println!(
        "  outputs on a random probe: max |Δ| {:.2e}, RMS Δ / RMS {:.2e} against the f32 model",
        error.max, error.relative_rms
    );
    Ok(())
}

/// How far a quantized model's outputs are from the f32 model's on one probe.
struct OutputError {
    max: f32,
    relative_rms: f32,
}

fn compare(want: &[f32], got: &[f32]) -> OutputError {
    let max = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let rms = |v: &mut dyn Iterator<Item = f32>, n: usize| (v.map(|x| x * x).sum::<f32>() / n.max(1) as f32).sqrt();
    let diff = rms(&mut want.iter().zip(got).map(|(a, b)| a - b), want.len());
    OutputError { max, relative_rms: diff / rms(&mut want.iter().copied(), want.len()).max(f32::MIN_POSITIVE) }
}

/// Steps and sequences of the probe: a short batch of standard-normal features or uniform tokens, from a fixed
/// seed.
const PROBE: (usize, usize) = (32, 4);

fn layer_error(f32_layer: &Recurrent, quantized: &Recurrent) -> Result<OutputError, recur::Error> {
    let (steps, batch) = PROBE;
    let input = probe_features(steps * batch * f32_layer.config().input_size);
    let shape = if f32_layer.config().batch_first {
        [batch, steps, f32_layer.config().input_size]
    } else {
        [steps, batch, f32_layer.config().input_size]
    };
    let x = Tensor::new(shape, input)?;
    let want = f32_layer.forward(&x, None, None)?;
    let got = quantized.forward(&x, None, None)?;
    Ok(compare(want.output.data(), got.output.data()))
}

fn sequence_model_error(f32_model: &SequenceModel, quantized: &SequenceModel) -> Result<OutputError, recur::Error> {
    let (steps, batch) = PROBE;
    let carried = recur::model::CarriedState::new();
    let config = f32_model.config();
    let run = |model: &SequenceModel| -> Result<Vec<f32>, recur::Error> {
        match config.vocab {
            Some(vocab) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(0);
                let ids: Vec<usize> = (0..steps * batch).map(|_| rng.random_range(0..vocab)).collect();
                Ok(model.forward(SequenceInput::Tokens { ids: &ids, steps, batch }, None, &carried)?.0)
            }
            None => {
                let i = config.recurrent.input_size;
                let shape = if config.recurrent.batch_first { [batch, steps, i] } else { [steps, batch, i] };
                let x = Tensor::new(shape, probe_features(steps * batch * i))?;
                Ok(model.forward(SequenceInput::Features(&x), None, &carried)?.0)
            }
        }
    };
    Ok(compare(&run(f32_model)?, &run(quantized)?))
}

/// `n` standard-normal values from a fixed seed.
fn probe_features(n: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}
