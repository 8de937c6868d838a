//! Builds a two-layer bidirectional LSTM in recur, runs it on a fixed input and saves both the model and the
//! result, so that PyTorch can load the model and check the numbers:
//!
//! ```sh
//! cargo run --release -p recur --example to_pytorch -- /tmp/recur-lstm
//! ```
//!
//! writes `/tmp/recur-lstm.model.safetensors` (PyTorch `state_dict` names, `config` metadata) and
//! `/tmp/recur-lstm.io.safetensors` (`input`, `output`, `h_n`, `c_n`).

use std::collections::HashMap;

use recur::model_file::TensorFile;
use recur::{Recurrent, RecurrentConfig, Tensor};

fn main() -> recur::Result<()> {
    let prefix = std::env::args().nth(1).unwrap_or_else(|| "recur-lstm".to_string());
    let config = RecurrentConfig::lstm(3, 5).num_layers(2).bidirectional(true).batch_first(true);
    let lstm = Recurrent::with_seed(config, 2024)?;
    let (batch, steps, input) = (2, 7, 3);
    let x: Vec<f32> = (0..batch * steps * input).map(|i| ((i as f32) * 0.37).sin()).collect();
    let x = Tensor::new([batch, steps, input], x)?;
    let out = lstm.forward(&x, None, None)?;

    lstm.save(format!("{prefix}.model.safetensors"))?;
    let mut io = vec![("input".to_string(), x), ("output".to_string(), out.output), ("h_n".to_string(), out.h_n)];
    io.extend(out.c_n.map(|c| ("c_n".to_string(), c)));
    TensorFile::write(format!("{prefix}.io.safetensors"), &io, &HashMap::new())?;
    println!("wrote {prefix}.model.safetensors and {prefix}.io.safetensors");
    Ok(())
}
