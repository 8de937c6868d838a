//! The server's counters, read by `GET /metrics` in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A histogram of values with fixed upper bounds (Prometheus' cumulative `le` buckets, `+Inf` last).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum, in millionths of the unit (an atomic integer).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts `value`.
    pub fn observe(&self, value: f64) {
        let bucket = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
const SECONDS_BOUNDS: &[f64] = &[1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    /// Inference requests answered with outputs.
    pub requests_ok: AtomicU64,
    /// Inference requests answered with an error.
    pub requests_failed: AtomicU64,
    /// Steps of single streams taken.
    pub steps: AtomicU64,
    /// Streams in each batched step.
    pub batch_size: Histogram,
    /// From a request's arrival at the stepping thread to the start of its first step.
    pub queue_delay: Histogram,
    /// The time of one batched step (every stream of the batch by one step).
    pub step_latency: Histogram,
    /// Streams whose state is held as values, ready to step.
    pub live_streams: AtomicU64,
    /// Streams idle past the timeout, their states held as bytes.
    pub parked_streams: AtomicU64,
    /// Records the store failed to write or remove.
    pub store_errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_ok: AtomicU64::new(0),
            requests_failed: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BOUNDS),
            queue_delay: Histogram::new(SECONDS_BOUNDS),
            step_latency: Histogram::new(SECONDS_BOUNDS),
            live_streams: AtomicU64::new(0),
            parked_streams: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records how long a batched step of `streams` streams took.
    pub fn batched_step(&self, streams: usize, took: Duration) {
        self.batch_size.observe(streams as f64);
        self.step_latency.observe(took.as_secs_f64());
        self.steps.fetch_add(streams as u64, Relaxed);
    }

    /// The text `/metrics` answers with.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP recur_requests_total Inference requests, by outcome.");
        let _ = writeln!(out, "# TYPE recur_requests_total counter");
        let _ = writeln!(out, "recur_requests_total{{outcome=\"ok\"}} {}", self.requests_ok.load(Relaxed));
        let _ = writeln!(out, "recur_requests_total{{outcome=\"error\"}} {}", self.requests_failed.load(Relaxed));
        let _ =
            writeln!(out, "# HELP recur_steps_total Steps of single streams taken.\n# TYPE recur_steps_total counter");
        let _ = writeln!(out, "recur_steps_total {}", self.steps.load(Relaxed));
        self.batch_size.write(&mut out, "recur_batch_size", "Streams in each batched step.");
        self.queue_delay.write(&mut out, "recur_queue_delay_seconds", "From a request's arrival to its first step.");
        self.step_latency.write(&mut out, "recur_step_latency_seconds", "The time of one batched step.");
        let _ = writeln!(out, "# HELP recur_streams Streams held, live (ready to step) or parked (as bytes).");
        let _ = writeln!(out, "# TYPE recur_streams gauge");
        let _ = writeln!(out, "recur_streams{{state=\"live\"}} {}", self.live_streams.load(Relaxed));
        let _ = writeln!(out, "recur_streams{{state=\"parked\"}} {}", self.parked_streams.load(Relaxed));
        let _ = writeln!(out, "# HELP recur_store_errors_total Stream records the store failed to write or remove.");
        let _ = writeln!(out, "# TYPE recur_store_errors_total counter");
        let _ = writeln!(out, "recur_store_errors_total {}", self.store_errors.load(Relaxed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_their_sum_and_count() {
        let m = Metrics::default();
        m.batched_step(3, Duration::from_micros(20));
        m.batched_step(300, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("recur_batch_size_bucket{le=\"4\"} 1\n"), "{text}");
        assert!(text.contains("recur_batch_size_bucket{le=\"512\"} 2\n"), "{text}");
        assert!(text.contains("recur_batch_size_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("recur_batch_size_sum 303\n"), "{text}");
        assert!(text.contains("recur_steps_total 303\n"), "{text}");
        assert!(text.contains("recur_step_latency_seconds_bucket{le=\"0.000025\"} 1\n"), "{text}");
    }
}
