//! Inverted dropout, PyTorch's `nn.Dropout`: zeroes elements at random while training and rescales the rest, so
//! that evaluation is the identity.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::kernels::Real;

/// An inverted-dropout mask of `len` values drawn from `rng`: each is `1/(1−p)` with probability `1−p`, else 0
/// (all 0 when `p = 1`).
pub fn dropout_mask<T: Real>(len: usize, p: f64, rng: &mut impl Rng) -> Vec<T> {
    let keep = 1.0 - p;
    let scale = if keep > 0.0 { T::from_f64(1.0 / keep).expect("a finite scale") } else { T::zero() };
    (0..len).map(|_| if rng.random::<f64>() < keep { scale } else { T::zero() }).collect()
}

/// Inverted dropout with probability `p`, PyTorch's `nn.Dropout(p)`:
///
/// `y = x ⊙ m`, with `m_i = 1/(1−p)` with probability `1−p` and `0` otherwise, drawn anew by every training
/// forward; `y = x` in evaluation mode.
///
/// The mask of the last forward is kept for [`Dropout::backward`], `∂L/∂x = ∂L/∂y ⊙ m`. With `p = 1` every
/// element is dropped (PyTorch returns zeros rather than dividing by zero). The random stream is recur's own,
/// so masks do not reproduce PyTorch's, only their distribution.
#[derive(Clone, Debug)]
pub struct Dropout<T: Real = f32> {
    p: f64,
    training: bool,
    rng: StdRng,
    mask: Vec<T>,
    /// Whether the last forward applied `mask` (training) or was the identity (evaluation).
    masked: bool,
}

impl<T: Real> Dropout<T> {
    /// Dropout with probability `p ∈ [0, 1]`, in training mode (as a fresh PyTorch module), with its random
    /// stream seeded from `seed`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        Self::with_rng(p, StdRng::seed_from_u64(seed))
    }

    /// Dropout drawing its masks from `rng`.
    pub fn with_rng(p: f64, rng: StdRng) -> Result<Self> {
        // `contains` is false for NaN, which is rejected with the rest.
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(format!("dropout probability must be in [0, 1], found {p}")));
        }
        Ok(Dropout { p, training: true, rng, mask: Vec::new(), masked: false })
    }

    /// The probability of dropping an element.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether forward drops elements (training) or is the identity (evaluation).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Switches between training (`true`) and evaluation (`false`), as PyTorch's `module.train(mode)`.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// The mask `m` of the last training forward (empty before any, or after an evaluation forward).
    pub fn mask(&self) -> &[T] {
        if self.masked { &self.mask } else { &[] }
    }

    /// `y = x ⊙ m` with a fresh mask while training, `y = x` in evaluation.
    pub fn forward(&mut self, x: &[T]) -> Vec<T> {
        let mut y = vec![T::zero(); x.len()];
        self.forward_into(x, &mut y).expect("the output buffer has the input's length");
        y
    }

    /// [`Dropout::forward`] into a caller's buffer `y` of the same length as `x`.
    pub fn forward_into(&mut self, x: &[T], y: &mut [T]) -> Result<()> {
        if y.len() != x.len() {
            return Err(Error::shape("output", format!("[{}] (the input's length)", x.len()), &[y.len()]));
        }
        // p = 0 keeps everything, like evaluation; skipping the mask also skips the random draws.
        self.masked = self.training && self.p > 0.0;
        if !self.masked {
            y.copy_from_slice(x);
            return Ok(());
        }
        self.mask = dropout_mask(x.len(), self.p, &mut self.rng);
        for ((y, &x), &m) in y.iter_mut().zip(x).zip(&self.mask) {
            *y = x * m;
        }
        Ok(())
    }

    /// The backward of the last [`Dropout::forward`]: `∂L/∂x = ∂L/∂y ⊙ m` (or `∂L/∂y` after an evaluation forward).
    pub fn backward(&self, dy: &[T]) -> Result<Vec<T>> {
        let mut dx = vec![T::zero(); dy.len()];
        self.backward_into(dy, &mut dx)?;
        Ok(dx)
    }

    /// [`Dropout::backward`] into a caller's buffer `dx` of the same length as `dy`.
    pub fn backward_into(&self, dy: &[T], dx: &mut [T]) -> Result<()> {
        if dx.len() != dy.len() {
            return Err(Error::shape(
                "input gradient",
                format!("[{}] (the output gradient's length)", dy.len()),
                &[dx.len()],
            ));
        }
        if !self.masked {
            dx.copy_from_slice(dy);
            return Ok(());
        }
        if dy.len() != self.mask.len() {
            return Err(Error::shape(
                "output gradient",
                format!("[{}] (the last forward's length)", self.mask.len()),
                &[dy.len()],
            ));
        }
        for ((dx, &dy), &m) in dx.iter_mut().zip(dy).zip(&self.mask) {
            *dx = dy * m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_fraction_scaled() {
        let mut d = Dropout::<f64>::new(0.25, 1).unwrap();
        let x = vec![1.0; 20_000];
        let y = d.forward(&x);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / x.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-15));
        assert_eq!(d.mask(), &y[..], "with x = 1 the output is the mask");
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((mean - 1.0).abs() < 0.03, "expectation preserved: {mean}");
    }

    #[test]
    fn backward_multiplies_by_the_mask() {
        let mut d = Dropout::<f64>::new(0.5, 7).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let y = d.forward(&x);
        let dy = [1.0; 8];
        let dx = d.backward(&dy).unwrap();
        for i in 0..8 {
            // y is linear in x with slope m, which is what dx must be.
            assert_eq!(dx[i], y[i] / x[i]);
            assert!(dx[i] == 0.0 || dx[i] == 2.0);
        }
        let err = d.backward(&[1.0; 3]).unwrap_err();
        assert!(err.to_string().contains("the last forward's length"), "{err}");
    }

    #[test]
    fn seeded_masks_repeat_and_differ_between_calls() {
        let x = [1.0f32; 64];
        let mut a = Dropout::new(0.5, 3).unwrap();
        let mut b = Dropout::new(0.5, 3).unwrap();
        let first = a.forward(&x);
        assert_eq!(first, b.forward(&x));
        assert_ne!(first, a.forward(&x));
    }

    #[test]
    fn evaluation_and_edge_probabilities() {
        let x = [1.0f32, -2.0, 3.0];
        let mut d = Dropout::new(0.9, 0).unwrap();
        d.set_training(false);
        assert_eq!(d.forward(&x), x);
        assert!(d.mask().is_empty());
        assert_eq!(d.backward(&[5.0, 5.0]).unwrap(), vec![5.0, 5.0]);

        let mut none = Dropout::new(0.0, 0).unwrap();
        assert_eq!(none.forward(&x), x);

        let mut all = Dropout::new(1.0, 0).unwrap();
        assert_eq!(all.forward(&x), vec![0.0; 3]);
        assert_eq!(all.backward(&[1.0; 3]).unwrap(), vec![0.0; 3]);

        for p in [-0.1, 1.5, f64::NAN] {
            let err = Dropout::<f32>::new(p, 0).unwrap_err();
            assert!(err.to_string().contains("dropout probability"), "{err}");
        }
    }
}
