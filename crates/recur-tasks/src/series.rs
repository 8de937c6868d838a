//! Forecasting a univariate series: normalisation, a chronological split, sliding windows of (past values,
//! future values), and the naive last-value forecast to beat.

use std::path::Path;

use recur::Tensor;
use recur::{Error, Result};

/// Affine normalisation `z = (x − mean) / std`, with statistics taken from the training part only (so nothing
/// about the validation or test values leaks into the model's input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalizer {
    /// The training values' mean.
    pub mean: f32,
    /// The training values' (population) standard deviation; 1 when they are constant, so that normalising
    /// never divides by zero.
    pub std: f32,
}

impl Normalizer {
    /// The mean and standard deviation of `values` (mean 0, std 1 for an empty slice).
    pub fn fit(values: &[f32]) -> Self {
        if values.is_empty() {
            return Normalizer { mean: 0.0, std: 1.0 };
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let std = if var > 0.0 { var.sqrt() as f32 } else { 1.0 };
        Normalizer { mean: mean as f32, std }
    }

    /// `(x − mean) / std`.
    pub fn normalize(&self, x: f32) -> f32 {
        (x - self.mean) / self.std
    }

    /// `z·std + mean`, back to the original units.
    pub fn denormalize(&self, z: f32) -> f32 {
        z * self.std + self.mean
    }
}

/// Pairs of (the `window` values before position `p`, the `horizon` values from `p`) cut from a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Windows {
    /// `len × window` past values, row-major, oldest first.
    pub inputs: Vec<f32>,
    /// `len × horizon` future values, row-major: one-step forecasting is `horizon = 1`, multi-step predicts all
    /// `horizon` values at once.
    pub targets: Vec<f32>,
    /// Values per input window, `W`.
    pub window: usize,
    /// Values per target, `H`.
    pub horizon: usize,
}

impl Windows {
    /// The windows whose targets start at every `p` in `targets_from..=series.len() − horizon` with `p ≥ window`
    /// (the inputs may reach back before `targets_from`: they are past values, known at forecast time).
    pub fn cut(series: &[f32], window: usize, horizon: usize, targets_from: usize) -> Self {
        let first = targets_from.max(window);
        let last = series.len().checked_sub(horizon);
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        if let Some(last) = last {
            for p in first..=last {
                inputs.extend_from_slice(&series[p - window..p]);
                targets.extend_from_slice(&series[p..p + horizon]);
            }
        }
        Windows { inputs, targets, window, horizon }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.targets.len().checked_div(self.horizon).unwrap_or(0)
    }

    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The windows `indices` as a batch-first input `(B, W, 1)` and their targets (`B × H`, row-major), for a
    /// [`SequenceModel`](recur::SequenceModel) with a batch-first layer of input size 1, a last-step readout and
    /// `H` outputs.
    pub fn batch(&self, indices: &[usize]) -> Result<(Tensor, Vec<f32>)> {
        let (w, h) = (self.window, self.horizon);
        let mut inputs = Vec::with_capacity(indices.len() * w);
        let mut targets = Vec::with_capacity(indices.len() * h);
        for &i in indices {
            if i >= self.len() {
                return Err(Error::Index {
                    what: "window".into(),
                    index: i.to_string(),
                    valid: format!("0..{}", self.len()),
                });
            }
            inputs.extend_from_slice(&self.inputs[i * w..(i + 1) * w]);
            targets.extend_from_slice(&self.targets[i * h..(i + 1) * h]);
        }
        Ok((Tensor::new([indices.len(), w, 1], inputs)?, targets))
    }

    /// The naive forecast: every future value equals the window's last value (`len × horizon`, as `targets`).
    pub fn naive_forecast(&self) -> Vec<f32> {
        self.inputs
            .chunks_exact(self.window.max(1))
            .flat_map(|w| std::iter::repeat_n(w[w.len() - 1], self.horizon))
            .collect()
    }
}

/// Shares of a series (`train`, `validation`); the test part is the rest.
pub const SPLIT: (f64, f64) = (0.8, 0.1);

/// A series split chronologically into training (the first 80%), validation (the next 10%) and test (the last
/// 10%) parts, normalised with the training part's statistics and cut into windows. A window belongs to the
/// part its targets lie in; its inputs may reach back into the previous part.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastSplit {
    /// The normalisation, fitted on the training values; every window holds normalised values.
    pub normalizer: Normalizer,
    /// Windows with targets in the first 80%.
    pub train: Windows,
    /// Windows with targets in the next 10%.
    pub valid: Windows,
    /// Windows with targets in the last 10%.
    pub test: Windows,
}

impl ForecastSplit {
    /// Splits, normalises and windows `series`. `source` names the data in errors (a file, or a task name).
    ///
    /// Fails with [`Error::Data`] when the training part is shorter than `window + horizon` values or the
    /// validation or test part shorter than `horizon` (each part must give at least one window), and with
    /// [`Error::Config`] when `window` or `horizon` is 0.
    pub fn new(series: &[f32], window: usize, horizon: usize, source: &Path) -> Result<Self> {
        if window == 0 || horizon == 0 {
            return Err(Error::config(format!("window and horizon must be at least 1, found {window} and {horizon}")));
        }
        let n = series.len();
        let n_train = (n as f64 * SPLIT.0) as usize;
        let n_valid = (n as f64 * SPLIT.1) as usize;
        let n_test = n - n_train - n_valid;
        let short = |part: &str, have: usize, need: usize| {
            Error::data(
                source,
                None,
                format!(
                    "the series has {n} values, so its {part} has {have}, fewer than the {need} that window {window} \
                     and horizon {horizon} need (split 80/10/10)"
                ),
            )
        };
        if n_train < window + horizon {
            return Err(short("training part (80%)", n_train, window + horizon));
        }
        if n_valid < horizon {
            return Err(short("validation part (10%)", n_valid, horizon));
        }
        if n_test < horizon {
            return Err(short("test part (10%)", n_test, horizon));
        }
        let normalizer = Normalizer::fit(&series[..n_train]);
        let z: Vec<f32> = series.iter().map(|&x| normalizer.normalize(x)).collect();
        Ok(ForecastSplit {
            normalizer,
            train: Windows::cut(&z[..n_train], window, horizon, 0),
            valid: Windows::cut(&z[..n_train + n_valid], window, horizon, n_train),
            test: Windows::cut(&z, window, horizon, n_train + n_valid),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pair_the_past_with_the_future() {
        let series: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let w = Windows::cut(&series, 3, 2, 0);
        assert_eq!(w.len(), 4); // targets start at 3, 4, 5, 6
        assert_eq!(&w.inputs[..3], &[0.0, 1.0, 2.0]);
        assert_eq!(&w.targets[..2], &[3.0, 4.0]);
        assert_eq!(&w.targets[6..], &[6.0, 7.0]);
        assert_eq!(w.naive_forecast()[..4], [2.0, 2.0, 3.0, 3.0]);
        let (x, y) = w.batch(&[3, 0]).unwrap();
        assert_eq!(x.shape(), &[2, 3, 1]);
        assert_eq!(x.data(), &[3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
        assert_eq!(y, vec![6.0, 7.0, 3.0, 4.0]);
        assert!(w.batch(&[4]).is_err());
        assert!(Windows::cut(&series, 7, 2, 0).is_empty());
        // Targets from position 6 only: one window, whose inputs reach back.
        let late = Windows::cut(&series, 3, 2, 6);
        assert_eq!((late.inputs.clone(), late.targets.clone()), (vec![3.0, 4.0, 5.0], vec![6.0, 7.0]));
    }

    #[test]
    fn split_is_chronological_and_normalised_by_training_values_only() {
        let series: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let split = ForecastSplit::new(&series, 5, 1, Path::new("s.csv")).unwrap();
        // Training values 0..80: mean 39.5.
        assert!((split.normalizer.mean - 39.5).abs() < 1e-5);
        let back = |z: &[f32]| z.iter().map(|&v| split.normalizer.denormalize(v).round()).collect::<Vec<_>>();
        assert_eq!(split.train.len(), 75);
        assert_eq!(back(&split.train.targets).last(), Some(&79.0));
        assert_eq!(back(&split.valid.targets), (80..90).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(back(&split.test.targets), (90..100).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(back(&split.test.inputs[..5]), vec![85.0, 86.0, 87.0, 88.0, 89.0]);
    }

    #[test]
    fn a_series_shorter_than_the_window_is_a_data_error() {
        let series = vec![1.0f32; 20];
        let err = ForecastSplit::new(&series, 16, 1, Path::new("short.csv")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Data { line: None, .. }), "{err:?}");
        assert!(msg.starts_with("short.csv: the series has 20 values"), "{msg}");
        assert!(msg.contains("fewer than the 17"), "{msg}");
        let err = ForecastSplit::new(&series, 2, 3, Path::new("short.csv")).unwrap_err();
        assert!(err.to_string().contains("validation part"), "{err}");
        assert!(ForecastSplit::new(&series, 0, 1, Path::new("x")).is_err());
        // A constant series normalises without dividing by zero.
        let flat = ForecastSplit::new(&series, 2, 1, Path::new("flat.csv")).unwrap();
        assert!(flat.train.inputs.iter().all(|&v| v == 0.0));
    }
}
