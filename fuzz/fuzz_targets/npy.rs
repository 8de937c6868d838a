//! Any bytes as an `.npy` file, read as an input array and as sequence lengths: an error or a value, never a
//! panic, and never an allocation larger than the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The reader lives in the CLI binary; it depends on nothing else of it.
#[allow(dead_code)]
#[path = "../../crates/recur-cli/src/npy.rs"]
mod npy;

fuzz_target!(|data: &[u8]| {
    let _ = npy::parse_npy(data);
    let _ = npy::parse_lengths(data);
});
