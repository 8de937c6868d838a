//! `recur bench --onnx FILE`: one ONNX file imported and timed in recur, over a whole sequence and per streaming
//! step, so that `bench/compare.py --onnx FILE` can put ONNX Runtime's times on the same file beside it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use recur::{StreamState, Tensor};
use recur_onnx::{ImportedModel, InputValue, OutputRole, import_model_file};

use super::CommandResult;
use super::bench::{input, median_time};

/// Batch and steps of the timed runs.
#[derive(Clone, Copy, Debug)]
pub struct OnnxBench {
    /// Sequences in the batch.
    pub batch: usize,
    /// Steps of the whole-sequence run.
    pub steps: usize,
    /// Seconds of timing per measurement.
    pub budget: Duration,
    /// One JSON object per line.
    pub json: bool,
}

/// Imports `file`, describes its signature (what `bench/compare.py` needs to feed ONNX Runtime the same inputs)
/// and times it.
pub fn run(file: &Path, bench: OnnxBench) -> CommandResult {
    let imported = import_model_file(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let config = imported.recurrent().config().clone();
    let sig = &imported.signature;
    let (b, t, i) = (bench.batch, bench.steps, config.input_size);
    let vocab = match &imported.model {
        ImportedModel::Sequence(model) => model.config().vocab,
        ImportedModel::Layer(_) => None,
    };
    let output_named = |role: OutputRole| sig.outputs.iter().find(|(_, r)| *r == role).map(|(n, _)| n.clone());
    let describe = serde_json::json!({
        "onnx": file.display().to_string(),
        "input": sig.input,
        "batch_first": config.batch_first,
        "input_size": i,
        "vocab": vocab,
        "states": config.num_layers * config.directions(),
        "hidden_size": config.hidden_size,
        "initial_h": sig.initial_h,
        "initial_c": sig.initial_c,
        "h_n": output_named(OutputRole::FinalH),
        "c_n": output_named(OutputRole::FinalC),
        "sequence_lens": sig.sequence_lens,
    });
    if bench.json {
        println!("{describe}");
    } else {
        println!("{}: {}", file.display(), describe);
    }

    let shape = if config.batch_first { [b, t] } else { [t, b] };
    let value = match vocab {
        Some(v) => InputValue::Int((0..b * t).map(|k| (k * 7 % v) as i64).collect(), shape.to_vec()),
        None => InputValue::Float(Tensor::new([shape[0], shape[1], i], input(b * t * i))?),
    };
    let inputs = HashMap::from([(sig.input.clone(), value)]);
    let whole =
        median_time(bench.budget, || imported.run(&inputs).map(drop).map_err(|e| recur::Error::config(e.to_string())))?;
    report(bench.json, &format!("onnx whole B{b} T{t}"), whole.as_secs_f64() * 1e3, "ms");

    if config.bidirectional {
        println!("(a bidirectional model has no streaming step)");
        return Ok(());
    }
    // The stack alone: an embedding's lookup per step is a copy of one row.
    let layer = imported.recurrent();
    let mut stream = StreamState::new(layer, b)?;
    let x = input(b * i);
    const STEPS: u32 = 1000;
    let step = median_time(bench.budget, || {
        for _ in 0..STEPS {
            std::hint::black_box(stream.step(layer, &x)?);
        }
        Ok(())
    })?;
    report(bench.json, &format!("onnx per-step B{b}"), (step / STEPS).as_secs_f64() * 1e6, "us");
    Ok(())
}

fn report(json: bool, case: &str, value: f64, unit: &str) {
    if json {
        println!("{}", serde_json::json!({ "case": case, unit: value }));
    } else {
        println!("{case:<40} {value:>10.3} {unit}");
    }
}
