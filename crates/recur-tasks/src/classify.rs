//! Classifying variable-length sequences from a CSV file: one row per time step, the rows of a sequence sharing
//! a sequence id, a label per sequence, and numeric feature columns.
//!
//! ```text
//! id,label,x,y
//! a,walk,0.1,0.2      ← sequence `a`, step 0
//! a,walk,0.3,0.1      ← sequence `a`, step 1
//! b,run,0.9,0.8       ← sequence `b`, step 0
//! ```
//!
//! A sequence's rows need not be adjacent; they are its steps in file order. Labels become class indices in
//! sorted order (numerically when every label is a number), and the names are kept for reports. The score is
//! [`accuracy`](super::accuracy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::seq::SliceRandom;

use super::series::Normalizer;
use super::table::Table;
use recur::Tensor;
use recur::{Error, Result};

/// Which columns of a classification CSV hold what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifyColumns {
    /// The sequence-id column (default `id`).
    pub id: String,
    /// The label column (default `label`).
    pub label: String,
    /// The feature columns, in this order; `None` (the default) takes every other column, in file order.
    pub features: Option<Vec<String>>,
}

impl Default for ClassifyColumns {
    fn default() -> Self {
        ClassifyColumns { id: "id".into(), label: "label".into(), features: None }
    }
}

/// One sequence of a [`SequenceSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledSequence {
    /// Its id, as written in the file.
    pub id: String,
    /// Its class index (into [`SequenceSet::label_names`]).
    pub label: usize,
    /// `steps × features` values, row-major, in file order.
    pub values: Vec<f32>,
    /// Its number of steps (rows).
    pub steps: usize,
    /// The line of its first row.
    pub line: usize,
}

/// A padded batch of sequences, batch-first, for [`Trainer::step_with_lengths`](recur::train::Trainer) with a
/// batch-first layer and a many-to-one readout.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedBatch {
    /// `(B, T, F)`, zeros past each sequence's length; `T` is the longest.
    pub input: Tensor,
    /// Steps of each sequence.
    pub lengths: Vec<usize>,
    /// Class index of each sequence.
    pub labels: Vec<i64>,
}

/// Labelled sequences read from a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceSet {
    /// The sequences, in order of their first row.
    pub sequences: Vec<LabelledSequence>,
    /// The feature columns' names: the input size is their number.
    pub feature_names: Vec<String>,
    /// The labels' names by class index.
    pub label_names: Vec<String>,
    /// The file.
    pub source: PathBuf,
}

impl SequenceSet {
    /// Reads a CSV file with a header row (see [the module](self)).
    ///
    /// An empty or non-UTF-8 file, a missing column, a row of the wrong width, a non-numeric feature cell, an
    /// empty id or label, a sequence whose rows disagree on its label, or no feature column at all is an
    /// [`Error::Data`] naming the file and the line.
    pub fn load_csv(path: impl AsRef<Path>, columns: &ClassifyColumns) -> Result<Self> {
        let table = Table::read(path.as_ref())?;
        let (id_col, label_col) = (table.column(&columns.id)?, table.column(&columns.label)?);
        let feature_cols: Vec<usize> = match &columns.features {
            Some(names) => names.iter().map(|n| table.column(n)).collect::<Result<_>>()?,
            None => (0..table.headers.len()).filter(|&c| c != id_col && c != label_col).collect(),
        };
        if feature_cols.is_empty() {
            return Err(Error::data(
                &table.path,
                Some(1),
                format!("no feature columns: the header has only {}", table.header_list()),
            ));
        }

        let mut sequences: Vec<LabelledSequence> = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for row in &table.rows {
            let (id, label) = (&row.cells[id_col], &row.cells[label_col]);
            for (what, cell) in [(&columns.id, id), (&columns.label, label)] {
                if cell.is_empty() {
                    return Err(Error::data(&table.path, Some(row.line), format!("column `{what}` is empty")));
                }
            }
            let k = *by_id.entry(id.to_string()).or_insert_with(|| {
                sequences.push(LabelledSequence { id: id.into(), label: 0, values: vec![], steps: 0, line: row.line });
                labels.push(label.into());
                sequences.len() - 1
            });
            if labels[k] != label {
                return Err(Error::data(
                    &table.path,
                    Some(row.line),
                    format!(
                        "sequence `{id}` has label `{label}` here but `{}` on line {}; a sequence has one label",
                        labels[k], sequences[k].line
                    ),
                ));
            }
            for &c in &feature_cols {
                let v = table.number(row, c)?;
                sequences[k].values.push(v);
            }
            sequences[k].steps += 1;
        }

        let label_names = sorted_names(&labels);
        for (s, label) in sequences.iter_mut().zip(&labels) {
            s.label = label_names.iter().position(|n| n == label).expect("every label is named");
        }
        let feature_names = feature_cols.iter().map(|&c| table.headers[c].clone()).collect();
        Ok(SequenceSet { sequences, feature_names, label_names, source: table.path })
    }

    /// Features per step, the model's input size.
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// Number of classes, the model's outputs.
    pub fn classes(&self) -> usize {
        self.label_names.len()
    }

    /// The sequences `indices` as a padded batch.
    pub fn batch(&self, indices: &[usize]) -> Result<PaddedBatch> {
        let f = self.features();
        let chosen: Vec<&LabelledSequence> = indices
            .iter()
            .map(|&i| {
                self.sequences.get(i).ok_or_else(|| Error::Index {
                    what: "sequence".into(),
                    index: i.to_string(),
                    valid: format!("0..{}", self.sequences.len()),
                })
            })
            .collect::<Result<_>>()?;
        let steps = chosen.iter().map(|s| s.steps).max().unwrap_or(0);
        let mut input = vec![0.0f32; chosen.len() * steps * f];
        for (b, s) in chosen.iter().enumerate() {
            input[b * steps * f..][..s.values.len()].copy_from_slice(&s.values);
        }
        Ok(PaddedBatch {
            input: Tensor::new([chosen.len(), steps, f], input)?,
            lengths: chosen.iter().map(|s| s.steps).collect(),
            labels: chosen.iter().map(|s| s.label as i64).collect(),
        })
    }

    /// A random split of the sequence indices: `⌈valid_fraction · n⌉` for validation (at least one when there
    /// are two or more sequences), the rest for training.
    pub fn split(&self, valid_fraction: f64, rng: &mut impl Rng) -> (Vec<usize>, Vec<usize>) {
        let n = self.sequences.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let n_valid = ((n as f64 * valid_fraction.clamp(0.0, 1.0)).ceil() as usize)
            .clamp(usize::from(n >= 2), n.saturating_sub(1));
        let valid = order.split_off(n - n_valid);
        (order, valid)
    }

    /// One [`Normalizer`] per feature, fitted on the steps of the sequences `indices` (the training ones).
    pub fn normalizers(&self, indices: &[usize]) -> Vec<Normalizer> {
        let f = self.features();
        (0..f)
            .map(|c| {
                let column: Vec<f32> = indices
                    .iter()
                    .filter_map(|&i| self.sequences.get(i))
                    .flat_map(|s| s.values.iter().skip(c).step_by(f).copied())
                    .collect();
                Normalizer::fit(&column)
            })
            .collect()
    }

    /// Normalises every sequence's features in place, feature `c` with `normalizers[c]`.
    pub fn normalize(&mut self, normalizers: &[Normalizer]) -> Result<()> {
        if normalizers.len() != self.features() {
            return Err(Error::shape(
                "normalizers",
                format!("[{}] (one per feature)", self.features()),
                &[normalizers.len()],
            ));
        }
        for s in &mut self.sequences {
            for (i, v) in s.values.iter_mut().enumerate() {
                *v = normalizers[i % normalizers.len()].normalize(*v);
            }
        }
        Ok(())
    }
}

/// The distinct names, sorted numerically when all are numbers (so `2` comes before `10`), else as text.
fn sorted_names(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    let numbers: Option<Vec<f64>> = names.iter().map(|n| n.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(names).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0));
        names = paired.into_iter().map(|(_, n)| n).collect();
    }
    names
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    const GOOD: &str = "id,x,label,y\n\
                        s1,1,walk,10\n\
                        s2,5,run,50\n\
                        s1,2,walk,20\n\
                        s3,7,sit,70\n\
                        s1,3,walk,30\n\
                        s2,6,run,60\n";

    #[test]
    fn a_good_file_groups_rows_into_labelled_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "good.csv", GOOD);
        let set = SequenceSet::load_csv(&path, &ClassifyColumns::default()).unwrap();
        assert_eq!(set.feature_names, vec!["x", "y"]);
        assert_eq!(set.label_names, vec!["run", "sit", "walk"]);
        let summary: Vec<(&str, usize, usize, usize)> =
            set.sequences.iter().map(|s| (s.id.as_str(), s.label, s.steps, s.line)).collect();
        assert_eq!(summary, vec![("s1", 2, 3, 2), ("s2", 0, 2, 3), ("s3", 1, 1, 5)]);
        assert_eq!(set.sequences[0].values, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);

        let batch = set.batch(&[1, 0, 2]).unwrap();
        assert_eq!(batch.input.shape(), &[3, 3, 2]);
        assert_eq!(batch.lengths, vec![2, 3, 1]);
        assert_eq!(batch.labels, vec![0, 2, 1]);
        assert_eq!(&batch.input.data()[..6], &[5.0, 50.0, 6.0, 60.0, 0.0, 0.0]);
        assert!(set.batch(&[3]).is_err());

        // Only the chosen features, in the chosen order.
        let columns = ClassifyColumns { features: Some(vec!["y".into()]), ..ClassifyColumns::default() };
        let only_y = SequenceSet::load_csv(&path, &columns).unwrap();
        assert_eq!(only_y.sequences[2].values, vec![70.0]);
    }

    #[test]
    fn numeric_labels_sort_as_numbers_and_features_normalise_by_the_training_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "n.csv", "id,label,v\na,10,1\nb,2,3\nc,10,5\n");
        let mut set = SequenceSet::load_csv(&path, &ClassifyColumns::default()).unwrap();
        assert_eq!(set.label_names, vec!["2", "10"]);
        let norms = set.normalizers(&[0, 1]); // values 1 and 3: mean 2, std 1
        assert_eq!(norms, vec![Normalizer { mean: 2.0, std: 1.0 }]);
        set.normalize(&norms).unwrap();
        assert_eq!(set.sequences.iter().map(|s| s.values[0]).collect::<Vec<_>>(), vec![-1.0, 1.0, 3.0]);

        let (train, valid) = set.split(0.2, &mut StdRng::seed_from_u64(0));
        assert_eq!((train.len(), valid.len()), (2, 1));
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!((train, valid), set.split(0.2, &mut StdRng::seed_from_u64(0)));
    }

    #[test]
    fn bad_files_name_the_file_line_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("empty.csv", "", None, "the file is empty"),
            ("nolabel.csv", "id,x\na,1\n", Some(1), "no column `label`; the header has `id`, `x`"),
            ("nofeat.csv", "id,label\na,1\n", Some(1), "no feature columns"),
            (
                "text.csv",
                "id,label,x\na,1,0.5\na,1,high\n",
                Some(3),
                "column `x`: expected a finite number, found `high`",
            ),
            (
                "conflict.csv",
                "id,label,x\na,1,0\nb,2,0\na,2,0\n",
                Some(4),
                "sequence `a` has label `2` here but `1` on line 2",
            ),
            ("noid.csv", "id,label,x\n,1,0\n", Some(2), "column `id` is empty"),
            ("ragged.csv", "id,label,x\na,1,0,9\n", Some(2), "expected 3 fields"),
        ];
        for (name, contents, line, problem) in cases {
            let path = write(&dir, name, contents);
            match SequenceSet::load_csv(&path, &ClassifyColumns::default()).unwrap_err() {
                Error::Data { file, line: l, problem: p } => {
                    assert_eq!(file, path, "{name}");
                    assert_eq!(l, line, "{name}: {p}");
                    assert!(p.contains(problem), "{name}: {p}");
                }
                other => panic!("{name}: expected Error::Data, found {other:?}"),
            }
        }
    }
}
