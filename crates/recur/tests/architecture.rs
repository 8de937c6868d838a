//! The crate's modules form the one-way stack that `ARCHITECTURE.md` draws: a module imports only modules below
//! it. Read from the sources, so that a new import that breaks the stack fails here, not in a review.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The top-level modules of `crates/recur/src`, bottom first (as in `ARCHITECTURE.md`).
const LAYERS: &[&str] = &[
    "kernels",
    "scratch",
    "error",
    "tensor",
    "params",
    "driver",
    "cells",
    "layer",
    "model_file",
    "stream",
    "nn",
    "attention",
    "loss",
    "optim",
    "model",
    "seq2seq",
    "train",
];

/// The CLI's modules, bottom first (`commands` on top, `main` above all).
const CLI_LAYERS: &[&str] = &[
    "model_kind",
    "interrupt",
    "progress",
    "metrics",
    "plot",
    "npy",
    "tasks",
    "charts",
    "gradflow",
    "options",
    "modelfile",
    "run",
    "commands",
];

/// Every `crate::name` a file's non-test code names.
fn crate_imports(source: &str) -> BTreeSet<String> {
    // Unit tests may reach anywhere in the crate; only the code itself must keep to the stack.
    let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or(source);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let preceded_by_ident =
            code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        if preceded_by_ident {
            continue; // `$crate::` or a longer name ending in `crate`
        }
        let name: String =
            code[at + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            found.insert(name);
        }
    }
    found
}

/// `(module, imported module)` for every import in the sources under `src` of a top-level module.
fn imports(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
            let module = first.trim_end_matches(".rs").to_string();
            for imported in crate_imports(&fs::read_to_string(&path).unwrap()) {
                if imported != module {
                    out.push((module.clone(), imported));
                }
            }
        }
    }
    out
}

/// Asserts that every import of a module in `layers` goes to a module below it.
fn assert_one_way(src: &Path, layers: &[&str], roots: &[&str]) {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (module, imported) in imports(src) {
        if roots.contains(&module.as_str()) {
            continue; // the crate root declares and re-exports everything
        }
        let (Some(from), Some(to)) = (rank(&module), rank(&imported)) else {
            wrong.push(format!("{module} -> {imported}: a module missing from the stack"));
            continue;
        };
        if to >= from {
            wrong.push(format!("{module} imports {imported}, which is not below it"));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports that break the one-way stack of ARCHITECTURE.md:\n{}", wrong.join("\n"));
}

#[test]
fn the_library_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_one_way(&src, LAYERS, &["lib"]);
}

#[test]
fn the_command_line_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur-cli/src");
    assert_one_way(&src, CLI_LAYERS, &["main"]);
}

#[test]
fn the_import_scan_sees_imports_and_skips_tests() {
    let source = "use crate::driver::Cell;\nfn f() { crate::kernels::gemm(); $crate::x(); }\n#[cfg(test)]\nmod tests {\n use crate::train;\n}";
    let found: Vec<String> = crate_imports(source).into_iter().collect();
    assert_eq!(found, ["driver", "kernels"]);
}
