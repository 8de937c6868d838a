//! Attention pooling: a many-to-one readout that weighs every step's output by a learned relevance, instead of
//! taking the last step (Raffel and Ellis, 2015; the word attention of Yang et al., 2016).

use rand::Rng;

use super::AttentionShape;
use super::mask::AttentionMask;
use super::scoring::{Attention, AttentionCache, AttentionConfig, AttentionInput, Score};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{Layout, SequenceShape};
use crate::params::{Module, Param, ParamMut, ParamRef, Parameter, Trainable};

/// `αₜ = softmax_t(vᵀ tanh(W_q u + W_k hₜ))`, `pooled = Σₜ αₜ hₜ`: the additive attention of a learned query `u`
/// over the steps `hₜ` of a sequence (padding masked).
///
/// Parameters: `query (F)` and the additive score's `query_proj.weight (A, F)`, `key_proj.weight (A, F)`,
/// `energy.weight (1, A)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionPooling<T: Real = f32> {
    query: Parameter<T>,
    attention: Attention<T>,
}

/// What [`AttentionPooling::backward`] needs from its forward pass.
#[derive(Clone, Debug)]
pub struct PoolingCache<T: Real = f32> {
    shape: SequenceShape,
    /// The steps batch-first, `(B, T, F)`, as the attention read them.
    steps: Vec<T>,
    /// The query repeated for every sequence.
    queries: Vec<T>,
    attention: AttentionCache<T>,
    /// The weights `αₜ`, `(B, T)`.
    weights: Vec<T>,
}

impl<T: Real> PoolingCache<T> {
    /// The weights `αₜ` of every sequence's steps, `(B, T)`.
    pub fn weights(&self) -> &[T] {
        &self.weights
    }
}

impl<T: Real> AttentionPooling<T> {
    /// Pooling of `features` values a step through an additive score of `attention_size` units; the query and the
    /// score's layers start uniform in `±1/√fan_in`, as PyTorch initialises linear layers.
    pub fn new(features: usize, attention_size: usize, rng: &mut impl Rng) -> Result<Self> {
        let config = AttentionConfig::new(Score::Additive, features, features).attention_size(attention_size);
        let attention = Attention::new(config, rng)?;
        let k = 1.0 / (features.max(1) as f32).sqrt();
        let query = (0..features).map(|_| <T as Real>::from_f32(rng.random_range(-k..=k))).collect();
        Ok(AttentionPooling { query: Parameter::from_values(query), attention })
    }

    /// Features `F` of a step.
    pub fn features(&self) -> usize {
        self.query.value().len()
    }

    /// The pooled vector of every sequence, `(B, F)`, from a recurrent output of `shape`; with `lengths`, each
    /// sequence pools only its own steps.
    pub fn forward_train(
        &self,
        output: &[T],
        shape: SequenceShape,
        lengths: Option<&[usize]>,
    ) -> Result<(Vec<T>, PoolingCache<T>)> {
        let f = self.features();
        let SequenceShape { steps, batch, features, .. } = shape;
        if features != f || output.len() != steps * batch * f {
            return Err(Error::shape("pooling input", format!("{steps}×{batch}×{f} values"), &[output.len()]));
        }
        let steps_bf = batch_first(output, shape);
        let queries: Vec<T> = (0..batch).flat_map(|_| self.query.value().iter().copied()).collect();
        let mask = lengths.map_or_else(AttentionMask::none, AttentionMask::lengths);
        let input = AttentionInput { query: &queries, keys: &steps_bf, values: &steps_bf };
        let att_shape = AttentionShape { batch, queries: 1, keys: steps };
        let (out, attention) = self.attention.forward_train(input, att_shape, &mask)?;
        let cache = PoolingCache { shape, steps: steps_bf, queries, attention, weights: out.weights };
        Ok((out.context, cache))
    }

    /// The backward of [`AttentionPooling::forward_train`]: from `∂L/∂pooled` (`B × F`), accumulates the
    /// parameters' gradients and returns `∂L/∂output` in the output's layout.
    pub fn backward(&mut self, cache: &PoolingCache<T>, d_pooled: &[T]) -> Result<Vec<T>> {
        let input = AttentionInput { query: &cache.queries, keys: &cache.steps, values: &cache.steps };
        let grads = self.attention.backward(input, &cache.attention, d_pooled, None)?;
        let f = self.features();
        let dq = self.query.grad_mut();
        for row in grads.query.chunks_exact(f.max(1)) {
            dq.iter_mut().zip(row).for_each(|(g, &v)| *g += v);
        }
        let d_steps: Vec<T> = grads.keys.iter().zip(&grads.values).map(|(&k, &v)| k + v).collect();
        Ok(from_batch_first(&d_steps, cache.shape))
    }
}

/// A sequence output as `(B, T, F)`.
fn batch_first<T: Real>(output: &[T], shape: SequenceShape) -> Vec<T> {
    match shape.layout {
        Layout::BatchFirst => output.to_vec(),
        Layout::TimeMajor => transpose_steps(output, shape.steps, shape.batch, shape.features),
    }
}

/// A `(B, T, F)` gradient in the layout of `shape`.
fn from_batch_first<T: Real>(values: &[T], shape: SequenceShape) -> Vec<T> {
    match shape.layout {
        Layout::BatchFirst => values.to_vec(),
        Layout::TimeMajor => transpose_steps(values, shape.batch, shape.steps, shape.features),
    }
}

/// `(A, B, F)` to `(B, A, F)`.
fn transpose_steps<T: Real>(values: &[T], a: usize, b: usize, f: usize) -> Vec<T> {
    let mut out = vec![T::zero(); values.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * f..][..f].copy_from_slice(&values[(i * b + j) * f..][..f]);
        }
    }
    out
}

impl Module for AttentionPooling<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let f = self.features();
        let mut all = vec![ParamRef { name: "query".into(), shape: vec![f], data: self.query.value() }];
        all.extend(self.attention.named_params());
        all
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let f = self.features();
        let mut all = vec![ParamMut { name: "query".into(), shape: vec![f], data: self.query.value_mut() }];
        all.extend(self.attention.named_params_mut());
        all
    }
}

impl Trainable for AttentionPooling<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let f = self.features();
        let (value, grad) = self.query.value_and_grad_mut();
        let mut all = vec![Param { name: "query".into(), shape: vec![f], value, grad }];
        all.extend(self.attention.parameters());
        all
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::gradcheck::check;

    #[test]
    fn gradients_match_finite_differences_in_both_layouts() {
        for layout in [Layout::TimeMajor, Layout::BatchFirst] {
            let mut rng = StdRng::seed_from_u64(2);
            let mut pool = AttentionPooling::<f64>::new(3, 4, &mut rng).unwrap();
            let shape = SequenceShape { steps: 4, batch: 2, features: 3, layout };
            let lengths = [4, 2];
            let mut x: Vec<f64> = (0..24).map(|_| rng.random_range(-1.0..1.0)).collect();
            let g: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
            let loss = |p: &AttentionPooling<f64>, x: &[f64]| {
                let (y, _) = p.forward_train(x, shape, Some(&lengths)).unwrap();
                y.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
            };
            let x0 = x.clone();
            let (_, cache) = pool.forward_train(&x0, shape, Some(&lengths)).unwrap();
            let dx = pool.backward(&cache, &g).unwrap();
            check("dx", &mut x, &dx, 1e-6, |x| loss(&pool, x)).unwrap();
            // Padding gets no gradient.
            let padded = |t: usize, b: usize| match layout {
                Layout::TimeMajor => (t * 2 + b) * 3,
                Layout::BatchFirst => (b * 4 + t) * 3,
            };
            assert!(dx[padded(3, 1)..][..3].iter().all(|&v| v == 0.0));
            let mut q = pool.query.value().to_vec();
            let dq = pool.query.grad().unwrap().to_vec();
            check("query", &mut q, &dq, 1e-6, |q| {
                let mut p = pool.clone();
                p.query.value_mut().copy_from_slice(q);
                loss(&p, &x0)
            })
            .unwrap();
            assert_eq!(cache.weights().len(), 8);
        }
    }

    #[test]
    fn parameters_are_named() {
        let mut pool = AttentionPooling::<f32>::new(3, 5, &mut StdRng::seed_from_u64(0)).unwrap();
        let names: Vec<String> = pool.parameters().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["query", "query_proj.weight", "key_proj.weight", "energy.weight"]);
        let names: Vec<String> = pool.named_params().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["query", "query_proj.weight", "key_proj.weight", "energy.weight"]);
    }
}
