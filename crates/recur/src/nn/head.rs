//! Heads: how a recurrent layer's output becomes predictions. Many-to-one heads read one vector per sequence
//! (the last step, or the mean over time); a many-to-many head reads every step. Each is a readout followed by a
//! [`Linear`] layer, with an explicit backward.

use rand::Rng;

use super::Linear;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable};

/// Which steps of a `(T, B, F)` recurrent output a head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// Many-to-one: the last step, `output[T−1]` (PyTorch's `output[:, -1]` with batch-first).
    Last,
    /// Many-to-one: the mean over time, `(1/T) Σ_t output[t]`.
    Mean,
    /// Many-to-many: every step, one prediction per `(t, b)`.
    EveryStep,
}

/// How a sequence tensor is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `(T, B, F)`.
    TimeMajor,
    /// `(B, T, F)`.
    BatchFirst,
}

/// Sizes of a recurrent output a head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceShape {
    /// Time steps `T`.
    pub steps: usize,
    /// Batch size `B`.
    pub batch: usize,
    /// Features `F` per step.
    pub features: usize,
    /// The layout of the data.
    pub layout: Layout,
}

impl SequenceShape {
    fn index(&self, t: usize, b: usize) -> usize {
        match self.layout {
            Layout::TimeMajor => t * self.batch + b,
            Layout::BatchFirst => b * self.steps + t,
        }
    }

    fn len(&self) -> usize {
        self.steps * self.batch * self.features
    }
}

/// A readout followed by a linear layer: `y = W · readout(output) + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Head<T: Real = f32> {
    readout: Readout,
    linear: Linear<T>,
}

/// What [`Head::forward`] keeps for [`Head::backward`].
#[derive(Clone, Debug)]
pub struct HeadCache<T> {
    shape: SequenceShape,
    lengths: Option<Vec<usize>>,
    features: Vec<T>,
}

impl Head<f32> {
    /// A head reading `features` values per step into `outputs` values, with PyTorch's `nn.Linear` init.
    pub fn new(readout: Readout, features: usize, outputs: usize, rng: &mut impl Rng) -> Result<Self> {
        Ok(Head { readout, linear: Linear::new(features, outputs, true, rng)? })
    }
}

impl<T: Real> Head<T> {
    /// A head around an existing linear layer.
    pub fn from_linear(readout: Readout, linear: Linear<T>) -> Self {
        Head { readout, linear }
    }

    /// The readout.
    pub fn readout(&self) -> Readout {
        self.readout
    }

    /// The linear layer.
    pub fn linear(&self) -> &Linear<T> {
        &self.linear
    }

    /// The linear layer, mutably.
    pub fn linear_mut(&mut self) -> &mut Linear<T> {
        &mut self.linear
    }

    /// Rows of predictions: `B` for a many-to-one readout, `T·B` (in the output's own order) for every step.
    pub fn rows(&self, shape: &SequenceShape) -> usize {
        match self.readout {
            Readout::Last | Readout::Mean => shape.batch,
            Readout::EveryStep => shape.steps * shape.batch,
        }
    }

    /// Predictions, `rows × outputs`, from a recurrent output of `shape`. With `lengths` (one per sequence, in
    /// `1..=T`), a many-to-one readout reads each sequence's own last valid step, or its mean over its valid
    /// steps; an every-step readout still predicts every row (mask the padded ones in the loss).
    pub fn forward(
        &self,
        output: &[T],
        shape: SequenceShape,
        lengths: Option<&[usize]>,
    ) -> Result<(Vec<T>, HeadCache<T>)> {
        if output.len() != shape.len() || shape.steps == 0 {
            return Err(Error::shape(
                "head input",
                format!(
                    "{} values of a T×B×F = {}×{}×{} sequence with T ≥ 1",
                    shape.len(),
                    shape.steps,
                    shape.batch,
                    shape.features
                ),
                &[output.len()],
            ));
        }
        if shape.features != self.linear.in_features() {
            return Err(Error::shape(
                "head input features",
                format!("{}", self.linear.in_features()),
                &[shape.features],
            ));
        }
        if let Some(lengths) = lengths {
            if lengths.len() != shape.batch {
                return Err(Error::shape("lengths", format!("[{}]", shape.batch), &[lengths.len()]));
            }
            if let Some(&n) = lengths.iter().find(|&&n| n == 0 || n > shape.steps) {
                return Err(Error::Index {
                    what: "sequence length".into(),
                    index: n.to_string(),
                    valid: format!("1..={}", shape.steps),
                });
            }
        }
        let length = |b: usize| lengths.map_or(shape.steps, |l| l[b]);
        let f = shape.features;
        let features = match self.readout {
            Readout::EveryStep => output.to_vec(),
            Readout::Last => (0..shape.batch)
                .flat_map(|b| {
                    let row = shape.index(length(b) - 1, b);
                    output[row * f..(row + 1) * f].iter().copied()
                })
                .collect(),
            Readout::Mean => {
                let mut pooled = vec![T::zero(); shape.batch * f];
                for b in 0..shape.batch {
                    let scale = T::one() / T::from_usize(length(b)).expect("a step count fits in a float");
                    for t in 0..length(b) {
                        let row = shape.index(t, b);
                        for (p, &v) in pooled[b * f..(b + 1) * f].iter_mut().zip(&output[row * f..(row + 1) * f]) {
                            *p += v * scale;
                        }
                    }
                }
                pooled
            }
        };
        let y = self.linear.forward(&features, self.rows(&shape))?;
        Ok((y, HeadCache { shape, lengths: lengths.map(<[usize]>::to_vec), features }))
    }

    /// From `∂L/∂y` to `∂L/∂output` (in the output's shape), accumulating the linear layer's gradients.
    pub fn backward(&mut self, cache: &HeadCache<T>, dy: &[T]) -> Result<Vec<T>> {
        let shape = cache.shape;
        let f = shape.features;
        let d_features = self.linear.backward(&cache.features, dy, self.rows(&shape))?;
        Ok(match self.readout {
            Readout::EveryStep => d_features,
            Readout::Last | Readout::Mean => {
                let mut d_output = vec![T::zero(); shape.len()];
                for b in 0..shape.batch {
                    let length = cache.lengths.as_ref().map_or(shape.steps, |l| l[b]);
                    let scale = T::one() / T::from_usize(length).expect("a step count fits in a float");
                    let g = &d_features[b * f..(b + 1) * f];
                    let steps = if self.readout == Readout::Last { length - 1..length } else { 0..length };
                    for t in steps {
                        let row = shape.index(t, b);
                        for (d, &v) in d_output[row * f..(row + 1) * f].iter_mut().zip(g) {
                            *d = if self.readout == Readout::Last { v } else { v * scale };
                        }
                    }
                }
                d_output
            }
        })
    }
}

impl Module for Head<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        self.linear.named_params()
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.linear.named_params_mut()
    }
}

impl Trainable for Head<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        self.linear.parameters()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::gradcheck;

    fn head64(readout: Readout, features: usize, outputs: usize) -> Head<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let linear: Linear<f64> = Linear::new(features, outputs, true, &mut rng).unwrap();
        Head::from_linear(readout, linear)
    }

    #[test]
    fn backward_matches_finite_differences_for_every_readout_and_layout() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for readout in [Readout::Last, Readout::Mean, Readout::EveryStep] {
            for (layout, lengths) in [
                (Layout::TimeMajor, None),
                (Layout::BatchFirst, None),
                (Layout::TimeMajor, Some(vec![2, 4, 1])),
                (Layout::BatchFirst, Some(vec![3, 1, 4])),
            ] {
                let shape = SequenceShape { steps: 4, batch: 3, features: 5, layout };
                let mut head = head64(readout, 5, 2);
                let mut x: Vec<f64> = (0..shape.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let rows = head.rows(&shape);
                let g: Vec<f64> = (0..rows * 2).map(|_| rng.random_range(-1.0..1.0)).collect();
                let (_, cache) = head.forward(&x, shape, lengths.as_deref()).unwrap();
                let dx = head.backward(&cache, &g).unwrap();
                let probe = head.clone();
                gradcheck::check(&format!("{readout:?} {layout:?} {lengths:?}"), &mut x, &dx, 1e-7, |x| {
                    let (y, _) = probe.forward(x, shape, lengths.as_deref()).unwrap();
                    y.iter().zip(&g).map(|(a, b)| a * b).sum()
                })
                .unwrap();
            }
        }
    }

    #[test]
    fn last_reads_the_last_step_in_either_layout() {
        let mut head = head64(Readout::Last, 1, 1);
        head.linear_mut().weight_mut()[0] = 1.0;
        head.linear_mut().bias_mut().unwrap()[0] = 0.0;
        // T = 3, B = 2, F = 1; value = 10 t + b.
        let time_major = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        let shape = SequenceShape { steps: 3, batch: 2, features: 1, layout: Layout::TimeMajor };
        assert_eq!(head.forward(&time_major, shape, None).unwrap().0, vec![20.0, 21.0]);
        assert_eq!(head.forward(&time_major, shape, Some(&[2, 1])).unwrap().0, vec![10.0, 1.0]);
        let batch_first = [0.0, 10.0, 20.0, 1.0, 11.0, 21.0];
        let shape = SequenceShape { layout: Layout::BatchFirst, ..shape };
        assert_eq!(head.forward(&batch_first, shape, None).unwrap().0, vec![20.0, 21.0]);
        assert_eq!(head.forward(&batch_first, shape, Some(&[1, 3])).unwrap().0, vec![0.0, 21.0]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let head = head64(Readout::Mean, 3, 1);
        let shape = SequenceShape { steps: 2, batch: 2, features: 3, layout: Layout::TimeMajor };
        assert!(head.forward(&[0.0; 11], shape, None).is_err());
        assert!(head.forward(&[0.0; 12], shape, Some(&[1, 3])).is_err());
        assert!(head.forward(&[0.0; 12], shape, Some(&[1])).is_err());
        let err = head.forward(&[0.0; 8], SequenceShape { features: 2, ..shape }, None).unwrap_err();
        assert!(err.to_string().contains("head input features"), "{err}");
    }
}
