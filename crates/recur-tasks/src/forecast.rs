//! A user's series for forecasting: one numeric column of a CSV file, in row order.
//!
//! Split it with [`ForecastSplit`](super::ForecastSplit) (chronological 80/10/10, normalised by the training
//! part), train on `train`, and report [`mse`](super::mse) and [`mae`](super::mae) on `test` next to those of
//! [`Windows::naive_forecast`](super::Windows::naive_forecast), the last value repeated, which a useful model
//! beats. Denormalise predictions with the split's [`Normalizer`](super::Normalizer) to report in the column's
//! units.

use std::path::Path;

use super::table::Table;
use recur::Result;

/// The values of column `column` of a CSV file with a header row, one per data row, in file order.
///
/// A missing file is an [`Error::Io`](recur::Error::Io); an empty or non-UTF-8 file, a missing column, a row of
/// the wrong width, or a cell that is not a finite number (empty cells included) is an
/// [`Error::Data`](recur::Error::Data) naming the file and the line.
pub fn load_series_csv(path: impl AsRef<Path>, column: &str) -> Result<Vec<f32>> {
    let table = Table::read(path.as_ref())?;
    let col = table.column(column)?;
    table.rows.iter().map(|row| table.number(row, col)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ForecastSplit, mae, mse};
    use recur::Error;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_good_file_gives_its_column_and_a_naive_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("date,load,temp\n");
        for t in 0..50 {
            csv.push_str(&format!("2024-01-{t},{},{}\n", (t as f32 * 0.5).sin() * 10.0 + 100.0, t));
        }
        let path = write(&dir, "load.csv", csv.as_bytes());
        let temps = load_series_csv(&path, "temp").unwrap();
        assert_eq!(temps, (0..50).map(|t| t as f32).collect::<Vec<_>>());
        let load = load_series_csv(&path, "load").unwrap();
        assert!((load[1] - 104.794_26).abs() < 1e-3);
        let split = ForecastSplit::new(&load, 8, 2, &path).unwrap();
        let naive = split.test.naive_forecast();
        assert_eq!(naive.len(), split.test.targets.len());
        assert!(mse(&naive, &split.test.targets).unwrap() > 0.0);
        assert!(mae(&naive, &split.test.targets).unwrap() > 0.0);
    }

    #[test]
    fn bad_files_name_the_file_line_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        // (file, contents, column, line, problem)
        type Case<'a> = (&'a str, &'a [u8], &'a str, Option<usize>, &'a str);
        let cases: [Case; 5] = [
            ("empty.csv", b"", "x", None, "the file is empty"),
            ("nocol.csv", b"a,b\n1,2\n", "x", Some(1), "no column `x`; the header has `a`, `b`"),
            ("text.csv", b"x\n1\n2\nabc\n", "x", Some(4), "column `x`: expected a finite number, found `abc`"),
            ("blank.csv", b"x,y\n1,2\n,3\n", "x", Some(3), "expected a finite number, found an empty cell"),
            ("bytes.csv", b"x\n1\n\xff\n", "x", Some(3), "not UTF-8 text: invalid byte 0xff at byte offset 4"),
        ];
        for (name, contents, column, line, problem) in cases {
            let path = write(&dir, name, contents);
            let err = load_series_csv(&path, column).unwrap_err();
            match &err {
                Error::Data { file, line: l, problem: p } => {
                    assert_eq!(file, &path, "{name}");
                    assert_eq!(*l, line, "{name}: {err}");
                    assert!(p.contains(problem), "{name}: {p}");
                }
                other => panic!("{name}: expected Error::Data, found {other:?}"),
            }
            assert!(err.to_string().contains(name), "{err}");
        }
        // Too short for the window: the split says so, naming the file.
        let path = write(&dir, "short.csv", b"x\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
        let series = load_series_csv(&path, "x").unwrap();
        let err = ForecastSplit::new(&series, 12, 1, &path).unwrap_err().to_string();
        assert!(err.contains("short.csv: the series has 10 values"), "{err}");
    }
}
