//! Training: optimizers ([`Sgd`], [`Adam`] / AdamW), gradient clipping and learning-rate schedules, each with
//! PyTorch's exact update rule, plus saving and restoring an optimizer's state for checkpoints.
//!
//! An optimizer works on the `&mut [Param]` that [`Trainable::parameters`](crate::Trainable::parameters)
//! returns. Its state (momentum buffers, moment estimates) is kept per parameter *position* and checked against
//! the parameter's name and length on every step: handing it another parameter list is an error, never a panic.
//!
//! ```
//! use recur::optim::{Adam, AdamConfig, Optimizer, Schedule, Scheduler, clip_grad_norm, zero_grad};
//! use recur::Param;
//!
//! let (mut w, mut g) = (vec![1.0f32, -2.0], vec![0.5f32, 0.25]);
//! let mut opt = Adam::new(AdamConfig::adamw(1e-3))?;
//! let warmup = Schedule::linear(0.1, 1.0, 5)?;
//! let mut sched = Scheduler::new(Schedule::sequential(vec![warmup, Schedule::cosine(95, 0.0)?], vec![5])?, 1e-3)?;
//! sched.apply(&mut opt);
//! for _ in 0..3 {
//!     let mut params = vec![Param { name: "w".into(), shape: vec![2], value: &mut w, grad: &mut g }];
//!     // ... forward, backward (accumulating into the gradients) ...
//!     let norm = clip_grad_norm(&mut params, 1.0)?;
//!     assert!(norm.is_finite());
//!     opt.step(&mut params)?;
//!     sched.step();
//!     sched.apply(&mut opt);
//!     zero_grad(&mut params);
//! }
//! assert_eq!(opt.step_count(), 3);
//! # Ok::<(), recur::Error>(())
//! ```
//!
//! # Checkpoints
//!
//! [`Optimizer::state_tensors`] gives every buffer as an `f32` tensor named `<buffer>.<parameter name>` with the
//! parameter's shape, using PyTorch's buffer names: `momentum_buffer.<name>` ([`Sgd`] with momentum),
//! `exp_avg.<name>`, `exp_avg_sq.<name>` and, with AMSGrad, `max_exp_avg_sq.<name>` ([`Adam`]). The scalars live
//! in string metadata ([`Optimizer::state_metadata`]), so that a step count above 2²⁴ survives exactly:
//!
//! | key          | value                                                        |
//! |--------------|--------------------------------------------------------------|
//! | `optim.kind` | `sgd`, `adam` or `adamw` (checked when loading)              |
//! | `optim.step` | steps taken, a decimal integer (PyTorch's `state["step"]`)   |
//! | `optim.lr`   | the current learning rate, a decimal that round-trips an f64 |
//!
//! Before the first step an optimizer has no buffers (PyTorch creates them lazily) and exports none.
//! [`save_state_file`] and [`load_state_file`] write and read exactly this as a safetensors file; the same
//! tensors and metadata can also share a file with the model's parameters, since a load ignores tensors without
//! an optimizer-state prefix.

mod adam;
mod clip;
mod schedule;
mod sgd;
mod state;

use std::collections::HashMap;
use std::path::Path;

pub use adam::{Adam, AdamConfig, AdamW};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use schedule::{Schedule, Scheduler};
pub use sgd::{Sgd, SgdConfig};

use crate::error::{Error, Result};
use crate::model_file::TensorFile;
use crate::params::Param;
use crate::tensor::Tensor;

/// Metadata key of the optimizer's kind.
pub const KIND_KEY: &str = "optim.kind";
/// Metadata key of the step count.
pub const STEP_KEY: &str = "optim.step";
/// Metadata key of the learning rate.
pub const LR_KEY: &str = "optim.lr";

/// An optimizer: PyTorch's `torch.optim.Optimizer` for a single parameter group.
///
/// Hyper-parameters are `f64`, like PyTorch's Python floats: scalar coefficients (`1 − β₁`, `lr/(1 − β₁ᵗ)`, …)
/// are computed in `f64` and rounded to `f32` once, and the element-wise update runs in `f32`, as PyTorch does
/// on `float32` tensors.
pub trait Optimizer {
    /// `sgd`, `adam` or `adamw`: what [`KIND_KEY`] holds.
    fn kind(&self) -> &'static str;

    /// One update of every parameter from its gradient (`optimizer.step()`), then the step count goes up by one.
    ///
    /// Gradients are read, never modified. Fails, changing nothing, when the learning rate is negative or not
    /// finite, a gradient is not as long as its parameter, or the parameters (count, names, lengths) are not the
    /// ones of the previous steps.
    fn step(&mut self, params: &mut [Param<'_>]) -> Result<()>;

    /// The learning rate used by the next step.
    fn lr(&self) -> f64;

    /// Sets the learning rate (what a schedule does). A negative or non-finite value makes the next
    /// [`step`](Optimizer::step) fail.
    fn set_lr(&mut self, lr: f64);

    /// Number of steps taken (PyTorch's `state["step"]`), including those restored from a checkpoint.
    fn step_count(&self) -> u64;

    /// Every state buffer as a tensor named `<buffer>.<parameter name>` (see the [module docs](self)); empty
    /// before the first step.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;

    /// Replaces the state with the buffers in `tensors` for `params` and the step count `step_count`.
    ///
    /// `params` fixes the order and names (their values and gradients are not touched). With `step_count == 0`
    /// no buffer is expected; otherwise every buffer this optimizer keeps must be present with its parameter's
    /// shape. Tensors without an optimizer-state prefix are ignored; a missing, mis-shaped or unexpected state
    /// tensor is an error, and then nothing changes.
    fn load_state_tensors(
        &mut self,
        params: &[Param<'_>],
        tensors: &HashMap<String, Tensor>,
        step_count: u64,
    ) -> Result<()>;

    /// The scalar state as metadata strings: [`KIND_KEY`], [`STEP_KEY`] and [`LR_KEY`].
    fn state_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (KIND_KEY.to_string(), self.kind().to_string()),
            (STEP_KEY.to_string(), self.step_count().to_string()),
            (LR_KEY.to_string(), self.lr().to_string()),
        ])
    }

    /// Restores the state written by [`state_tensors`](Optimizer::state_tensors) and
    /// [`state_metadata`](Optimizer::state_metadata), like PyTorch's `optimizer.load_state_dict`.
    ///
    /// The metadata must name this optimizer's kind and a step count; the learning rate is restored when present.
    /// Fails, changing nothing, on anything malformed or inconsistent.
    fn load_state(
        &mut self,
        params: &[Param<'_>],
        tensors: &HashMap<String, Tensor>,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let kind = metadata.get(KIND_KEY).map(String::as_str);
        if kind != Some(self.kind()) {
            return Err(Error::config(format!(
                "optimizer state is for `{}`, not `{}`",
                kind.unwrap_or("(no kind)"),
                self.kind()
            )));
        }
        let step = metadata
            .get(STEP_KEY)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Error::config(format!("optimizer state lacks an integer `{STEP_KEY}`")))?;
        let lr = match metadata.get(LR_KEY) {
            None => None,
            Some(s) => match s.parse::<f64>() {
                Ok(lr) if lr.is_finite() && lr >= 0.0 => Some(lr),
                _ => {
                    return Err(Error::config(format!("optimizer state has an invalid `{LR_KEY}`: {s:?}")));
                }
            },
        };
        self.load_state_tensors(params, tensors, step)?;
        if let Some(lr) = lr {
            self.set_lr(lr);
        }
        Ok(())
    }
}

/// Sets every gradient to zero, like PyTorch's `optimizer.zero_grad(set_to_none=False)`.
pub fn zero_grad(params: &mut [Param<'_>]) {
    for p in params {
        p.grad.fill(0.0);
    }
}

/// Writes an optimizer's state (tensors and metadata, see the [module docs](self)) as a safetensors file,
/// atomically.
pub fn save_state_file(optimizer: &dyn Optimizer, path: impl AsRef<Path>) -> Result<()> {
    TensorFile::write(path, &optimizer.state_tensors(), &optimizer.state_metadata())
}

/// Restores an optimizer's state from a safetensors file written by [`save_state_file`] (or any file holding the
/// same tensors and metadata), for `params` in their training order.
pub fn load_state_file(optimizer: &mut dyn Optimizer, params: &[Param<'_>], path: impl AsRef<Path>) -> Result<()> {
    let file = TensorFile::read(path)?;
    optimizer.load_state(params, &file.tensors, &file.metadata)
}

/// Checks a hyper-parameter: finite and at least `min`.
pub(crate) fn check_at_least(name: &str, value: f64, min: f64) -> Result<()> {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(Error::config(format!("{name} must be a finite number >= {min}, got {value}")))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::params::Param;

    /// Owned parameters for tests: `(name, values, gradients)`.
    pub struct Owned(pub Vec<(String, Vec<f32>, Vec<f32>)>);

    impl Owned {
        pub fn new(params: &[(&str, &[f32], &[f32])]) -> Self {
            Owned(params.iter().map(|(n, v, g)| (n.to_string(), v.to_vec(), g.to_vec())).collect())
        }

        pub fn params(&mut self) -> Vec<Param<'_>> {
            self.0
                .iter_mut()
                .map(|(name, value, grad)| Param { name: name.clone(), shape: vec![value.len()], value, grad })
                .collect()
        }

        pub fn value(&self, i: usize) -> &[f32] {
            &self.0[i].1
        }

        pub fn set_grad(&mut self, i: usize, grad: &[f32]) {
            self.0[i].2.copy_from_slice(grad);
        }
    }

    pub fn assert_close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::Owned;
    use super::*;

    #[test]
    fn zero_grad_clears_every_gradient() {
        let mut owned = Owned::new(&[("a", &[1.0], &[2.0]), ("b", &[1.0, 2.0], &[3.0, -4.0])]);
        zero_grad(&mut owned.params());
        assert!(owned.0.iter().all(|(_, _, g)| g.iter().all(|x| *x == 0.0)));
    }

    #[test]
    fn load_state_checks_kind_step_and_lr() {
        let mut owned = Owned::new(&[("w", &[1.0, 2.0], &[0.5, -0.5])]);
        let mut sgd = Sgd::new(SgdConfig::new(0.1).momentum(0.9)).unwrap();
        sgd.step(&mut owned.params()).unwrap();
        let tensors: HashMap<_, _> = sgd.state_tensors().into_iter().collect();
        let meta = sgd.state_metadata();
        assert_eq!(meta[STEP_KEY], "1");
        assert_eq!(meta[KIND_KEY], "sgd");
        assert_eq!(meta[LR_KEY].parse::<f64>().unwrap(), 0.1);

        let mut adam = Adam::new(AdamConfig::new(0.1)).unwrap();
        let err = adam.load_state(&owned.params(), &tensors, &meta).unwrap_err();
        assert!(err.to_string().contains("is for `sgd`, not `adam`"), "{err}");

        let mut fresh = Sgd::new(SgdConfig::new(0.5).momentum(0.9)).unwrap();
        let mut bad = meta.clone();
        bad.insert(STEP_KEY.into(), "-1".into());
        assert!(fresh.load_state(&owned.params(), &tensors, &bad).is_err());
        bad.insert(STEP_KEY.into(), "1".into());
        bad.insert(LR_KEY.into(), "nan".into());
        assert!(fresh.load_state(&owned.params(), &tensors, &bad).is_err());
        assert_eq!(fresh.step_count(), 0, "nothing changes on error");
        assert_eq!(fresh.lr(), 0.5);

        fresh.load_state(&owned.params(), &tensors, &meta).unwrap();
        assert_eq!(fresh.step_count(), 1);
        assert_eq!(fresh.lr(), 0.1);
    }

    #[test]
    fn a_huge_restored_step_count_does_not_overflow() {
        let mut owned = Owned::new(&[("w", &[1.0], &[0.5])]);
        let meta =
            HashMap::from([(KIND_KEY.to_string(), "adam".to_string()), (STEP_KEY.to_string(), u64::MAX.to_string())]);
        let tensors = HashMap::from([
            ("exp_avg.w".to_string(), Tensor::zeros([1])),
            ("exp_avg_sq.w".to_string(), Tensor::zeros([1])),
        ]);
        let mut adam = Adam::new(AdamConfig::new(0.1)).unwrap();
        adam.load_state(&owned.params(), &tensors, &meta).unwrap();
        adam.step(&mut owned.params()).unwrap();
        assert_eq!(adam.step_count(), u64::MAX);
        assert!(owned.value(0)[0].is_finite());
        let mut sgd = Sgd::new(SgdConfig::new(0.1)).unwrap();
        sgd.load_state_tensors(&owned.params(), &HashMap::new(), u64::MAX).unwrap();
        sgd.step(&mut owned.params()).unwrap();
        assert_eq!(sgd.step_count(), u64::MAX);
    }

    #[test]
    fn state_file_round_trip() {
        let mut owned = Owned::new(&[("w", &[1.0, 2.0], &[0.5, -0.5])]);
        let mut adam = Adam::new(AdamConfig::new(0.01).amsgrad(true)).unwrap();
        adam.step(&mut owned.params()).unwrap();
        let dir = std::env::temp_dir().join(format!("recur-optim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("adam.safetensors");
        save_state_file(&adam, &path).unwrap();
        let mut fresh = Adam::new(AdamConfig::new(0.01).amsgrad(true)).unwrap();
        load_state_file(&mut fresh, &owned.params(), &path).unwrap();
        assert_eq!(fresh.state_tensors(), adam.state_tensors());
        assert_eq!(fresh.step_count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
