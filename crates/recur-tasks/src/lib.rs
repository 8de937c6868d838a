//! # recur-tasks
//!
//! Built-in sequence tasks for [`recur`], generated in code from a seed (no downloads), and loaders for a user's
//! own data: what the `recur` command trains on, and what examples, tests and demos use. Not part of the core
//! library: a model never needs this crate to run.
//!
//! | task | what | reports |
//! |---|---|---|
//! | [`adding_task`] | sum of two marked values in a long sequence | MSE (baseline [`ADDING_BASELINE`] = 1/6) |
//! | [`copy_task`] | reproduce 10 symbols after a gap | cross-entropy vs [`copy_baseline`], per-symbol accuracy |
//! | [`reber_batch`] | next symbol of the embedded Reber grammar | fraction of strings all of whose predictions are legal |
//! | [`tagging_task`] | labels that depend on past and future tokens | per-step accuracy (unidirectional ceiling [`tagging_ceiling`]) |
//! | [`mackey_glass()`] | the chaotic delay series, one- or multi-step forecasts | NRMSE |
//! | [`CharCorpus`] | a character language model on any text | validation bits per character |
//! | [`load_series_csv`] | forecasting a column of a CSV file | MSE and MAE vs the naive last-value forecast |
//! | [`SequenceSet`] | classifying variable-length sequences from a CSV file | accuracy |
//!
//! Each task's module documents its layout and score; everything is re-exported at the crate root, so
//! `recur_tasks::copy_task` and `recur_tasks::copy::copy_task` are the same function. Generated batches are
//! batch-first (`b·steps + t`); [`to_time_major`] reorders them for a time-major layer. Bad data stops with
//! [`Error::Data`](recur::Error::Data), naming the file, the line and the problem.
//!
//! ```
//! use rand::SeedableRng;
//! use recur_tasks::adding_task;
//!
//! // 8 sequences of 50 steps, two features a step (value, marker), one target a sequence.
//! let batch = adding_task(8, 50, &mut rand::rngs::StdRng::seed_from_u64(0))?;
//! assert_eq!(batch.input.shape(), &[8, 50, 2]);
//! assert_eq!(batch.target.shape(), &[8, 1]);
//! # Ok::<(), recur::Error>(())
//! ```

#![warn(missing_docs)]

pub mod adding;
pub mod charlm;
pub mod classify;
pub mod copy;
pub mod forecast;
pub mod mackey_glass;
pub mod metrics;
pub mod reber;
pub mod series;
pub mod story;
mod table;
pub mod tagging;
pub mod vocab;

pub use adding::{ADDING_BASELINE, AddingBatch, adding_problem, adding_task};
pub use charlm::{BUILTIN_NAME, CharCorpus, CharStreams, CharWindow, VALID_FRACTION, load_text};
pub use classify::{ClassifyColumns, LabelledSequence, PaddedBatch, SequenceSet};
pub use copy::{
    COPY_ALPHABET, COPY_BLANK, COPY_DELIMITER, COPY_LENGTH, COPY_VOCAB, CopyBatch, copy_baseline, copy_task,
};
pub use forecast::load_series_csv;
pub use mackey_glass::{MackeyGlass, mackey_glass};
pub use metrics::{accuracy, argmax, bits_per_char, mae, mse, nrmse, predictions, to_time_major};
pub use reber::{
    REBER_SYMBOLS, REBER_VOCAB, ReberBatch, reber_accepts, reber_batch, reber_fraction_correct, reber_legal_next,
    reber_letters, reber_string,
};
pub use series::{ForecastSplit, Normalizer, SPLIT, Windows};
pub use story::{BUILTIN_CHARS, BUILTIN_SEED, story_text};
pub use tagging::{TaggingBatch, TaggingConfig, tagging_ceiling, tagging_task};
pub use vocab::Vocabulary;
