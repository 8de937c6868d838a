//! `--task mackey-glass` and `--task forecast`: predict the next `--horizon` values of a series from the
//! `--seq-len` values before them. The series is split chronologically (80% training, 10% validation, 10% test)
//! and normalised with the training part's statistics; the score is the test windows' MSE (normalised units)
//! against the naive forecast that repeats the last value.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur::{ReadoutName, SequenceModel};
use recur_tasks::{ForecastSplit, load_series_csv, mackey_glass, mae, mse, nrmse};

use super::{
    Baseline, Batch, BatchInput, BatchTargets, Defaults, InputKind, Metrics, ModelShape, Task, TaskName, TaskSpec,
};
use crate::model_kind::ModelKind;

/// Windows of 50 values, one-step forecasts.
pub const DEFAULTS: Defaults = Defaults {
    model: ModelKind::Gru,
    hidden: 64,
    layers: 1,
    seq_len: 50,
    batch: 32,
    steps: 1500,
    lr: 3e-3,
    clip: 1.0,
    forget_bias: 1.0,
    eval_every: 100,
    embed: 0,
};

/// Samples of the built-in Mackey-Glass series.
const MACKEY_GLASS_LEN: usize = 4000;

/// A forecasting task over one series.
pub struct Forecast {
    name: String,
    split: ForecastSplit,
    naive_mse: f64,
}

impl Forecast {
    /// The Mackey-Glass series (drawn from a fixed seed) or the CSV column `spec.column` of `spec.data`.
    pub fn new(spec: &TaskSpec) -> Result<Self, String> {
        let (name, series, source) = match spec.name {
            TaskName::MackeyGlass => {
                let series = mackey_glass(MACKEY_GLASS_LEN, &mut ChaCha8Rng::seed_from_u64(17));
                ("Mackey-Glass".to_string(), series, Path::new("mackey-glass").to_path_buf())
            }
            _ => {
                let data = spec.data.as_ref().ok_or("--task forecast needs --data FILE.csv")?;
                let column = spec.column.as_deref().ok_or("--task forecast needs --column NAME")?;
                let series = load_series_csv(data, column).map_err(|e| e.to_string())?;
                (format!("{} column {column}", data.display()), series, data.clone())
            }
        };
        let split = ForecastSplit::new(&series, spec.seq_len, spec.horizon, &source).map_err(|e| e.to_string())?;
        let naive_mse = mse(&split.test.naive_forecast(), &split.test.targets).map_err(|e| e.to_string())?;
        Ok(Forecast { name: format!("{name}, window {}, horizon {}", spec.seq_len, spec.horizon), split, naive_mse })
    }
}

impl Task for Forecast {
    fn describe(&self) -> String {
        format!("forecasting {}", self.name)
    }

    fn shape(&self) -> ModelShape {
        ModelShape {
            input: InputKind::Features(1),
            readout: ReadoutName::Last,
            outputs: self.split.train.horizon,
            batch_first: true,
        }
    }

    fn train_batch(&self, batch: usize, rng: &mut ChaCha8Rng) -> recur::Result<Batch> {
        let n = self.split.train.len();
        let indices: Vec<usize> = (0..batch).map(|_| rng.random_range(0..n)).collect();
        let (input, targets) = self.split.train.batch(&indices)?;
        Ok(Batch { input: BatchInput::Features(input), targets: BatchTargets::Values(targets), lengths: None })
    }

    fn evaluate(&self, model: &SequenceModel) -> recur::Result<Metrics> {
        let test = &self.split.test;
        let all: Vec<usize> = (0..test.len()).collect();
        let (input, targets) = test.batch(&all)?;
        let predictions = super::predict(model, &BatchInput::Features(input))?;
        Ok(vec![
            ("eval_mse".into(), mse(&predictions, &targets)?),
            ("eval_mae".into(), mae(&predictions, &targets)?),
            ("eval_nrmse".into(), nrmse(&predictions, &targets)?),
        ])
    }

    fn baseline(&self) -> Option<Baseline> {
        Some(Baseline { metric: "eval_mse", value: self.naive_mse, label: "repeat the last value" })
    }
}
