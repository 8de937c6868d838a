//! # recur-web
//!
//! recur in a web page: a character model (`recur train --task charlm`, usually `recur quantize`d to int8)
//! generating text in WebAssembly, one character at a time, with what `recur generate` prints natively for the
//! same model, prompt, seed and sampling. The page is `web/` at the repository's root; `web/build.sh` builds this
//! crate for `wasm32-unknown-unknown` and `docs/web.md` says how to serve and test it.
//!
//! The interface is a handful of exported functions over plain numbers, so that the page needs no generated glue
//! (no wasm-bindgen): bytes go in through a buffer the page writes ([`recur_input`]), text comes out through
//! another it reads ([`recur_output`], [`recur_output_len`]), and every call that can fail returns whether it
//! succeeded, leaving the error's message as the output. The state behind them is a [`Page`], which native code
//! (and the tests) use directly.
//!
//! ```text
//! recur_input(n) → pointer     the page writes n bytes there (a model file, or a prompt in UTF-8)
//! recur_load() → ok            reads the model file from the input; output: its description as JSON
//! recur_start(seed, temperature, top_k) → ok
//!                              starts a text from the prompt in the input (top_k 0: all characters)
//! recur_next(n) → ok           generates n characters; output: them
//! ```

use std::cell::RefCell;
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur::model_file::TensorFile;
use recur::{Result, SequenceModel};
use recur_tasks::{Sampling, TextGenerator};

/// What the page has loaded and where its text stands.
pub struct Page {
    generator: Option<TextGenerator>,
    sampling: Sampling,
    rng: ChaCha8Rng,
    input: Vec<u8>,
    output: String,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            generator: None,
            sampling: Sampling::GREEDY,
            rng: ChaCha8Rng::seed_from_u64(0),
            input: Vec::new(),
            output: String::new(),
        }
    }
}

impl Page {
    /// Reads a model file (the bytes of a `.safetensors` file with its vocabulary in the metadata) and returns
    /// its description ([`describe`]).
    pub fn load(&mut self, bytes: &[u8]) -> Result<String> {
        let file = TensorFile::from_bytes(bytes, Path::new("model.safetensors"))?;
        let generator = TextGenerator::from_tensor_file(&file)?;
        let description = describe(generator.model(), bytes.len());
        self.generator = Some(generator);
        Ok(description)
    }

    /// Starts a new text from `prompt` (state reset, prompt read), drawing the characters that follow with
    /// `sampling` from a generator seeded with `seed`, as `recur generate --seed` does.
    pub fn start(&mut self, prompt: &str, seed: u64, sampling: Sampling) -> Result<()> {
        self.generator_mut()?.start(prompt)?;
        self.sampling = sampling;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(())
    }

    /// The next `n` characters of the text.
    pub fn next(&mut self, n: usize) -> Result<String> {
        let (sampling, rng) = (self.sampling, &mut self.rng);
        let generator = self.generator.as_mut().ok_or_else(not_loaded)?;
        (0..n).map(|_| generator.next_char(sampling, rng)).collect()
    }

    fn generator_mut(&mut self) -> Result<&mut TextGenerator> {
        self.generator.as_mut().ok_or_else(not_loaded)
    }

    /// Keeps `result`'s text, or its error's message, as the output, and says which it was.
    fn answer(&mut self, result: Result<String>) -> bool {
        let ok = result.is_ok();
        self.output = result.unwrap_or_else(|e| e.to_string());
        ok
    }
}

fn not_loaded() -> recur::Error {
    recur::Error::Config("no model loaded".into())
}

/// A model's description as JSON, for the page to show: its kind, sizes, storage scheme, and the bytes of its
/// file.
pub fn describe(model: &SequenceModel, file_bytes: usize) -> String {
    let config = model.config();
    let recurrent = &config.recurrent;
    serde_json::json!({
        "mode": recurrent.mode,
        "layers": recurrent.num_layers,
        "hidden": recurrent.hidden_size,
        "embedding": recurrent.input_size,
        "vocabulary": config.vocab,
        "scheme": model.scheme().map_or("f32", |s| s.name()),
        "file_bytes": file_bytes,
    })
    .to_string()
}

thread_local! {
    /// The page's one model and text: WebAssembly here runs on one thread, and the exports take no handle.
    static PAGE: RefCell<Page> = RefCell::new(Page::default());
}

/// Makes the input buffer `len` bytes long and returns where it starts, for the page to write a model file or a
/// prompt there before the call that reads it. The pointer is good until the next call of this function.
// SAFETY (of the attribute): `no_mangle` exports the function under its own name; the `recur_` prefix keeps it
// from meeting any other symbol of the module.
#[unsafe(no_mangle)]
pub extern "C" fn recur_input(len: usize) -> *mut u8 {
    PAGE.with_borrow_mut(|page| {
        page.input.clear();
        page.input.resize(len, 0);
        page.input.as_mut_ptr()
    })
}

/// Where the output (the last call's text, or its error's message, in UTF-8) starts.
// SAFETY (of the attribute): as for `recur_input`.
#[unsafe(no_mangle)]
pub extern "C" fn recur_output() -> *const u8 {
    PAGE.with_borrow(|page| page.output.as_ptr())
}

/// The output's length in bytes.
// SAFETY (of the attribute): as for `recur_input`.
#[unsafe(no_mangle)]
pub extern "C" fn recur_output_len() -> usize {
    PAGE.with_borrow(|page| page.output.len())
}

/// Loads the model file in the input ([`Page::load`]); the output is its description or the error.
// SAFETY (of the attribute): as for `recur_input`.
#[unsafe(no_mangle)]
pub extern "C" fn recur_load() -> bool {
    PAGE.with_borrow_mut(|page| {
        let bytes = std::mem::take(&mut page.input);
        let result = page.load(&bytes);
        page.answer(result)
    })
}

/// Starts a text from the prompt in the input ([`Page::start`]), sampling at `temperature` among the `top_k`
/// likeliest characters (all of them when 0); the output is empty, or the error.
// SAFETY (of the attribute): as for `recur_input`.
#[unsafe(no_mangle)]
pub extern "C" fn recur_start(seed: u64, temperature: f32, top_k: u32) -> bool {
    PAGE.with_borrow_mut(|page| {
        let prompt = std::mem::take(&mut page.input);
        let result = std::str::from_utf8(&prompt)
            .map_err(|e| recur::Error::Config(format!("the prompt is not UTF-8: {e}")))
            .and_then(|prompt| {
                let top_k = (top_k > 0).then_some(top_k as usize);
                page.start(prompt, seed, Sampling::new(temperature, top_k)?)
            })
            .map(|()| String::new());
        page.answer(result)
    })
}

/// Generates the next `n` characters ([`Page::next`]); the output is them, or the error.
// SAFETY (of the attribute): as for `recur_input`.
#[unsafe(no_mangle)]
pub extern "C" fn recur_next(n: usize) -> bool {
    PAGE.with_borrow_mut(|page| {
        let result = page.next(n);
        page.answer(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur::{Mode, Module, ReadoutName, RecurrentConfig, Scheme, SequenceModelConfig};
    use recur_tasks::Vocabulary;
    use std::collections::HashMap;

    /// A small int8 character model's file, as `recur quantize` writes it.
    fn model_file() -> Vec<u8> {
        let vocab = Vocabulary::from_text("the quick brown fox\n");
        let recurrent = RecurrentConfig::new(Mode::Lstm, 8, 16).num_layers(2);
        let config = SequenceModelConfig {
            vocab: Some(vocab.len()),
            recurrent,
            readout: ReadoutName::EveryStep,
            outputs: vocab.len(),
        };
        let model = SequenceModel::new(config.clone(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let model = model.quantize(Scheme::Int8(recur::Int8Scale::Row)).unwrap();
        let metadata = HashMap::from([
            ("model".to_string(), serde_json::to_string(&config).unwrap()),
            (Vocabulary::METADATA_KEY.to_string(), vocab.to_metadata()),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        TensorFile::write_with_stored(&path, &model.state_dict(), &model.stored_weights(), &metadata).unwrap();
        std::fs::read(path).unwrap()
    }

    fn text(bytes: &[u8], prompt: &str, seed: u64, sampling: Sampling) -> String {
        let mut page = Page::default();
        page.load(bytes).unwrap();
        page.start(prompt, seed, sampling).unwrap();
        (0..4).map(|_| page.next(10).unwrap()).collect()
    }

    #[test]
    fn the_page_generates_what_the_generator_does() {
        let bytes = model_file();
        let mut page = Page::default();
        let description = page.load(&bytes).unwrap();
        assert!(description.contains("\"scheme\":\"int8\"") && description.contains("\"layers\":2"), "{description}");
        let file = TensorFile::from_bytes(&bytes, Path::new("m")).unwrap();
        let mut generator = TextGenerator::from_tensor_file(&file).unwrap();
        for (seed, sampling) in [(0, Sampling::GREEDY), (5, Sampling::new(0.9, Some(4)).unwrap())] {
            generator.start("the").unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let expected: String = (0..40).map(|_| generator.next_char(sampling, &mut rng).unwrap()).collect();
            assert_eq!(text(&bytes, "the", seed, sampling), expected);
        }
    }

    #[test]
    fn the_exports_answer_errors_as_text() {
        let read = || PAGE.with_borrow(|page| page.output.clone());
        assert!(!recur_next(3));
        assert!(read().contains("no model loaded"), "{}", read());
        recur_input(10);
        assert!(!recur_load());
        assert!(!read().is_empty());
        let bytes = model_file();
        PAGE.with_borrow_mut(|page| page.input = bytes);
        assert!(recur_load(), "{}", read());
        PAGE.with_borrow_mut(|page| page.input = "thé".into());
        assert!(!recur_start(1, 0.0, 0));
        assert!(read().contains("'é'"), "{}", read());
        PAGE.with_borrow_mut(|page| page.input = vec![0xff]);
        assert!(!recur_start(1, 0.0, 0) && read().contains("UTF-8"));
        PAGE.with_borrow_mut(|page| page.input = "the".into());
        assert!(!recur_start(1, -1.0, 0) && read().contains("temperature"));
        assert!(recur_start(1, 0.0, 0) && recur_next(7), "{}", read());
        assert_eq!(read().chars().count(), 7);
        assert_eq!(recur_output_len(), read().len());
    }
}
