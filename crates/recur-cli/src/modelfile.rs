//! Model files written by the training commands: a `SequenceModel` (PyTorch names, its configuration in the
//! `model` metadata) plus what the CLI needs to use it again: the task it was trained on and, for character
//! models, the vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use recur::model_file::TensorFile;
use recur::seq2seq::Seq2Seq;
use recur::{Module, SequenceModel};
use recur_tasks::TokenVocab;

use crate::tasks::TaskSpec;

/// Metadata key of the task (JSON of [`TaskSpec`]).
pub const TASK_KEY: &str = "recur.task";
/// A run directory's model file.
pub const MODEL_FILE: &str = "model.safetensors";

/// A loaded model and what the CLI stored beside it.
pub struct Loaded {
    /// The model.
    pub model: SequenceModel,
    /// The task it was trained on, when the file says.
    pub task: Option<TaskSpec>,
    /// All metadata (configuration, vocabulary, …).
    pub metadata: HashMap<String, String>,
}

/// `path` itself, or `path/model.safetensors` when it is a directory (a run's output).
pub fn model_path(path: &Path) -> PathBuf {
    if path.is_dir() { path.join(MODEL_FILE) } else { path.to_path_buf() }
}

/// Writes `model` with its task and `extra` metadata, atomically.
pub fn save(path: &Path, model: &SequenceModel, task: &TaskSpec, extra: &[(&str, String)]) -> recur::Result<()> {
    let mut metadata = HashMap::new();
    metadata.insert("model".to_string(), serde_json::to_string(model.config()).expect("configs serialise"));
    metadata.insert(TASK_KEY.to_string(), serde_json::to_string(task).expect("task specs serialise"));
    for (k, v) in extra {
        metadata.insert(k.to_string(), v.clone());
    }
    TensorFile::write(path, &model.state_dict(), &metadata)
}

/// Reads a model file (or a run directory's).
pub fn load(path: &Path) -> Result<Loaded, String> {
    match load_any(path)? {
        Any::Sequence(loaded) => Ok(*loaded),
        Any::Seq2Seq(_) => Err(format!(
            "{} holds a sequence-to-sequence model: use it with `recur translate` or `recur eval`",
            model_path(path).display()
        )),
    }
}

/// A loaded encoder-decoder and the vocabularies and task stored beside it.
pub struct LoadedSeq2Seq {
    /// The model.
    pub model: Seq2Seq,
    /// The task it was trained on.
    pub task: TaskSpec,
    /// The source side's vocabulary.
    pub source: TokenVocab,
    /// The target side's vocabulary.
    pub target: TokenVocab,
}

/// Either kind of model file the training commands write.
pub enum Any {
    /// A sequence model.
    Sequence(Box<Loaded>),
    /// An encoder-decoder.
    Seq2Seq(Box<LoadedSeq2Seq>),
}

/// Writes an encoder-decoder with its task and both vocabularies, atomically.
pub fn save_seq2seq(
    path: &Path,
    model: &Seq2Seq,
    task: &TaskSpec,
    source: &TokenVocab,
    target: &TokenVocab,
) -> recur::Result<()> {
    let mut metadata = HashMap::new();
    metadata.insert(TASK_KEY.to_string(), serde_json::to_string(task).expect("task specs serialise"));
    metadata.insert(TokenVocab::SOURCE_METADATA_KEY.to_string(), source.to_metadata());
    metadata.insert(TokenVocab::TARGET_METADATA_KEY.to_string(), target.to_metadata());
    model.save_with_metadata(path, metadata)
}

/// Reads a model file (or a run directory's) of either kind: an encoder-decoder is recognised by its vocabularies.
pub fn load_any(path: &Path) -> Result<Any, String> {
    let path = model_path(path);
    let file = TensorFile::read(&path).map_err(|e| e.to_string())?;
    if let Some(source) = file.metadata.get(TokenVocab::SOURCE_METADATA_KEY) {
        let bad = |key: &str, e: &dyn std::fmt::Display| format!("{}: bad `{key}` metadata: {e}", path.display());
        let target = file
            .metadata
            .get(TokenVocab::TARGET_METADATA_KEY)
            .ok_or_else(|| format!("{}: no `{}` metadata", path.display(), TokenVocab::TARGET_METADATA_KEY))?;
        let json =
            file.metadata.get(TASK_KEY).ok_or_else(|| format!("{}: no `{TASK_KEY}` metadata", path.display()))?;
        let loaded = LoadedSeq2Seq {
            model: Seq2Seq::from_tensor_file(&file).map_err(|e| format!("{}: {e}", path.display()))?,
            task: serde_json::from_str(json).map_err(|e| bad(TASK_KEY, &e))?,
            source: TokenVocab::from_metadata(source).map_err(|e| bad(TokenVocab::SOURCE_METADATA_KEY, &e))?,
            target: TokenVocab::from_metadata(target).map_err(|e| bad(TokenVocab::TARGET_METADATA_KEY, &e))?,
        };
        let config = loaded.model.config();
        if config.source_vocab != loaded.source.len() || config.target_vocab != loaded.target.len() {
            return Err(format!(
                "{}: the stored vocabularies ({} and {} tokens) do not match the model's ({} and {})",
                path.display(),
                loaded.source.len(),
                loaded.target.len(),
                config.source_vocab,
                config.target_vocab
            ));
        }
        return Ok(Any::Seq2Seq(Box::new(loaded)));
    }
    let model = SequenceModel::from_tensor_file(&file).map_err(|e| format!("{}: {e}", path.display()))?;
    let task = match file.metadata.get(TASK_KEY) {
        Some(json) => Some(
            serde_json::from_str(json).map_err(|e| format!("{}: bad `{TASK_KEY}` metadata: {e}", path.display()))?,
        ),
        None => None,
    };
    Ok(Any::Sequence(Box::new(Loaded { model, task, metadata: file.metadata })))
}
