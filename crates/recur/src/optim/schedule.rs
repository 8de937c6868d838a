//! Learning-rate schedules as closed-form functions of the step (PyTorch's `StepLR`, `CosineAnnealingLR`,
//! `LinearLR` and `SequentialLR`), and a [`Scheduler`] whose only state is its position, for checkpoints.

use super::{Optimizer, check_at_least};
use crate::error::{Error, Result};

/// A learning-rate schedule: the learning rate at step `t` as a function of the base learning rate `η₀`.
///
/// Build one with [`constant`](Self::constant), [`step_lr`](Self::step_lr), [`cosine`](Self::cosine),
/// [`linear`](Self::linear) or [`sequential`](Self::sequential); every constructor checks its arguments, so
/// [`lr_at`](Self::lr_at) never fails. Values are computed in `f64` with PyTorch's closed forms; they agree with
/// PyTorch's recursive `get_lr` (what `scheduler.step()` uses) to about 1e-16 relative.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule(Kind);

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Constant,
    Step { step_size: u64, gamma: f64 },
    Cosine { t_max: u64, eta_min: f64 },
    Linear { start_factor: f64, end_factor: f64, total_iters: u64 },
    Sequential { schedules: Vec<Schedule>, milestones: Vec<u64> },
}

impl Schedule {
    /// The base learning rate at every step: `η_t = η₀`.
    pub fn constant() -> Self {
        Schedule(Kind::Constant)
    }

    /// PyTorch's `StepLR(step_size, gamma)`: `η_t = η₀ · γ^⌊t / step_size⌋`.
    ///
    /// Fails unless `step_size > 0` and `gamma` is finite and non-negative.
    pub fn step_lr(step_size: u64, gamma: f64) -> Result<Self> {
        if step_size == 0 {
            return Err(Error::config("StepLR step_size must be > 0"));
        }
        check_at_least("StepLR gamma", gamma, 0.0)?;
        Ok(Schedule(Kind::Step { step_size, gamma }))
    }

    /// PyTorch's `CosineAnnealingLR(T_max, eta_min)`:
    /// `η_t = η_min + (η₀ − η_min)(1 + cos(π t / T_max)) / 2`.
    ///
    /// Past `T_max` the cosine goes on (back up towards `η₀` at `2·T_max`), as PyTorch's does. Fails unless
    /// `t_max > 0` and `eta_min` is finite.
    pub fn cosine(t_max: u64, eta_min: f64) -> Result<Self> {
        if t_max == 0 {
            return Err(Error::config("CosineAnnealingLR T_max must be > 0"));
        }
        if !eta_min.is_finite() {
            return Err(Error::config(format!("CosineAnnealingLR eta_min must be finite, got {eta_min}")));
        }
        Ok(Schedule(Kind::Cosine { t_max, eta_min }))
    }

    /// PyTorch's `LinearLR(start_factor, end_factor, total_iters)`, a linear warm-up (or decay) of the factor:
    /// `η_t = η₀ · (s + (e − s) · min(t, total_iters) / total_iters)`.
    ///
    /// Fails unless `0 < start_factor ≤ 1`, `0 ≤ end_factor ≤ 1` (PyTorch's bounds) and `total_iters > 0`.
    pub fn linear(start_factor: f64, end_factor: f64, total_iters: u64) -> Result<Self> {
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return Err(Error::config(format!("LinearLR start_factor must be in (0, 1], got {start_factor}")));
        }
        if !(0.0..=1.0).contains(&end_factor) {
            return Err(Error::config(format!("LinearLR end_factor must be in [0, 1], got {end_factor}")));
        }
        if total_iters == 0 {
            return Err(Error::config("LinearLR total_iters must be > 0"));
        }
        Ok(Schedule(Kind::Linear { start_factor, end_factor, total_iters }))
    }

    /// PyTorch's `SequentialLR(schedulers, milestones)`: schedule `i` runs from `milestones[i−1]` (or 0) on, with
    /// its own step counted from 0 there and the same base learning rate. With a single milestone `w` this is
    /// "warm up for `w` steps, then decay":
    ///
    /// ```text
    /// η_t = schedules[k].η(t − m_k),  k = #{i : milestones[i] ≤ t},  m_k = milestones[k−1] (m_0 = 0)
    /// ```
    ///
    /// Fails unless there is one milestone fewer than schedules, the milestones are strictly increasing and
    /// positive, and no schedule is itself sequential.
    pub fn sequential(schedules: Vec<Schedule>, milestones: Vec<u64>) -> Result<Self> {
        if schedules.is_empty() || milestones.len() + 1 != schedules.len() {
            return Err(Error::config(format!(
                "SequentialLR needs one milestone fewer than schedules, got {} schedules and {} milestones",
                schedules.len(),
                milestones.len()
            )));
        }
        let mut previous = 0;
        for &m in &milestones {
            if m <= previous {
                return Err(Error::config(format!(
                    "SequentialLR milestones must be positive and strictly increasing, got {milestones:?}"
                )));
            }
            previous = m;
        }
        if schedules.iter().any(|s| matches!(s.0, Kind::Sequential { .. })) {
            return Err(Error::config("SequentialLR schedules cannot be nested"));
        }
        Ok(Schedule(Kind::Sequential { schedules, milestones }))
    }

    /// The learning rate at step `step` (0 before the first optimizer step) for base learning rate `base_lr`.
    pub fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        match &self.0 {
            Kind::Constant => base_lr,
            Kind::Step { step_size, gamma } => base_lr * gamma.powf((step / step_size) as f64),
            Kind::Cosine { t_max, eta_min } => {
                let angle = step as f64 * std::f64::consts::PI / *t_max as f64;
                eta_min + (base_lr - eta_min) * (1.0 + angle.cos()) / 2.0
            }
            Kind::Linear { start_factor, end_factor, total_iters } => {
                let done = step.min(*total_iters) as f64 / *total_iters as f64;
                base_lr * (start_factor + (end_factor - start_factor) * done)
            }
            Kind::Sequential { schedules, milestones } => {
                let k = milestones.iter().take_while(|&&m| m <= step).count();
                let start = if k == 0 { 0 } else { milestones[k - 1] };
                match schedules.get(k) {
                    Some(schedule) => schedule.lr_at(base_lr, step - start),
                    None => base_lr,
                }
            }
        }
    }
}

/// A [`Schedule`] applied to an optimizer: PyTorch's `LRScheduler`, whose whole state is its position (the
/// number of `step` calls, PyTorch's `last_epoch`), so a checkpoint needs to store only that integer.
///
/// As in PyTorch, call [`step`](Self::step) after each optimizer step (or epoch) and [`apply`](Self::apply) the
/// new learning rate; apply once right after construction for the value at position 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduler {
    schedule: Schedule,
    base_lr: f64,
    position: u64,
}

impl Scheduler {
    /// A scheduler at position 0 for base learning rate `base_lr` (PyTorch's `initial_lr`). Fails unless
    /// `base_lr` is finite and non-negative.
    pub fn new(schedule: Schedule, base_lr: f64) -> Result<Self> {
        check_at_least("scheduler base_lr", base_lr, 0.0)?;
        Ok(Scheduler { schedule, base_lr, position: 0 })
    }

    /// The learning rate at the current position.
    pub fn lr(&self) -> f64 {
        self.schedule.lr_at(self.base_lr, self.position)
    }

    /// Advances by one step and returns the new learning rate.
    pub fn step(&mut self) -> f64 {
        self.position = self.position.saturating_add(1);
        self.lr()
    }

    /// Sets the optimizer's learning rate to [`lr`](Self::lr).
    pub fn apply(&self, optimizer: &mut dyn Optimizer) {
        optimizer.set_lr(self.lr());
    }

    /// The number of steps taken: what a checkpoint stores.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves to a position, e.g. one restored from a checkpoint.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The base learning rate.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn step_lr_decays_every_step_size() {
        let s = Schedule::step_lr(3, 0.5).unwrap();
        let lrs: Vec<f64> = (0..7).map(|t| s.lr_at(0.8, t)).collect();
        assert_eq!(lrs, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]);
    }

    #[test]
    fn cosine_hits_half_way_minimum_and_comes_back() {
        let s = Schedule::cosine(4, 0.1).unwrap();
        assert!(close(s.lr_at(1.1, 0), 1.1));
        assert!(close(s.lr_at(1.1, 2), 0.6));
        assert!(close(s.lr_at(1.1, 4), 0.1));
        assert!(close(s.lr_at(1.1, 6), 0.6));
        assert!(close(s.lr_at(1.1, 8), 1.1));
    }

    #[test]
    fn linear_warm_up_reaches_end_factor_and_stays() {
        let s = Schedule::linear(0.25, 1.0, 3).unwrap();
        let lrs: Vec<f64> = (0..5).map(|t| s.lr_at(2.0, t)).collect();
        assert_eq!(lrs, [0.5, 1.0, 1.5, 2.0, 2.0]);
    }

    #[test]
    fn sequential_restarts_the_next_schedule_at_its_milestone() {
        let warmup = Schedule::linear(0.5, 1.0, 2).unwrap();
        let decay = Schedule::step_lr(1, 0.5).unwrap();
        let s = Schedule::sequential(vec![warmup, decay], vec![3]).unwrap();
        let lrs: Vec<f64> = (0..6).map(|t| s.lr_at(1.0, t)).collect();
        assert_eq!(lrs, [0.5, 0.75, 1.0, 1.0, 0.5, 0.25]);
    }

    #[test]
    fn invalid_schedules_are_errors() {
        assert!(Schedule::step_lr(0, 0.1).is_err());
        assert!(Schedule::step_lr(1, f64::NAN).is_err());
        assert!(Schedule::cosine(0, 0.0).is_err());
        assert!(Schedule::cosine(1, f64::INFINITY).is_err());
        assert!(Schedule::linear(0.0, 1.0, 5).is_err());
        assert!(Schedule::linear(0.5, 1.5, 5).is_err());
        assert!(Schedule::linear(0.5, 1.0, 0).is_err());
        let c = Schedule::constant();
        assert!(Schedule::sequential(vec![], vec![]).is_err());
        assert!(Schedule::sequential(vec![c.clone(), c.clone()], vec![]).is_err());
        assert!(Schedule::sequential(vec![c.clone(), c.clone()], vec![0]).is_err());
        let three = vec![c.clone(), c.clone(), c.clone()];
        assert!(Schedule::sequential(three, vec![4, 4]).is_err());
        let nested = Schedule::sequential(vec![c.clone()], vec![]).unwrap();
        assert!(Schedule::sequential(vec![nested, c], vec![2]).is_err());
        assert!(Scheduler::new(Schedule::constant(), -1.0).is_err());
    }

    #[test]
    fn scheduler_position_round_trips() {
        let s = Schedule::step_lr(2, 0.1).unwrap();
        let mut a = Scheduler::new(s.clone(), 1.0).unwrap();
        for _ in 0..5 {
            a.step();
        }
        let mut b = Scheduler::new(s, 1.0).unwrap();
        b.set_position(a.position());
        assert_eq!(b.lr(), a.lr());
        assert_eq!(b.step(), a.step());
        assert!(close(a.lr(), 0.001));
    }
}
