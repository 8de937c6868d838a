//! Regenerates the Rust types of `crates/recur-onnx/src/proto/onnx.rs` from the committed `onnx.proto`.
//!
//! protox parses the `.proto` file in Rust, so no `protoc` binary is needed; prost-build turns the parsed
//! descriptors into prost message types. The output is formatted with the repository's rustfmt settings so that
//! `cargo fmt --all -- --check` passes on it. Run from anywhere: `cargo run --manifest-path
//! tools/onnx-proto-gen/Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match generate() {
        Ok(out) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("onnx-proto-gen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn generate() -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .map_err(|e| format!("finding the repository root: {e}"))?;
    let crate_dir = repo.join("crates/recur-onnx");
    let proto_dir = crate_dir.join("proto");
    let out_dir = crate_dir.join("src/proto");

    let descriptors = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir]).map_err(|e| e.to_string())?;
    prost_build::Config::new()
        .out_dir(&out_dir)
        .compile_fds(descriptors)
        .map_err(|e| format!("generating Rust from onnx.proto: {e}"))?;

    // prost-build names its output after the proto package (`onnx`), so this is the file it just wrote.
    let out = out_dir.join("onnx.rs");
    let status = Command::new("rustfmt")
        .arg("--edition=2024")
        .arg("--config-path")
        .arg(repo.join("rustfmt.toml"))
        .arg(&out)
        .status()
        .map_err(|e| format!("running rustfmt: {e}"))?;
    if !status.success() {
        return Err(format!("rustfmt failed on {}", out.display()));
    }
    Ok(out)
}
