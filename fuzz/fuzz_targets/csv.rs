//! Any bytes as the CSV files of the forecasting and classification tasks (column `value`; columns `id`,
//! `label` and features): an error naming the file and line, or data, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use recur_tasks::{ClassifyColumns, SequenceSet, load_series_csv};

fuzz_target!(|data: &[u8]| {
    // The loaders read paths: one file per fuzzing process, rewritten for every input.
    thread_local! {
        static PATH: std::path::PathBuf = std::env::temp_dir().join(format!("recur-fuzz-{}.csv", std::process::id()));
    }
    PATH.with(|path| {
        std::fs::write(path, data).expect("write the input");
        let _ = load_series_csv(path, "value");
        if let Ok(set) = SequenceSet::load_csv(path, &ClassifyColumns::default()) {
            let all: Vec<usize> = (0..set.sequences.len()).collect();
            let _ = set.batch(&all);
        }
    });
});
