//! `recur generate`: text from a character model, streamed as it is produced by [`TextGenerator`] (the model one
//! step a character, its state carried); the vocabulary comes from the model file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_tasks::{Sampling, TextGenerator};

use super::CommandResult;
use crate::modelfile;

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
    let sampling = Sampling::new(args.temperature, args.top_k).map_err(|e| format!("--temperature, --top-k: {e}"))?;
    let loaded = modelfile::load(&args.model)?;
    let path = modelfile::model_path(&args.model);
    let mut generator =
        TextGenerator::with_metadata(loaded.model, &loaded.metadata).map_err(|e| format!("{}: {e}", path.display()))?;
    generator.start(&args.prime).map_err(|e| format!("--prime: {e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prime)?;
    for _ in 0..args.length {
        write!(out, "{}", generator.next_char(sampling, &mut rng)?)?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}
