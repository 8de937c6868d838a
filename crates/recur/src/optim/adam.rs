//! Adam and AdamW (with optional AMSGrad): PyTorch's `torch.optim.Adam` and `torch.optim.AdamW`, step for step,
//! including the order in which PyTorch rounds its bias corrections.

use std::collections::HashMap;

use rayon::prelude::*;

use super::state::Slots;
use super::{Optimizer, check_at_least};
use crate::error::{Error, Result};
use crate::params::Param;
use crate::tensor::Tensor;

/// Hyper-parameters of [`Adam`]. [`AdamConfig::new`] has `torch.optim.Adam`'s defaults, [`AdamConfig::adamw`]
/// those of `torch.optim.AdamW`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate `γ`.
    pub lr: f64,
    /// `(β₁, β₂)`: decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// `ε`, added to the denominator.
    pub eps: f64,
    /// Weight decay `λ`: an L2 penalty added to the gradient (Adam) or, when
    /// [`decoupled_weight_decay`](Self::decoupled_weight_decay) is set, a decay of the weights (AdamW).
    pub weight_decay: f64,
    /// AMSGrad: normalise by the running maximum of the second moment estimate.
    pub amsgrad: bool,
    /// Decoupled weight decay `θ ← θ(1 − γλ)` (AdamW) instead of `g ← g + λθ` (Adam).
    pub decoupled_weight_decay: bool,
}

impl AdamConfig {
    /// Adam with learning rate `lr`: `torch.optim.Adam(params, lr=lr)` (`betas = (0.9, 0.999)`, `eps = 1e-8`, no
    /// weight decay).
    pub fn new(lr: f64) -> Self {
        AdamConfig {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled_weight_decay: false,
        }
    }

    /// AdamW with learning rate `lr`: `torch.optim.AdamW(params, lr=lr)` (as [`new`](Self::new), but decoupled
    /// weight decay `λ = 0.01`).
    pub fn adamw(lr: f64) -> Self {
        AdamConfig { weight_decay: 1e-2, decoupled_weight_decay: true, ..AdamConfig::new(lr) }
    }

    /// Sets `(β₁, β₂)`.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets `ε`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay `λ`.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Turns AMSGrad on or off.
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// PyTorch's checks: `lr`, `eps` and `weight_decay` non-negative, each beta in `[0, 1)`; here also every value
    /// finite.
    pub fn validate(&self) -> Result<()> {
        check_at_least("Adam lr", self.lr, 0.0)?;
        check_at_least("Adam eps", self.eps, 0.0)?;
        check_at_least("Adam weight_decay", self.weight_decay, 0.0)?;
        for (i, beta) in [self.betas.0, self.betas.1].into_iter().enumerate() {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::config(format!("Adam beta parameter at index {i} must be in [0, 1), got {beta}")));
            }
        }
        Ok(())
    }
}

/// AdamW is [`Adam`] built from [`AdamConfig::adamw`] (decoupled weight decay), as in PyTorch, where `AdamW` is
/// `Adam(decoupled_weight_decay=True)`.
pub type AdamW = Adam;

/// PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` for one parameter group (`maximize = false`, the
/// single-tensor path PyTorch takes on the CPU).
///
/// For each parameter `θ` with gradient `g`, at step `t` (from 1), with `m₀ = v₀ = v̂₀ = 0`:
///
/// ```text
/// θ ← θ(1 − γλ)                          if AdamW and λ ≠ 0
/// g ← g + λθ                             if Adam and λ ≠ 0
/// m ← lerp(m, g, 1 − β₁)                 (= β₁m + (1 − β₁)g)
/// v ← β₂v + (1 − β₂)g²
/// v̂ ← max(v̂, v)                          if amsgrad (and v̂ replaces v below)
/// denom ← √v / √(1 − β₂ᵗ) + ε
/// θ ← θ − (γ / (1 − β₁ᵗ)) · m / denom
/// ```
///
/// The scalars `1 − β₁`, `√(1 − β₂ᵗ)`, `γ/(1 − β₁ᵗ)` and `1 − γλ` are computed in `f64` and rounded to `f32`;
/// everything element-wise is `f32`. The buffers `m`, `v`, `v̂` are PyTorch's `exp_avg`, `exp_avg_sq` and
/// `max_exp_avg_sq`.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    slots: Slots,
}

impl Adam {
    /// An Adam (or, with [`AdamConfig::adamw`], AdamW) optimizer, after checking `config`.
    pub fn new(config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let kinds: &'static [&'static str] =
            if config.amsgrad { &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] } else { &["exp_avg", "exp_avg_sq"] };
        Ok(Adam { config, slots: Slots::new(kinds) })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

/// PyTorch's `lerp` on `f32`: `a + w(b − a)` for `|w| < 0.5`, else `b − (b − a)(1 − w)`.
/// Values per piece of work of a step (a few L1 caches' worth of the four arrays).
const CHUNK: usize = 1 << 13;

/// One piece of one tensor: its values, gradients and moments.
struct Chunk<'a> {
    theta: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    v_max: Option<&'a mut [f32]>,
}

/// One step's constants, rounded as PyTorch rounds them.
#[derive(Clone, Copy)]
struct Rule {
    decay: Option<f32>,
    l2: f32,
    w1: f32,
    b2: f32,
    w2: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

impl Rule {
    /// `m ← lerp(m, g, 1−β₁)`, `v ← β₂v + (1−β₂)g²`, `θ ← θ − γ/(1−β₁ᵗ) · m / (√v̂/√(1−β₂ᵗ) + ε)`, with
    /// `v̂ = max(v_max, v)` for AMSGrad, else `v`.
    fn apply(&self, chunk: Chunk<'_>) {
        let Chunk { theta, g, m, v, mut v_max } = chunk;
        for i in 0..theta.len() {
            let mut t = theta[i];
            if let Some(decay) = self.decay {
                t *= decay;
            }
            let mut gi = g[i];
            if self.l2 != 0.0 {
                gi += self.l2 * t;
            }
            m[i] = lerp(m[i], gi, self.w1);
            v[i] = v[i] * self.b2 + self.w2 * gi * gi;
            let second = match v_max.as_deref_mut() {
                Some(v_max) => {
                    v_max[i] = v_max[i].max(v[i]);
                    v_max[i]
                }
                None => v[i],
            };
            let denom = second.sqrt() / self.bias_correction2_sqrt + self.eps;
            theta[i] = t + self.neg_step_size * m[i] / denom;
        }
    }
}

fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 { a + w * (b - a) } else { b - (b - a) * (1.0 - w) }
}

impl Optimizer for Adam {
    fn kind(&self) -> &'static str {
        if self.config.decoupled_weight_decay { "adamw" } else { "adam" }
    }

    fn step(&mut self, params: &mut [Param<'_>]) -> Result<()> {
        self.config.validate()?;
        let t = self.slots.steps().saturating_add(1) as f64;
        let entries = self.slots.bind(params)?;
        let c = &self.config;
        let (beta1, beta2) = c.betas;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let neg_step_size = (-(c.lr / bias_correction1)) as f32;
        let bias_correction2_sqrt = bias_correction2.powf(0.5) as f32;
        let w1 = (1.0 - beta1) as f32;
        let b2 = beta2 as f32;
        let w2 = (1.0 - beta2) as f32;
        let eps = c.eps as f32;
        let l2 = if c.decoupled_weight_decay { 0.0 } else { c.weight_decay };
        let l2_f32 = l2 as f32;
        let decay = if c.decoupled_weight_decay && c.weight_decay != 0.0 {
            Some((1.0 - c.lr * c.weight_decay) as f32)
        } else {
            None
        };
        let rule = Rule { decay, l2: l2_f32, w1, b2, w2, bias_correction2_sqrt, eps, neg_step_size };
        // The update is elementwise: chunks of every tensor run on all threads, each the same arithmetic in the same
        // order as one loop would, so the result does not depend on the number of threads.
        let mut chunks = Vec::new();
        for (p, entry) in params.iter_mut().zip(entries.iter_mut()) {
            let (exp_avg, rest) = entry.buffers.split_at_mut(1);
            let (exp_avg_sq, max_exp_avg_sq) = rest.split_at_mut(1);
            let mut v_max = max_exp_avg_sq.first_mut().map(|v| v.chunks_mut(CHUNK));
            let parts = p.value.chunks_mut(CHUNK).zip(p.grad.chunks(CHUNK));
            for ((theta, g), (m, v)) in parts.zip(exp_avg[0].chunks_mut(CHUNK).zip(exp_avg_sq[0].chunks_mut(CHUNK))) {
                chunks.push(Chunk { theta, g, m, v, v_max: v_max.as_mut().and_then(Iterator::next) });
            }
        }
        chunks.into_par_iter().for_each(|chunk| rule.apply(chunk));
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

    fn run(config: AdamConfig, theta: f32, grads: &[f32]) -> (f32, Adam) {
        let mut owned = Owned::new(&[("w", &[theta], &[0.0])]);
        let mut adam = Adam::new(config).unwrap();
        for g in grads {
            owned.set_grad(0, &[*g]);
            adam.step(&mut owned.params()).unwrap();
        }
        (owned.value(0)[0], adam)
    }

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        // t = 1: m̂ = g, v̂ = g², so θ ← θ − γ·g/(|g| + ε) ≈ θ − γ·sign(g).
        let (theta, _) = run(AdamConfig::new(0.1), 1.0, &[-4.0]);
        assert_close(&[theta], &[1.1], 1e-6);
    }

    #[test]
    fn two_steps_by_hand() {
        // β = (0.5, 0.5), ε = 0, γ = 1, g = 1 then 3.
        // t=1: m = 0.5, v = 0.5, m̂ = 1, v̂ = 1 → θ = 0 − 1 = −1.
        // t=2: m = 0.25 + 1.5 = 1.75, v = 0.25 + 4.5 = 4.75, bc1 = bc2 = 0.75
        //      θ = −1 − (1/0.75)·1.75 / (√4.75/√0.75)
        let config = AdamConfig::new(1.0).betas(0.5, 0.5).eps(0.0);
        let (theta, adam) = run(config, 0.0, &[1.0, 3.0]);
        let want = -1.0 - (1.75 / 0.75) / (4.75f64.sqrt() / 0.75f64.sqrt());
        assert_close(&[theta], &[want], 1e-6);
        let state: HashMap<_, _> = adam.state_tensors().into_iter().collect();
        assert_eq!(state["exp_avg.w"].data(), &[1.75]);
        assert_eq!(state["exp_avg_sq.w"].data(), &[4.75]);
    }

    #[test]
    fn l2_weight_decay_goes_into_the_gradient() {
        // g = 0 + 0.5·2 = 1 → first step θ = 2 − 0.1·1/(1 + ε).
        let (theta, _) = run(AdamConfig::new(0.1).weight_decay(0.5), 2.0, &[0.0]);
        assert_close(&[theta], &[1.9], 1e-6);
    }

    #[test]
    fn decoupled_weight_decay_shrinks_the_weights_first() {
        // θ = 2·(1 − 0.1·0.5) = 1.9, then the zero gradient moves nothing.
        let (theta, adam) = run(AdamConfig::adamw(0.1).weight_decay(0.5), 2.0, &[0.0]);
        assert_close(&[theta], &[1.9], 1e-6);
        assert_eq!(adam.kind(), "adamw");
    }

    #[test]
    fn amsgrad_keeps_the_largest_second_moment() {
        // β = (0, 0.5): m = g. t=1: v = 8, v̂ = 8; t=2: v = 4 + 0 = 4 → v̂ stays 8.
        let config = AdamConfig::new(1.0).betas(0.0, 0.5).eps(0.0).amsgrad(true);
        let (theta, adam) = run(config, 0.0, &[4.0, 0.0]);
        let state: HashMap<_, _> = adam.state_tensors().into_iter().collect();
        assert_eq!(state["exp_avg_sq.w"].data(), &[4.0]);
        assert_eq!(state["max_exp_avg_sq.w"].data(), &[8.0]);
        // t=1: θ = −4/(√8/√0.5) = −1; t=2: m = 0, θ unchanged.
        assert_close(&[theta], &[-1.0], 1e-6);
    }

    #[test]
    fn lerp_matches_both_branches() {
        assert_eq!(lerp(1.0, 3.0, 0.25), 1.5);
        assert_eq!(lerp(1.0, 3.0, 0.75), 2.5);
    }

    #[test]
    fn invalid_configs_are_errors() {
        assert!(Adam::new(AdamConfig::new(0.1).betas(1.0, 0.9)).is_err());
        assert!(Adam::new(AdamConfig::new(0.1).betas(0.9, -0.1)).is_err());
        assert!(Adam::new(AdamConfig::new(0.1).eps(-1.0)).is_err());
        assert!(Adam::new(AdamConfig::new(f64::NAN)).is_err());
        assert!(Adam::new(AdamConfig::adamw(0.1).weight_decay(-0.1)).is_err());
    }
}
