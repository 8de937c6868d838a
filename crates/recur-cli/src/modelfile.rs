//! Model files written by the training commands: a `SequenceModel` (PyTorch names, its configuration in the
//! `model` metadata) plus what the CLI needs to use it again: the task it was trained on and, for character
//! models, the vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use recur::model_file::TensorFile;
use recur::{Module, SequenceModel};

use crate::tasks::TaskSpec;

/// Metadata key of the task (JSON of [`TaskSpec`]).
pub const TASK_KEY: &str = "recur.task";
/// Metadata key of a character model's vocabulary (its characters in id order, the library's format).
pub const VOCAB_KEY: &str = recur_tasks::Vocabulary::METADATA_KEY;
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
    let path = model_path(path);
    let file = TensorFile::read(&path).map_err(|e| e.to_string())?;
    let model = SequenceModel::from_tensor_file(&file).map_err(|e| format!("{}: {e}", path.display()))?;
    let task = match file.metadata.get(TASK_KEY) {
        Some(json) => Some(
            serde_json::from_str(json).map_err(|e| format!("{}: bad `{TASK_KEY}` metadata: {e}", path.display()))?,
        ),
        None => None,
    };
    Ok(Loaded { model, task, metadata: file.metadata })
}
