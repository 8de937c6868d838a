//! `recur forward`: run a model over an input and write `output`, `h_n` and (LSTM) `c_n`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rand::SeedableRng;
use recur::model_file::TensorFile;
use recur::{Error, LoadOptions, Nonlinearity, Recurrent, RecurrentOutput, StreamState, Tensor, Trainable};

use super::CommandResult;
use crate::npy::{read_lengths, read_npy};

/// Arguments of `recur forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Model file: safetensors with PyTorch `state_dict` names (optionally a `config` metadata entry).
    #[arg(long)]
    model: PathBuf,
    /// Input sequence, `.npy` (f32 or f64, C order): (T, B, I), (B, T, I) with --batch-first, or unbatched (T, I).
    #[arg(long)]
    input: PathBuf,
    /// Initial hidden state, `.npy`: (L·D, B, H_out), or (L·D, H_out) for unbatched input.
    #[arg(long)]
    h0: Option<PathBuf>,
    /// Initial cell state (LSTM only), `.npy`: (L·D, B, H), or (L·D, H) for unbatched input.
    #[arg(long)]
    c0: Option<PathBuf>,
    /// Sequence lengths, `.npy` (int64 or int32, one per batch element, each in 1..=T): the input is a padded
    /// batch, run as PyTorch's packed sequences (outputs past each length are zero).
    #[arg(long)]
    lengths: Option<PathBuf>,
    /// Batched input is (B, T, I), for a model file without `config` metadata.
    #[arg(long)]
    batch_first: bool,
    /// Nonlinearity of a vanilla RNN, for a model file without `config` metadata.
    #[arg(long, value_enum)]
    nonlinearity: Option<NonlinearityArg>,
    /// Where to write the results: safetensors with f32 tensors `output`, `h_n` and, for LSTM, `c_n`.
    #[arg(long)]
    output: PathBuf,
    /// Upstream gradients (safetensors: `output`, optionally `h_n` and `c_n`). Backpropagates through time, as
    /// in PyTorch's eval mode (no dropout), and also writes `grad.input`, `grad.h0`/`grad.c0` (when initial
    /// states were given) and `grad.<parameter>` for every parameter.
    #[arg(long)]
    grad_output: Option<PathBuf>,
    /// Run the model as a stream, one time step at a time with the state kept between steps, instead of over the
    /// whole sequence at once (the same results; unidirectional models only).
    #[arg(long, conflicts_with_all = ["grad_output", "lengths"])]
    stream: bool,
}

/// The `--nonlinearity` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NonlinearityArg {
    Tanh,
    Relu,
}

impl NonlinearityArg {
    /// The library's value.
    pub fn nonlinearity(self) -> Nonlinearity {
        match self {
            NonlinearityArg::Tanh => Nonlinearity::Tanh,
            NonlinearityArg::Relu => Nonlinearity::Relu,
        }
    }
}

/// Runs `recur forward`.
pub fn run(args: &ForwardArgs) -> CommandResult {
    let options = LoadOptions {
        batch_first: args.batch_first.then_some(true),
        nonlinearity: args.nonlinearity.map(NonlinearityArg::nonlinearity),
    };
    let mut model = Recurrent::load(&args.model, &options)?;
    let input = read_npy(&args.input)?;
    let h0 = args.h0.as_deref().map(read_npy).transpose()?;
    let c0 = args.c0.as_deref().map(read_npy).transpose()?;
    let lengths = args.lengths.as_deref().map(read_lengths).transpose()?;
    let mut tensors = match &args.grad_output {
        None if args.stream => outputs(forward_streamed(&model, &input, h0.as_ref(), c0.as_ref())?),
        None => outputs(match &lengths {
            None => model.forward(&input, h0.as_ref(), c0.as_ref())?,
            Some(lengths) => model.forward_with_lengths(&input, lengths, h0.as_ref(), c0.as_ref())?,
        }),
        Some(path) => {
            let upstream = read_upstream(path)?;
            model.set_dropout(0.0)?;
            // With dropout off, the training forward draws nothing from its generator.
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let (out, cache) = match &lengths {
                None => model.forward_train(&input, h0.as_ref(), c0.as_ref(), &mut rng)?,
                Some(l) => model.forward_train_with_lengths(&input, l, h0.as_ref(), c0.as_ref(), &mut rng)?,
            };
            let grad = |name: &str| upstream.tensors.get(name);
            let grads = model.backward(&cache, &upstream.tensors["output"], grad("h_n"), grad("c_n"))?;
            let mut tensors = outputs(out);
            tensors.push(("grad.input".into(), grads.input));
            if h0.is_some() || c0.is_some() {
                tensors.push(("grad.h0".into(), grads.h0));
                tensors.extend(grads.c0.map(|c| ("grad.c0".to_string(), c)));
            }
            for p in model.parameters() {
                tensors.push((format!("grad.{}", p.name), Tensor::new(p.shape, p.grad.to_vec())?));
            }
            tensors
        }
    };
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    TensorFile::write(&args.output, &tensors, &HashMap::new())?;
    Ok(())
}

/// What `forward` computes, computed through the stream API a step at a time: the input is checked and laid out
/// time-major as `forward` does it (batch-first, unbatched), each step's output is gathered, and the results are
/// shaped as `forward` shapes them.
fn forward_streamed(
    model: &Recurrent,
    input: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> Result<RecurrentOutput, Error> {
    let config = model.config();
    let (features, batch_first) = (config.input_size, config.batch_first);
    let (steps, batch, unbatched) = match *input.shape() {
        [t, f] if f == features => (t, 1, true),
        [a, b, f] if f == features && batch_first => (b, a, false),
        [a, b, f] if f == features => (a, b, false),
        _ => (0, 0, false),
    };
    if steps == 0 || batch == 0 {
        let layout = if batch_first { "[B, T, I]" } else { "[T, B, I]" };
        let expected = format!("{layout} or unbatched [T, I] with I = {features}, T ≥ 1 and B ≥ 1");
        return Err(Error::Shape { what: "input".into(), expected, found: input.shape().to_vec() });
    }
    // An unbatched input takes unbatched states, (L, H), and a batched one batched states, (L, B, H).
    let state_rank = if unbatched { 2 } else { 3 };
    for (what, state) in [("h_0", h0), ("c_0", c0)] {
        if let Some(state) = state.filter(|s| s.rank() != state_rank) {
            let expected = if unbatched { "(L, H) for unbatched input" } else { "(L, B, H)" };
            return Err(Error::Shape { what: what.into(), expected: expected.into(), found: state.shape().to_vec() });
        }
    }
    let x = if batch_first && !unbatched {
        swap_leading_axes(input.data(), batch, steps, features)
    } else {
        input.data().to_vec()
    };
    let mut state = StreamState::with_initial(model, batch, h0, c0)?;
    let width = config.output_size();
    let mut output = Vec::with_capacity(steps * batch * width);
    for x_t in x.chunks_exact(batch * features) {
        output.extend_from_slice(state.step(model, x_t)?);
    }
    let (output, shape) = match (unbatched, batch_first) {
        (true, _) => (output, vec![steps, width]),
        (false, true) => (swap_leading_axes(&output, steps, batch, width), vec![batch, steps, width]),
        (false, false) => (output, vec![steps, batch, width]),
    };
    let unbatch = |t: Tensor| match *t.shape() {
        [layers, 1, size] if unbatched => t.reshape([layers, size]),
        _ => Ok(t),
    };
    Ok(RecurrentOutput {
        output: Tensor::new(shape, output)?,
        h_n: unbatch(state.h_n())?,
        c_n: state.c_n().map(unbatch).transpose()?,
    })
}

/// Swaps the first two axes of a row-major `(a, b, c)` array: batch-first to time-major and back.
fn swap_leading_axes(data: &[f32], a: usize, b: usize, c: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len());
    for j in 0..b {
        for i in 0..a {
            out.extend_from_slice(&data[(i * b + j) * c..(i * b + j + 1) * c]);
        }
    }
    out
}

fn outputs(out: RecurrentOutput) -> Vec<(String, Tensor)> {
    let mut tensors = vec![("output".to_string(), out.output), ("h_n".to_string(), out.h_n)];
    tensors.extend(out.c_n.map(|c| ("c_n".to_string(), c)));
    tensors
}

/// Reads the upstream gradients, refusing a file without `output` or with names it does not know.
fn read_upstream(path: &Path) -> Result<TensorFile, Box<dyn std::error::Error>> {
    let file = TensorFile::read(path)?;
    if !file.tensors.contains_key("output") {
        return Err(format!("{}: no tensor `output` (the gradient of the output)", path.display()).into());
    }
    if let Some(name) = file.tensors.keys().find(|k| !["output", "h_n", "c_n"].contains(&k.as_str())) {
        return Err(format!("{}: unexpected tensor `{name}`; expected `output`, `h_n`, `c_n`", path.display()).into());
    }
    Ok(file)
}
