//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay: PyTorch's
//! `torch.optim.SGD`, step for step.

use std::collections::HashMap;

use super::state::Slots;
use super::{Optimizer, check_at_least};
use crate::error::{Error, Result};
use crate::params::Param;
use crate::tensor::Tensor;

/// Hyper-parameters of [`Sgd`], with PyTorch's defaults (all zero, `nesterov = false`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate `γ`.
    pub lr: f64,
    /// Momentum factor `μ` (0: no momentum buffer).
    pub momentum: f64,
    /// Dampening `τ` of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty `λ`, added to the gradient: `g ← g + λθ`.
    pub weight_decay: f64,
    /// Nesterov momentum: needs `momentum > 0` and `dampening = 0`.
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`: `torch.optim.SGD(params, lr=lr)`.
    pub fn new(lr: f64) -> Self {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }

    /// Sets the momentum factor `μ`.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening `τ`.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Sets the L2 penalty `λ`.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// PyTorch's checks: `lr`, `momentum` and `weight_decay` non-negative, Nesterov only with `momentum > 0` and
    /// `dampening = 0`; here also every value finite.
    pub fn validate(&self) -> Result<()> {
        check_at_least("SGD lr", self.lr, 0.0)?;
        check_at_least("SGD momentum", self.momentum, 0.0)?;
        check_at_least("SGD weight_decay", self.weight_decay, 0.0)?;
        if !self.dampening.is_finite() {
            return Err(Error::config(format!("SGD dampening must be finite, got {}", self.dampening)));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::config("SGD with nesterov=true requires momentum > 0 and dampening = 0"));
        }
        Ok(())
    }
}

/// PyTorch's `torch.optim.SGD` for one parameter group (`maximize = false`).
///
/// For each parameter `θ` with gradient `g`, at step `t` (from 1):
///
/// ```text
/// g ← g + λθ                         if λ ≠ 0
/// b ← g                              if μ ≠ 0 and t = 1 (no dampening on the first step)
/// b ← μ·b + (1 − τ)·g                if μ ≠ 0 and t > 1
/// g ← g + μ·b  (nesterov)  or  g ← b  if μ ≠ 0
/// θ ← θ − γ·g
/// ```
///
/// The buffer `b` is PyTorch's `momentum_buffer`, saved as `momentum_buffer.<parameter name>`.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    slots: Slots,
}

impl Sgd {
    /// An SGD optimizer, after checking `config` (see [`SgdConfig::validate`]).
    pub fn new(config: SgdConfig) -> Result<Self> {
        config.validate()?;
        let kinds: &'static [&'static str] = if config.momentum != 0.0 { &["momentum_buffer"] } else { &[] };
        Ok(Sgd { config, slots: Slots::new(kinds) })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, params: &mut [Param<'_>]) -> Result<()> {
        self.config.validate()?;
        let first = self.slots.steps() == 0;
        let entries = self.slots.bind(params)?;
        let c = &self.config;
        // PyTorch rounds each Python-float scalar to f32 as it enters a float32 kernel.
        let neg_lr = (-c.lr) as f32;
        let weight_decay = c.weight_decay as f32;
        let momentum = c.momentum as f32;
        let keep = (1.0 - c.dampening) as f32;
        for (p, entry) in params.iter_mut().zip(entries.iter_mut()) {
            let mut buffer = entry.buffers.first_mut().map(Vec::as_mut_slice);
            for i in 0..p.value.len() {
                let theta = p.value[i];
                let mut g = p.grad[i];
                if c.weight_decay != 0.0 {
                    g += weight_decay * theta;
                }
                if let Some(b) = buffer.as_deref_mut() {
                    b[i] = if first { g } else { b[i] * momentum + keep * g };
                    g = if c.nesterov { g + momentum * b[i] } else { b[i] };
                }
                p.value[i] = theta + neg_lr * g;
            }
        }
        self.slots.finish_step();
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn step_count(&self) -> u64 {
        self.slots.steps()
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots.tensors()
    }

    fn load_state_tensors(
        &mut self,
        params: &[Param<'_>],
        tensors: &HashMap<String, Tensor>,
        step_count: u64,
    ) -> Result<()> {
        self.slots.load(params, tensors, step_count)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Owned, assert_close};
    use super::*;

    fn run(config: SgdConfig, grads: &[[f32; 2]]) -> Vec<f32> {
        let mut owned = Owned::new(&[("w", &[1.0, -2.0], &[0.0, 0.0])]);
        let mut sgd = Sgd::new(config).unwrap();
        for g in grads {
            owned.set_grad(0, g);
            sgd.step(&mut owned.params()).unwrap();
        }
        owned.value(0).to_vec()
    }

    #[test]
    fn plain_step_is_theta_minus_lr_g() {
        let got = run(SgdConfig::new(0.1), &[[1.0, -3.0]]);
        assert_close(&got, &[0.9, -1.7], 1e-7);
    }

    #[test]
    fn weight_decay_adds_lambda_theta_to_the_gradient() {
        // g = (1, -3) + 0.5·(1, -2) = (1.5, -4); θ = (1, -2) − 0.1·g
        let got = run(SgdConfig::new(0.1).weight_decay(0.5), &[[1.0, -3.0]]);
        assert_close(&got, &[0.85, -1.6], 1e-7);
    }

    #[test]
    fn first_momentum_step_ignores_dampening() {
        // Step 1: b = g = (1, 1); θ = (0.9, -2.1). Step 2: b = 0.9·1 + 0.5·2 = 1.9; θ = 0.9 − 0.19 = 0.71.
        let got = run(SgdConfig::new(0.1).momentum(0.9).dampening(0.5), &[[1.0, 1.0], [2.0, 0.0]]);
        assert_close(&got, &[0.71, -2.1 - 0.1 * 0.9], 1e-6);
    }

    #[test]
    fn nesterov_looks_ahead() {
        // Step 1: b = 1, g' = 1 + 0.9·1 = 1.9, θ = 1 − 0.19. Step 2: b = 0.9 + 1 = 1.9, g' = 1 + 1.71 = 2.71.
        let got = run(SgdConfig::new(0.1).momentum(0.9).nesterov(true), &[[1.0, 0.0], [1.0, 0.0]]);
        assert_close(&got, &[1.0 - 0.19 - 0.271, -2.0], 1e-6);
    }

    #[test]
    fn nesterov_needs_momentum_and_no_dampening() {
        assert!(Sgd::new(SgdConfig::new(0.1).nesterov(true)).is_err());
        assert!(Sgd::new(SgdConfig::new(0.1).momentum(0.9).dampening(0.1).nesterov(true)).is_err());
        assert!(Sgd::new(SgdConfig::new(-0.1)).is_err());
        assert!(Sgd::new(SgdConfig::new(0.1).momentum(f64::NAN)).is_err());
        assert!(Sgd::new(SgdConfig::new(0.1).weight_decay(-1.0)).is_err());
    }

    #[test]
    fn invalid_lr_fails_the_step_without_changes() {
        let mut owned = Owned::new(&[("w", &[1.0], &[1.0])]);
        let mut sgd = Sgd::new(SgdConfig::new(0.1)).unwrap();
        sgd.set_lr(f64::INFINITY);
        assert!(sgd.step(&mut owned.params()).is_err());
        assert_eq!(owned.value(0), &[1.0]);
        assert_eq!(sgd.step_count(), 0);
    }

    #[test]
    fn gradients_are_not_modified() {
        let mut owned = Owned::new(&[("w", &[1.0], &[1.0])]);
        let mut sgd = Sgd::new(SgdConfig::new(0.1).momentum(0.5).weight_decay(0.1)).unwrap();
        sgd.step(&mut owned.params()).unwrap();
        assert_eq!(owned.0[0].2, vec![1.0]);
    }

    #[test]
    fn no_momentum_keeps_no_buffers() {
        let mut owned = Owned::new(&[("w", &[1.0], &[1.0])]);
        let mut sgd = Sgd::new(SgdConfig::new(0.1)).unwrap();
        sgd.step(&mut owned.params()).unwrap();
        assert!(sgd.state_tensors().is_empty());
        let mut momentum = Sgd::new(SgdConfig::new(0.1).momentum(0.9)).unwrap();
        assert!(momentum.state_tensors().is_empty(), "no buffer before the first step");
        momentum.step(&mut owned.params()).unwrap();
        let names: Vec<String> = momentum.state_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["momentum_buffer.w"]);
    }
}
