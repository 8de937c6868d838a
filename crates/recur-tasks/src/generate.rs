//! Text from a character model, one character at a time: the model runs one step a character
//! ([`StreamState`]), its state carried from character to character, and each next character is drawn from the
//! model's output. What `recur generate` prints and what recur's web page streams, so that the two agree to the
//! character for the same model, prompt, seed and sampling.
//!
//! ```
//! use rand::SeedableRng;
//! use recur::{Mode, ReadoutName, RecurrentConfig, SequenceModel, SequenceModelConfig};
//! use recur_tasks::{Sampling, TextGenerator, Vocabulary};
//!
//! let vocab = Vocabulary::from_text("hello world\n");
//! let config = SequenceModelConfig {
//!     vocab: Some(vocab.len()),
//!     recurrent: RecurrentConfig::new(Mode::Lstm, 8, 16),
//!     readout: ReadoutName::EveryStep,
//!     outputs: vocab.len(),
//! };
//! let model = SequenceModel::new(config, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
//! let mut generator = TextGenerator::new(model, vocab)?;
//! generator.start("hello")?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let text: String = (0..20).map(|_| generator.next_char(Sampling::GREEDY, &mut rng)).collect::<Result<_, _>>()?;
//! assert_eq!(text.chars().count(), 20);
//! # Ok::<(), recur::Error>(())
//! ```

use std::collections::HashMap;

use rand::Rng;
use recur::model_file::TensorFile;
use recur::{Error, ReadoutName, Result, SequenceModel, StreamState};

use crate::Vocabulary;

/// How the next character is drawn from the model's logits `z`: from `softmax(z / temperature)` restricted to the
/// `top_k` likeliest characters, or the likeliest one when the temperature is 0 (greedy, the same on every
/// machine).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    temperature: f32,
    top_k: Option<usize>,
}

impl Sampling {
    /// Always the likeliest character.
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_k: None };

    /// Sampling at `temperature` (0 or more, finite) among the `top_k` likeliest characters (at least 1), or
    /// among all of them; anything else is an [`Error::Config`].
    pub fn new(temperature: f32, top_k: Option<usize>) -> Result<Self> {
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(Error::Config(format!("temperature must be 0 or positive, found {temperature}")));
        }
        if top_k == Some(0) {
            return Err(Error::Config("top-k must be at least 1, found 0".into()));
        }
        Ok(Sampling { temperature, top_k })
    }

    /// Draws an index of `logits` (the argmax at temperature 0; the first of equal maxima).
    pub fn draw(&self, logits: &[f32], rng: &mut impl Rng) -> usize {
        if self.temperature == 0.0 {
            return (0..logits.len())
                .fold(0, |best, i| if logits[i].total_cmp(&logits[best]).is_gt() { i } else { best });
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(self.top_k.unwrap_or(order.len()).max(1));
        let top = logits[order[0]];
        let weights: Vec<f64> = order.iter().map(|&i| (((logits[i] - top) / self.temperature) as f64).exp()).collect();
        let mut r = rng.random::<f64>() * weights.iter().sum::<f64>();
        for (&i, w) in order.iter().zip(&weights) {
            if r < *w {
                return i;
            }
            r -= w;
        }
        order[order.len() - 1]
    }
}

/// A character model (embedding, recurrent layers, a head over its vocabulary at every step) with its vocabulary
/// and the state of one stream of text.
pub struct TextGenerator {
    model: SequenceModel,
    vocab: Vocabulary,
    stream: StreamState,
    input: Vec<f32>,
    logits: Vec<f32>,
}

impl TextGenerator {
    /// A generator over `model`, which must be a character model of `vocab`: an embedding of `vocab.len()` rows
    /// and an output of `vocab.len()` logits at every step, else an [`Error::Config`] says what differs.
    pub fn new(model: SequenceModel, vocab: Vocabulary) -> Result<Self> {
        let config = model.config();
        if config.vocab != Some(vocab.len())
            || config.outputs != vocab.len()
            || config.readout != ReadoutName::EveryStep
        {
            return Err(Error::Config(format!(
                "not a character model of its {}-character vocabulary: expected an embedding of {0} rows and {0} \
                 outputs at every step, found an embedding of {:?} rows and {} outputs ({:?} readout)",
                vocab.len(),
                config.vocab,
                config.outputs,
                config.readout
            )));
        }
        let stream = StreamState::new(model.recurrent(), 1)?;
        let input = vec![0.0; config.recurrent.input_size];
        let logits = vec![0.0; vocab.len()];
        Ok(TextGenerator { model, vocab, stream, input, logits })
    }

    /// The generator of a model file written by `recur train --task charlm` (or quantized from one): the model,
    /// and the vocabulary under [`Vocabulary::METADATA_KEY`] in its metadata.
    pub fn from_tensor_file(file: &TensorFile) -> Result<Self> {
        TextGenerator::with_metadata(SequenceModel::from_tensor_file(file)?, &file.metadata)
    }

    /// A generator over `model` with the vocabulary its file's `metadata` stores under
    /// [`Vocabulary::METADATA_KEY`]; without one, an [`Error::Config`] says the file is not a character model.
    pub fn with_metadata(model: SequenceModel, metadata: &HashMap<String, String>) -> Result<Self> {
        let vocab = metadata.get(Vocabulary::METADATA_KEY).ok_or_else(|| {
            Error::Config(format!("no `{}` metadata: not a character model", Vocabulary::METADATA_KEY))
        })?;
        TextGenerator::new(model, Vocabulary::from_metadata(vocab)?)
    }

    /// The model.
    pub fn model(&self) -> &SequenceModel {
        &self.model
    }

    /// The vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// Starts a new text from `prompt`: the state is reset and the prompt's characters are read. An empty prompt
    /// starts from a newline when the vocabulary has one, else from its first character. A character outside the
    /// vocabulary is an [`Error::Index`] naming it, and leaves the generator as it was.
    pub fn start(&mut self, prompt: &str) -> Result<()> {
        let ids = self.vocab.encode(prompt)?;
        let ids = if ids.is_empty() { vec![self.vocab.id('\n').unwrap_or(0)] } else { ids };
        self.stream.reset();
        for id in ids {
            self.read(id)?;
        }
        Ok(())
    }

    /// Draws the next character from the model's output and reads it, so that the one after follows from it.
    pub fn next_char(&mut self, sampling: Sampling, rng: &mut impl Rng) -> Result<char> {
        let id = sampling.draw(&self.logits, rng);
        self.read(id)?;
        Ok(self.vocab.chars()[id])
    }

    /// One step of the model on character `id`, its logits kept for the next draw. The embedding and head read
    /// their weights as the file stores them (f32, or quantized by `recur quantize`).
    fn read(&mut self, id: usize) -> Result<()> {
        let embedding =
            self.model.embedding().ok_or_else(|| Error::Config("a character model has an embedding".into()))?;
        embedding.forward_into(&[id], &mut self.input)?;
        let rnn = self.model.recurrent();
        let output = self.stream.step(rnn, &self.input)?;
        self.model.head().linear().forward_into(output, 1, &mut self.logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use recur::{Mode, RecurrentConfig, SequenceModelConfig};

    fn model(vocab: usize, readout: ReadoutName, outputs: usize) -> SequenceModel {
        let recurrent = RecurrentConfig::new(Mode::Gru, 6, 12);
        let config = SequenceModelConfig { vocab: Some(vocab), recurrent, readout, outputs };
        SequenceModel::new(config, &mut ChaCha8Rng::seed_from_u64(3)).unwrap()
    }

    fn generator(text: &str) -> TextGenerator {
        let vocab = Vocabulary::from_text(text);
        TextGenerator::new(model(vocab.len(), ReadoutName::EveryStep, vocab.len()), vocab).unwrap()
    }

    #[test]
    fn sampling_respects_temperature_zero_and_top_k() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let logits = [0.0, 3.0, 1.0, 2.9];
        assert_eq!(Sampling::GREEDY.draw(&logits, &mut rng), 1);
        assert_eq!(Sampling::GREEDY.draw(&[1.0, 4.0, 4.0, -1.0], &mut rng), 1, "the first of equal maxima");
        let top2 = Sampling::new(5.0, Some(2)).unwrap();
        for _ in 0..200 {
            assert!([1, 3].contains(&top2.draw(&logits, &mut rng)));
        }
        let all = Sampling::new(1.0, None).unwrap();
        let counts = (0..2000).fold([0; 4], |mut c, _| {
            c[all.draw(&logits, &mut rng)] += 1;
            c
        });
        assert!(counts[1] > counts[2] && counts[2] > counts[0] && counts[0] > 0, "{counts:?}");
        assert!(Sampling::new(-1.0, None).is_err() && Sampling::new(f32::NAN, None).is_err());
        assert!(Sampling::new(1.0, Some(0)).is_err());
    }

    #[test]
    fn starting_again_gives_the_same_text() {
        let mut g = generator("abc de\n");
        let run = |g: &mut TextGenerator, prompt: &str, seed: u64| -> String {
            g.start(prompt).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..30).map(|_| g.next_char(Sampling::new(1.0, None).unwrap(), &mut rng).unwrap()).collect()
        };
        let first = run(&mut g, "ab", 5);
        assert_eq!(run(&mut g, "ab", 5), first);
        assert_ne!(run(&mut g, "ab", 6), first);
    }

    #[test]
    fn characters_outside_the_vocabulary_and_other_models_are_errors() {
        let mut g = generator("abc");
        let err = g.start("abz").unwrap_err().to_string();
        assert!(err.contains("'z'"), "{err}");
        let err = TextGenerator::new(model(3, ReadoutName::Last, 2), Vocabulary::from_text("abc")).err().unwrap();
        let err = err.to_string();
        assert!(err.contains("3-character vocabulary") && err.contains("2 outputs"), "{err}");
    }
}
