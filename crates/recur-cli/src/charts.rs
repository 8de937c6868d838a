//! The figures the commands draw, built from their records: a run's learning curves.

use std::path::Path;

use crate::metrics::Record;
use crate::plot::{Panel, Series, write_png};
use crate::tasks::Baseline;

/// A moving average over `window` points (the training loss of single batches is noisy).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    let mut sum = 0.0;
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= window {
            sum -= points[i - window].1;
        }
        out.push((x, sum / (i + 1).min(window) as f64));
    }
    out
}

/// Names of the evaluation metrics that occur in `records`, in their first order of appearance.
pub fn metric_names(records: &[Record]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        for (k, _) in &r.eval {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

/// `DIR/curves.png`: the training loss (and its moving average) beside each evaluation metric, with the task's
/// baseline where it applies.
pub fn learning_curves(
    path: &Path,
    title: &str,
    records: &[Record],
    baseline: Option<&Baseline>,
) -> Result<(), String> {
    let loss: Vec<(f64, f64)> = records.iter().map(|r| (r.step as f64, r.loss)).collect();
    let mut series = vec![Series { label: "train loss".into(), points: loss.clone() }];
    if loss.len() >= 20 {
        series.push(Series { label: "moving average".into(), points: smooth(&loss, loss.len() / 20) });
    }
    let loss_panel = Panel {
        title: format!("{title}: training loss"),
        x_label: "step".into(),
        y_label: "loss".into(),
        log_y: loss.iter().all(|p| p.1 > 0.0),
        series,
        reference: None,
    };
    let mut panels = vec![loss_panel];
    for name in metric_names(records) {
        let points: Vec<(f64, f64)> = records.iter().filter_map(|r| Some((r.step as f64, r.metric(&name)?))).collect();
        let reference = baseline.filter(|b| b.metric == name).map(|b| (b.value, b.label.to_string()));
        // Errors fall over orders of magnitude; fractions (accuracies) are read on a linear scale.
        let fraction = name.contains("accuracy") || name.contains("correct") || name.contains("match");
        panels.push(Panel {
            title: format!("{title}: {}", name.trim_start_matches("eval_")),
            x_label: "step".into(),
            y_label: name.clone(),
            log_y: !fraction && points.iter().all(|p| p.1 > 0.0),
            series: vec![Series { label: "evaluation".into(), points }],
            reference,
        });
    }
    write_png(path, &panels, 640, 440)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_averages_the_last_window() {
        let p: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64)).collect();
        let s = smooth(&p, 2);
        assert_eq!(s.iter().map(|q| q.1).collect::<Vec<_>>(), vec![0.0, 0.5, 1.5, 2.5, 3.5]);
    }

    #[test]
    fn metric_names_keep_first_appearance_order() {
        let r = |eval: &[&str]| Record {
            step: 1,
            loss: 1.0,
            lr: 0.1,
            grad_norm: 1.0,
            steps_per_s: 1.0,
            eval: eval.iter().map(|k| (k.to_string(), 0.0)).collect(),
        };
        assert_eq!(
            metric_names(&[r(&[]), r(&["eval_b", "eval_a"]), r(&["eval_a", "eval_c"])]),
            ["eval_b", "eval_a", "eval_c"]
        );
    }
}
