//! `recur export`: a model as an ONNX file (LSTM/GRU/RNN operators, dynamic batch and time axes) that ONNX Runtime
//! serves as it is: a run directory's sequence model (embedding, recurrent stack, head) or a recurrent layer's
//! file.

use std::path::PathBuf;

use clap::Args;
use recur::model_file::TensorFile;
use recur::{LoadOptions, Recurrent, SequenceModel};
use recur_onnx::ExportOptions;
use recur_onnx::export::DEFAULT_OPSET;
use recur_onnx::proto::ValueInfoProto;
use recur_onnx::proto::tensor_proto::DataType;
use recur_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use recur_onnx::proto::type_proto::Value as TypeValue;
use recur_tasks::TokenVocab;

use super::CommandResult;
use super::forward::NonlinearityArg;
use crate::model_kind::describe;
use crate::modelfile;

/// Arguments of `recur export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A model file (a trained sequence model, or a recurrent layer's safetensors with PyTorch names) or a run
    /// directory (its model.safetensors).
    model: PathBuf,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    output: PathBuf,
    /// ONNX opset (14 to 22).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// Add the input `sequence_lens` (int32, one length per sequence): a padded batch in which each sequence runs
    /// for its own length.
    #[arg(long)]
    sequence_lens: bool,
    /// Add the inputs `h0` (and, for an LSTM, `c0`), (layers·directions, batch, hidden), to carry state between
    /// calls (zeros otherwise).
    #[arg(long)]
    initial_states: bool,
    /// Batched input is (B, T, I), for a layer file without `config` metadata.
    #[arg(long)]
    batch_first: bool,
    /// Nonlinearity of a vanilla RNN, for a layer file without `config` metadata.
    #[arg(long, value_enum)]
    nonlinearity: Option<NonlinearityArg>,
}

/// Runs `recur export`.
pub fn run(args: &ExportArgs) -> CommandResult {
    let path = modelfile::model_path(&args.model);
    let file = TensorFile::read(&path)?;
    let options =
        ExportOptions { opset: args.opset, sequence_lens: args.sequence_lens, initial_states: args.initial_states };
    let (model, what) = if file.metadata.contains_key(TokenVocab::SOURCE_METADATA_KEY) {
        return Err(format!(
            "{} holds a sequence-to-sequence model, which has no ONNX export; sequence models and recurrent layers \
             export",
            path.display()
        )
        .into());
    } else if file.metadata.contains_key("model") {
        let model = SequenceModel::from_tensor_file(&file).map_err(|e| format!("{}: {e}", path.display()))?;
        let config = model.config();
        let readout = serde_json::to_string(&config.readout).expect("readouts serialise");
        let what = format!(
            "{} with {}, readout {}, {} output(s)",
            describe(&config.recurrent),
            config.vocab.map_or_else(|| "feature input".into(), |v| format!("an embedding of {v} tokens")),
            readout.trim_matches('"'),
            config.outputs
        );
        (recur_onnx::export_sequence_model(&model, &options)?, what)
    } else {
        let load = LoadOptions {
            batch_first: args.batch_first.then_some(true),
            nonlinearity: args.nonlinearity.map(NonlinearityArg::nonlinearity),
        };
        let layer = Recurrent::from_tensor_file(&file, &load).map_err(|e| format!("{}: {e}", path.display()))?;
        let what = describe(layer.config());
        (recur_onnx::export_recurrent(&layer, &options)?, what)
    };
    let bytes = recur_onnx::model_bytes(&model);
    std::fs::write(&args.output, &bytes).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    println!("wrote {} ({} bytes, opset {}): {what}", args.output.display(), bytes.len(), args.opset);
    let graph = model.graph.as_ref().expect("an exported model has a graph");
    println!("  inputs:  {}", signature(&graph.input));
    println!("  outputs: {}", signature(&graph.output));
    Ok(())
}

/// `input float (time, batch, 3), h0 float (2, batch, 4)`.
fn signature(values: &[ValueInfoProto]) -> String {
    let one = |v: &ValueInfoProto| {
        let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return v.name().to_owned();
        };
        let element = DataType::try_from(t.elem_type()).map_or("?".into(), |d| d.as_str_name().to_lowercase());
        let dims: Vec<String> = t
            .shape
            .iter()
            .flat_map(|s| &s.dim)
            .map(|d| match &d.value {
                Some(DimValue::DimValue(n)) => n.to_string(),
                Some(DimValue::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect();
        format!("{} {element} ({})", v.name(), dims.join(", "))
    };
    values.iter().map(one).collect::<Vec<_>>().join(", ")
}
