//! Running the `recur` binary in the integration tests, and the checks they share. Each test crate uses part of it.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `recur` with `args` and waits for it.
pub fn recur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur")).args(args).output().expect("run recur")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `o`, after checking that the command succeeded (printing its output when it did not).
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(&o), stderr(&o));
    o
}

/// A failure as the CLI promises it: exit code 1 and exactly one line on standard error, containing `needle`.
pub fn fails_with(o: Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected:\n{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

/// The last line of standard output, as JSON (what `--json` prints last).
pub fn last_json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).lines().last().expect("a last line")).expect("JSON")
}
