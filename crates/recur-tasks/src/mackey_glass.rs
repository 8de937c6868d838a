//! The Mackey-Glass delay differential equation (Mackey and Glass, 1977), a standard chaotic series for
//! forecasting:
//!
//! `dx/dt = β·x(t−τ) / (1 + x(t−τ)ⁿ) − γ·x(t)`, with `τ = 17`, `β = 0.2`, `γ = 0.1`, `n = 10`,
//!
//! integrated with fourth-order Runge-Kutta at step `dt = 0.1` (the delayed value at a half step is the mean of
//! its two grid neighbours) and sampled every time unit. Its attractor lies within about `[0.2, 1.4]`. Forecast
//! it with [`ForecastSplit`](super::ForecastSplit) and score with [`nrmse`](super::nrmse).

use rand::Rng;

use recur::{Error, Result};

/// The equation's parameters and the integration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MackeyGlass {
    /// The delay `τ`.
    pub tau: f64,
    /// `β`.
    pub beta: f64,
    /// `γ`.
    pub gamma: f64,
    /// The exponent `n`.
    pub n: f64,
    /// The integration step; `τ` must be a whole number of steps, and 1 a whole number of steps too.
    pub dt: f64,
    /// Time units integrated and dropped before the first sample, so that the series starts on the attractor.
    pub washout: usize,
}

impl Default for MackeyGlass {
    /// `τ = 17`, `β = 0.2`, `γ = 0.1`, `n = 10`, `dt = 0.1`, a washout of 500 time units.
    fn default() -> Self {
        MackeyGlass { tau: 17.0, beta: 0.2, gamma: 0.1, n: 10.0, dt: 0.1, washout: 500 }
    }
}

impl MackeyGlass {
    fn rate(&self, x: f64, delayed: f64) -> f64 {
        self.beta * delayed / (1.0 + delayed.powf(self.n)) - self.gamma * x
    }

    /// `len` samples, one per time unit, after the washout. The history before `t = 0` is a constant drawn
    /// uniformly from `[0.5, 1.5)` with `rng`, so each seed gives another stretch of the attractor.
    pub fn series(&self, len: usize, rng: &mut impl Rng) -> Result<Vec<f32>> {
        let per_unit = (1.0 / self.dt).round() as usize;
        let delay = (self.tau / self.dt).round() as usize;
        let whole = |v: f64, steps: usize| steps > 0 && (v - steps as f64 * self.dt).abs() < 1e-9;
        if self.dt.is_nan() || self.dt <= 0.0 || !whole(1.0, per_unit) || !whole(self.tau, delay) {
            return Err(Error::config(format!(
                "Mackey-Glass: dt must divide both 1 and tau, found dt={} and tau={}",
                self.dt, self.tau
            )));
        }
        let start = rng.random_range(0.5..1.5);
        // x[i] is x(i·dt − τ): the first `delay + 1` values are the constant history up to t = 0.
        let total = (self.washout + len) * per_unit;
        let mut x = vec![start; delay + 1];
        x.reserve(total);
        let h = self.dt;
        for i in delay..delay + total {
            let (now, d0, d1) = (x[i], x[i - delay], x[i - delay + 1]);
            let mid = 0.5 * (d0 + d1);
            let k1 = self.rate(now, d0);
            let k2 = self.rate(now + 0.5 * h * k1, mid);
            let k3 = self.rate(now + 0.5 * h * k2, mid);
            let k4 = self.rate(now + h * k3, d1);
            x.push(now + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4));
        }
        let first = delay + self.washout * per_unit;
        Ok((0..len).map(|k| x[first + k * per_unit] as f32).collect())
    }
}

/// `len` samples of the standard Mackey-Glass series ([`MackeyGlass::default`]).
pub fn mackey_glass(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    MackeyGlass::default().series(len, rng).expect("the default parameters are valid")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn stays_on_the_attractor_and_is_deterministic() {
        for seed in 0..4 {
            let s = mackey_glass(2000, &mut StdRng::seed_from_u64(seed));
            let (lo, hi) = s.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(lo >= 0.2 && hi <= 1.4, "seed {seed}: [{lo}, {hi}]");
            // Chaotic, not a fixed point: it spans most of the range.
            assert!(hi - lo > 0.8, "seed {seed}: [{lo}, {hi}]");
            assert_eq!(s, mackey_glass(2000, &mut StdRng::seed_from_u64(seed)));
        }
        assert_ne!(mackey_glass(10, &mut StdRng::seed_from_u64(0)), mackey_glass(10, &mut StdRng::seed_from_u64(1)));
    }

    #[test]
    fn a_finer_step_gives_nearly_the_same_series() {
        // Chaos amplifies any difference, so compare a short stretch right after a short washout.
        let coarse = MackeyGlass { washout: 20, ..MackeyGlass::default() };
        let fine = MackeyGlass { dt: 0.01, ..coarse };
        let a = coarse.series(20, &mut StdRng::seed_from_u64(3)).unwrap();
        let b = fine.series(20, &mut StdRng::seed_from_u64(3)).unwrap();
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "{worst}");
        assert!(MackeyGlass { dt: 0.3, ..coarse }.series(5, &mut StdRng::seed_from_u64(0)).is_err());
    }
}
