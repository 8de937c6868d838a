//! A CSV file read whole, with a header row, and every problem reported as an [`Error::Data`] naming the file,
//! the line and what is wrong.

use std::path::{Path, PathBuf};

use super::charlm::load_text;
use recur::{Error, Result};

/// One data row and the 1-based line it starts on.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub line: usize,
    pub cells: csv::StringRecord,
}

/// The header and the data rows of a CSV file.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    /// Reads `path`: UTF-8, a header row, at least one data row, every row as wide as the header. Cells are
    /// trimmed of surrounding spaces.
    pub fn read(path: &Path) -> Result<Self> {
        // Checking the encoding ourselves gives the exact line and byte offset of a bad byte.
        let text = load_text(path)?;
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let headers: Vec<String> =
            reader.headers().map_err(|e| csv_error(path, &text, e))?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let cells = record.map_err(|e| csv_error(path, &text, e))?;
            let line = cells.position().map_or(0, |p| line_at(&text, p.byte() as usize));
            rows.push(Row { line, cells });
        }
        if rows.is_empty() {
            return Err(Error::data(path, None, "no data rows below the header"));
        }
        Ok(Table { path: path.into(), headers, rows })
    }

    /// The index of the column named `name`; a missing column is an error on line 1 listing the header.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::data(&self.path, Some(1), format!("no column `{name}`; the header has {}", self.header_list()))
        })
    }

    /// The header's names, quoted and comma-separated.
    pub fn header_list(&self) -> String {
        self.headers.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
    }

    /// The cell of `row` in column `col` as a finite number.
    pub fn number(&self, row: &Row, col: usize) -> Result<f32> {
        let cell = &row.cells[col];
        match cell.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(Error::data(
                &self.path,
                Some(row.line),
                format!("column `{}`: expected a finite number, found {}", self.headers[col], describe(cell)),
            )),
        }
    }
}

/// The 1-based line of the record starting at byte `offset`. (The reader's own line count misses blank lines
/// it skips, and a record's start offset may sit before such blank lines, hence the skip.)
fn line_at(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = offset.min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\n' | b'\r') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count()
}

fn describe(cell: &str) -> String {
    if cell.is_empty() { "an empty cell".into() } else { format!("`{cell}`") }
}

fn csv_error(path: &Path, text: &str, e: csv::Error) -> Error {
    let line = e.position().map(|p| line_at(text, p.byte() as usize));
    let problem = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields (as many as the header has), found {len}")
        }
        _ => e.to_string(),
    };
    Error::data(path, line, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_with_their_lines_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a, b\n1, 2\n\n3,x\n").unwrap();
        let table = Table::read(&path).unwrap();
        assert_eq!(table.headers, vec!["a", "b"]);
        assert_eq!(table.rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(table.number(&table.rows[0], 1).unwrap(), 2.0);
        let err = table.number(&table.rows[1], 1).unwrap_err().to_string();
        assert!(err.ends_with("t.csv, line 4: column `b`: expected a finite number, found `x`"), "{err}");
        let err = table.column("c").unwrap_err().to_string();
        assert!(err.ends_with("t.csv, line 1: no column `c`; the header has `a`, `b`"), "{err}");

        std::fs::write(&path, "a,b\r\n\r\n1,2\r\n\r\n\r\n3,4\r\n").unwrap();
        let lines: Vec<usize> = Table::read(&path).unwrap().rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 6]);

        std::fs::write(&path, "a,b\n1,2\n\n3\n").unwrap();
        let err = Table::read(&path).unwrap_err().to_string();
        assert!(err.ends_with("t.csv, line 4: expected 2 fields (as many as the header has), found 1"), "{err}");
        std::fs::write(&path, "a,b\n").unwrap();
        assert!(Table::read(&path).unwrap_err().to_string().ends_with("t.csv: no data rows below the header"));
    }
}
