//! `metrics.jsonl`: one JSON object per logged step, appended as training goes, cut back to a checkpoint's step
//! when a run resumes (so the resumed file equals the uninterrupted run's), and read back for plots.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One logged step: what the step did and, when it was evaluated, the evaluation's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Steps done (the update this record describes is the `step`-th).
    pub step: u64,
    /// The step's training loss (before its update).
    pub loss: f64,
    /// The learning rate of the step's update.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training speed since the previous record.
    pub steps_per_s: f64,
    /// Evaluation metrics, when this step was evaluated (`eval_mse`, `eval_accuracy`, …).
    pub eval: Vec<(String, f64)>,
}

impl Record {
    /// The record as a flat JSON object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("step".into(), self.step.into());
        map.insert("loss".into(), self.loss.into());
        map.insert("lr".into(), self.lr.into());
        map.insert("grad_norm".into(), self.grad_norm.into());
        map.insert("steps_per_s".into(), self.steps_per_s.into());
        for (name, value) in &self.eval {
            map.insert(name.clone(), (*value).into());
        }
        Value::Object(map)
    }

    /// Reads a record written by [`Record::to_json`].
    pub fn from_json(value: &Value) -> Option<Record> {
        let map = value.as_object()?;
        let num = |k: &str| map.get(k).and_then(Value::as_f64);
        let eval = map
            .iter()
            .filter(|(k, _)| k.starts_with("eval_"))
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        Some(Record {
            step: map.get("step")?.as_u64()?,
            loss: num("loss")?,
            lr: num("lr")?,
            grad_norm: num("grad_norm")?,
            steps_per_s: num("steps_per_s").unwrap_or(0.0),
            eval,
        })
    }

    /// The value of an evaluation metric, if this record has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.eval.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// Appends records to a `metrics.jsonl`, a line at a time (flushed, so that an interrupted run keeps them).
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Starts a new file at `path`, replacing any.
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(MetricsLog { path: path.into(), out: BufWriter::new(file) })
    }

    /// Continues the file at `path` after step `step`: records of later steps (written after the checkpoint the
    /// run resumes from) are dropped, since the resumed run writes them again.
    pub fn resume(path: &Path, step: u64) -> Result<Self, String> {
        let kept: Vec<Record> = read(path)?.into_iter().filter(|r| r.step <= step).collect();
        let mut log = Self::create(path)?;
        for r in &kept {
            log.append(r)?;
        }
        // Reopened for appending so that nothing already written is lost if this process dies.
        let file = OpenOptions::new().append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(MetricsLog { path: path.into(), out: BufWriter::new(file) })
    }

    /// Appends one record.
    pub fn append(&mut self, record: &Record) -> Result<(), String> {
        let line = serde_json::to_string(&record.to_json()).expect("JSON values serialise");
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Every record of a `metrics.jsonl` (a line that is not a record, such as a half-written last line, ends the
/// reading: nothing after it can be trusted).
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut records = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        match serde_json::from_str::<Value>(&line).ok().as_ref().and_then(Record::from_json) {
            Some(r) => records.push(r),
            None => break,
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, eval: bool) -> Record {
        let eval = if eval { vec![("eval_mse".to_string(), 0.5 / step as f64)] } else { vec![] };
        Record { step, loss: 1.0 / step as f64, lr: 1e-3, grad_norm: 2.0, steps_per_s: 10.0, eval }
    }

    #[test]
    fn records_round_trip_and_resume_drops_later_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::create(&path).unwrap();
        for step in 1..=5 {
            log.append(&record(step * 10, step % 2 == 0)).unwrap();
        }
        drop(log);
        let all = read(&path).unwrap();
        assert_eq!(all, (1..=5).map(|s| record(s * 10, s % 2 == 0)).collect::<Vec<_>>());
        assert_eq!(all[1].metric("eval_mse"), Some(0.025));
        let mut log = MetricsLog::resume(&path, 30).unwrap();
        log.append(&record(40, false)).unwrap();
        drop(log);
        let steps: Vec<u64> = read(&path).unwrap().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![10, 20, 30, 40]);
    }

    #[test]
    fn a_torn_last_line_ends_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let good = serde_json::to_string(&record(1, false).to_json()).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"step\": 2, \"lo")).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
    }
}
