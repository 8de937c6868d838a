//! `recur generate`: text from a character model, streamed as it is produced. The model runs one step at a time
//! (`StreamState`), its state carried from character to character; the vocabulary comes from the model file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, StreamState};
use recur_tasks::Vocabulary;

use super::CommandResult;
use crate::modelfile::{self, VOCAB_KEY};

/// Arguments of `recur generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A character model (`recur train --task charlm`), or its run directory.
    #[arg(long)]
    model: PathBuf,
    /// Text to start from (its characters must be in the model's vocabulary).
    #[arg(long, default_value = "")]
    prime: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    length: usize,
    /// Sampling temperature: lower is more conservative, 0 always takes the likeliest character.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample among the K likeliest characters only.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `recur generate`.
pub fn run(args: &GenerateArgs) -> CommandResult {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        return Err(format!("--temperature must be 0 or positive, found {}", args.temperature).into());
    }
    if args.top_k == Some(0) {
        return Err("--top-k must be at least 1, found 0".into());
    }
    let loaded = modelfile::load(&args.model)?;
    let path = modelfile::model_path(&args.model);
    let vocab_text = loaded
        .metadata
        .get(VOCAB_KEY)
        .ok_or_else(|| format!("{}: no vocabulary in the file: not a character model", path.display()))?;
    let vocab = Vocabulary::from_metadata(vocab_text).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = &loaded.model;
    let config = model.config();
    if config.vocab != Some(vocab.len()) || config.outputs != vocab.len() || config.readout != ReadoutName::EveryStep {
        return Err(
            format!("{}: not a character model of its {}-character vocabulary", path.display(), vocab.len()).into()
        );
    }
    let prime = vocab.encode(&args.prime).map_err(|e| format!("--prime: {e}"))?;
    let embedding = model.embedding().expect("a model with a vocabulary has an embedding");
    let head = model.head().linear();
    let mut x = vec![0.0f32; config.recurrent.input_size];
    let rnn = model.recurrent();
    let mut stream = StreamState::new(rnn, 1)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    // Without a prime the model starts from a newline when it knows one, else from its first character.
    let start = if prime.is_empty() { vec![vocab.id('\n').unwrap_or(0)] } else { prime };
    write!(out, "{}", args.prime)?;
    let mut logits = vec![0.0f32; vocab.len()];
    // The embedding and head read their weights as the file stores them (f32, or quantized by `recur quantize`).
    let mut feed = |id: usize, stream: &mut StreamState, logits: &mut [f32]| -> recur::Result<()> {
        embedding.forward_into(&[id], &mut x)?;
        head.forward_into(stream.step(rnn, &x)?, 1, logits)
    };
    for &id in &start {
        feed(id, &mut stream, &mut logits)?;
    }
    for _ in 0..args.length {
        let id = sample(&logits, args.temperature, args.top_k, &mut rng);
        write!(out, "{}", vocab.chars()[id])?;
        out.flush()?;
        feed(id, &mut stream, &mut logits)?;
    }
    writeln!(out)?;
    Ok(())
}

/// Draws an index from `softmax(logits / temperature)` restricted to the `top_k` largest (the argmax at
/// temperature 0).
fn sample(logits: &[f32], temperature: f32, top_k: Option<usize>, rng: &mut impl Rng) -> usize {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if temperature == 0.0 {
        return order[0];
    }
    order.truncate(top_k.unwrap_or(order.len()).max(1));
    let top = logits[order[0]];
    let weights: Vec<f64> = order.iter().map(|&i| (((logits[i] - top) / temperature) as f64).exp()).collect();
    let mut r = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        if r < *w {
            return i;
        }
        r -= w;
    }
    order[order.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_respects_temperature_zero_and_top_k() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let logits = [0.0, 3.0, 1.0, 2.9];
        assert_eq!(sample(&logits, 0.0, None, &mut rng), 1);
        for _ in 0..200 {
            assert!([1, 3].contains(&sample(&logits, 5.0, Some(2), &mut rng)));
        }
        let counts = (0..2000).fold([0; 4], |mut c, _| {
            c[sample(&logits, 1.0, None, &mut rng)] += 1;
            c
        });
        assert!(counts[1] > counts[2] && counts[2] > counts[0] && counts[0] > 0, "{counts:?}");
    }
}
