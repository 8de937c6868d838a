//! `recur info`: what a model (or checkpoint) file holds: its configuration, its tensors with shapes and sizes.

use std::path::PathBuf;

use clap::Args;
use recur::model_file::TensorFile;

use super::CommandResult;
use crate::modelfile;

/// Arguments of `recur info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A safetensors file (a model, a layer saved from PyTorch, a checkpoint), or a run directory.
    file: PathBuf,
}

/// Runs `recur info`.
pub fn run(args: &InfoArgs) -> CommandResult {
    let path = modelfile::model_path(&args.file);
    let file = TensorFile::read(&path)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("{} ({})", path.display(), size(bytes));
    let mut keys: Vec<&String> = file.metadata.keys().collect();
    keys.sort();
    for key in keys {
        let value = &file.metadata[key];
        // Configurations are JSON: shown pretty, one field a line.
        match serde_json::from_str::<serde_json::Value>(value) {
            Ok(json @ serde_json::Value::Object(_)) => {
                println!("{key}:");
                for line in serde_json::to_string_pretty(&json).expect("JSON serialises").lines() {
                    println!("  {line}");
                }
            }
            _ if value.len() > 200 => {
                println!("{key}: {}… ({} characters)", &value[..value.floor_char_boundary(200)], value.len())
            }
            _ => println!("{key}: {value}"),
        }
    }
    let mut names: Vec<&String> = file.tensors.keys().chain(file.stored.keys()).collect();
    names.sort();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let (mut values, mut held) = (0usize, 0usize);
    println!("tensors:");
    for name in names {
        let (shape, len, format, bytes) = match (file.tensors.get(name), file.stored.get(name)) {
            (Some(t), _) => (t.shape().to_vec(), t.len(), "f32".to_string(), 4 * t.len()),
            (None, Some(m)) => (vec![m.rows(), m.cols()], m.rows() * m.cols(), m.scheme().to_string(), m.bytes()),
            (None, None) => unreachable!("listed from the two maps"),
        };
        values += len;
        held += bytes;
        println!("  {name:<width$}  {:<16} {:>10}  {format}", format!("{shape:?}"), len);
    }
    if file.stored.is_empty() {
        println!("{values} values ({} as f32)", size(4 * values as u64));
    } else {
        let f32_size = size(4 * values as u64);
        println!("{values} values ({} as stored, with their scales; {f32_size} as f32)", size(held as u64));
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 << 20), "3.0 MiB");
    }
}
