//! Progress of long commands: a bar (step, loss, steps/s, time left) on a terminal, plain log lines when
//! standard output is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// Live bars on standard error.
    Bars,
    /// A line on standard output at each evaluation.
    Lines,
}

impl Display {
    /// Bars when standard output is a terminal and the user did not ask for `--quiet`.
    pub fn choose(quiet: bool) -> Display {
        if !quiet && std::io::stdout().is_terminal() { Display::Bars } else { Display::Lines }
    }
}

/// The progress of one run of `total` steps.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    start: Instant,
    first_step: u64,
}

impl Progress {
    /// Progress of a run that starts at `start_step` of `total`, labelled `label`; bars join `multi` when given
    /// (several runs at once).
    pub fn new(display: Display, label: &str, start_step: u64, total: u64, multi: Option<&MultiProgress>) -> Self {
        let bar = (display == Display::Bars).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
            let bar = match multi {
                Some(m) => m.add(bar),
                None => bar,
            };
            let style = ProgressStyle::with_template(
                "{prefix:>14} [{bar:28.cyan/blue}] {pos:>6}/{len:6} {msg} {rate:>14} {elapsed:>4} eta {eta:>4}",
            )
            .expect("the template is valid")
            .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} steps/s", state.per_sec());
            })
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar.set_position(start_step);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress { bar, label: label.into(), total, start: Instant::now(), first_step: start_step }
    }

    /// After a training step: `step` steps done, the step's loss.
    pub fn step(&self, step: u64, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }

    /// After an evaluation: a line with the step, loss, metrics, speed and time left. Bars print it above
    /// themselves, plain mode on standard output.
    pub fn report(&self, step: u64, loss: f64, metrics: &[(String, f64)]) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let done = step.saturating_sub(self.first_step);
        let rate = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
        let left = if rate > 0.0 { (self.total.saturating_sub(step)) as f64 / rate } else { 0.0 };
        let metrics: String = metrics.iter().map(|(k, v)| format!(" {k} {v:.4}")).collect();
        let line = format!(
            "[{}] step {step}/{} loss {loss:.4}{metrics} {rate:.1} steps/s {} left",
            self.label,
            self.total,
            duration(left)
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// A free-form line, printed the same way as [`Progress::report`]'s.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Removes the bar (the lines stay).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `75` → `1m15s`, `4` → `4s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{s}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration(4.4), "4s");
        assert_eq!(duration(75.0), "1m15s");
        assert_eq!(duration(-3.0), "0s");
    }

    #[test]
    fn lines_mode_has_no_bar() {
        let p = Progress::new(Display::Lines, "x", 0, 10, None);
        assert!(p.bar.is_none());
        p.step(1, 0.5);
        p.finish();
    }
}
