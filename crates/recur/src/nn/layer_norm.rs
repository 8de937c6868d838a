//! Layer normalisation over the last dimension, PyTorch's `nn.LayerNorm`, with its backward.

use super::check_len;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable};
use crate::tensor::Tensor;

/// Layer normalisation, PyTorch's `nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias)` with a single
/// `normalized_shape`:
///
/// `y = (x − E[x]) / √(Var[x] + ε) · w + b`
///
/// over each row of `normalized_shape` values, with the biased variance (divided by the row's size, as PyTorch
/// does). With `elementwise_affine` the layer has the `weight w` (initialised to ones) and, unless `bias` is
/// false (PyTorch 2.1's `bias=False`), the `bias b` (initialised to zeros), both of shape `(normalized_shape)`,
/// under the `state_dict` names `weight` and `bias`. Without `elementwise_affine` it has no parameters and
/// `bias` is ignored, as in PyTorch.
///
/// PyTorch's multi-dimensional `normalized_shape` (normalising over several trailing dimensions at once) is not
/// supported: normalise over their product by flattening them into one row of that size, and note that the
/// affine parameters then have that flattened shape.
///
/// The statistics are computed in two passes over the row (mean first, then the mean squared deviation from
/// it), in `T`, which keeps them accurate for rows far from zero.
///
/// Training: [`LayerNorm::forward_train`] keeps each row's mean and `1/σ` in a [`LayerNormCache`], which
/// [`LayerNorm::backward`] reads with the same input. Each parameter's gradient is stored beside it and a backward
/// adds into it, as PyTorch accumulates `.grad`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm<T: Real = f32> {
    normalized_shape: usize,
    eps: f64,
    weight: Option<Vec<T>>,
    bias: Option<Vec<T>>,
    weight_grad: Option<Vec<T>>,
    bias_grad: Option<Vec<T>>,
}

/// What a training forward of [`LayerNorm`] keeps for its backward: the mean and the inverse standard deviation
/// `1/σ = 1/√(Var[x] + ε)` of every row.
///
/// One cache can be reused from one step to the next: [`LayerNorm::forward_train_into`] resizes it, keeping its
/// allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerNormCache<T: Real = f32> {
    features: usize,
    mean: Vec<T>,
    rstd: Vec<T>,
}

impl<T: Real> LayerNormCache<T> {
    /// An empty cache, to be filled by [`LayerNorm::forward_train_into`].
    pub fn new() -> Self {
        LayerNormCache { features: 0, mean: Vec::new(), rstd: Vec::new() }
    }

    /// Rows of the forward that filled it.
    pub fn rows(&self) -> usize {
        self.mean.len()
    }

    /// Each row's mean.
    pub fn mean(&self) -> &[T] {
        &self.mean
    }

    /// Each row's `1/σ = 1/√(Var[x] + ε)` (biased variance).
    pub fn rstd(&self) -> &[T] {
        &self.rstd
    }
}

impl<T: Real> LayerNorm<T> {
    /// `nn.LayerNorm(normalized_shape)`: `eps = 1e-5`, with a weight (ones) and a bias (zeros).
    pub fn new(normalized_shape: usize) -> Self {
        Self::with_options(normalized_shape, 1e-5, true, true).expect("the default eps is valid")
    }

    /// `nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias)`.
    ///
    /// `eps` must be finite and non-negative (`eps = 0` is allowed, as in PyTorch, and divides by zero on a
    /// constant row). A zero `normalized_shape` is allowed: rows are empty, and so is the output.
    pub fn with_options(normalized_shape: usize, eps: f64, elementwise_affine: bool, bias: bool) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::config(format!("LayerNorm eps must be finite and non-negative, found {eps}")));
        }
        let ones = || vec![T::one(); normalized_shape];
        let zeros = || vec![T::zero(); normalized_shape];
        let with_bias = elementwise_affine && bias;
        Ok(LayerNorm {
            normalized_shape,
            eps,
            weight: elementwise_affine.then(ones),
            bias: with_bias.then(zeros),
            weight_grad: elementwise_affine.then(zeros),
            bias_grad: with_bias.then(zeros),
        })
    }

    /// Size of each normalised row.
    pub fn normalized_shape(&self) -> usize {
        self.normalized_shape
    }

    /// `ε`, added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Whether the layer has a weight (and possibly a bias): PyTorch's `elementwise_affine`.
    pub fn elementwise_affine(&self) -> bool {
        self.weight.is_some()
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    /// `w`, when the layer is affine.
    pub fn weight(&self) -> Option<&[T]> {
        self.weight.as_deref()
    }

    /// `w`, mutably.
    pub fn weight_mut(&mut self) -> Option<&mut [T]> {
        self.weight.as_deref_mut()
    }

    /// `b`, when the layer has one.
    pub fn bias(&self) -> Option<&[T]> {
        self.bias.as_deref()
    }

    /// `b`, mutably.
    pub fn bias_mut(&mut self) -> Option<&mut [T]> {
        self.bias.as_deref_mut()
    }

    /// `∂L/∂w` accumulated so far, when the layer is affine.
    pub fn weight_grad(&self) -> Option<&[T]> {
        self.weight_grad.as_deref()
    }

    /// `∂L/∂b` accumulated so far, when the layer has a bias.
    pub fn bias_grad(&self) -> Option<&[T]> {
        self.bias_grad.as_deref()
    }

    /// Sets both gradients to zero.
    pub fn zero_grads(&mut self) {
        for g in [&mut self.weight_grad, &mut self.bias_grad].into_iter().flatten() {
            g.fill(T::zero());
        }
    }

    /// The normalised rows for `rows` rows: `x` and the result are `rows × normalized_shape`. Keeps nothing for a
    /// backward (use [`LayerNorm::forward_train`] for that).
    pub fn forward(&self, x: &[T], rows: usize) -> Result<Vec<T>> {
        let mut y = vec![T::zero(); rows.saturating_mul(self.normalized_shape)];
        self.forward_into(x, rows, &mut y)?;
        Ok(y)
    }

    /// [`LayerNorm::forward`] into a caller's buffer `y` (`rows × normalized_shape`), without allocating.
    pub fn forward_into(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()> {
        self.check_io(x, rows, y)?;
        for r in 0..rows {
            self.normalize_row(r, x, y);
        }
        Ok(())
    }

    /// [`LayerNorm::forward`] that also returns what [`LayerNorm::backward`] needs (each row's mean and `1/σ`).
    pub fn forward_train(&self, x: &[T], rows: usize) -> Result<(Vec<T>, LayerNormCache<T>)> {
        let mut y = vec![T::zero(); rows.saturating_mul(self.normalized_shape)];
        let mut cache = LayerNormCache::new();
        self.forward_train_into(x, rows, &mut y, &mut cache)?;
        Ok((y, cache))
    }

    /// [`LayerNorm::forward_train`] into a caller's buffer `y` (`rows × normalized_shape`) and cache, which is
    /// resized to `rows` (allocating only when it grows past its capacity). The cache is left unchanged when a
    /// shape is wrong.
    pub fn forward_train_into(&self, x: &[T], rows: usize, y: &mut [T], cache: &mut LayerNormCache<T>) -> Result<()> {
        self.check_io(x, rows, y)?;
        cache.features = self.normalized_shape;
        cache.mean.resize(rows, T::zero());
        cache.rstd.resize(rows, T::zero());
        for r in 0..rows {
            let (mean, rstd) = self.normalize_row(r, x, y);
            cache.mean[r] = mean;
            cache.rstd[r] = rstd;
        }
        Ok(())
    }

    /// The backward of [`LayerNorm::forward_train`] for the same `x` and the cache it filled: from
    /// `dy = ∂L/∂y` (`rows × normalized_shape`), with `x̂ = (x − mean)/σ` and `ĝ = dy ⊙ w` (`ĝ = dy` without a
    /// weight), accumulates
    ///
    /// `∂L/∂w += Σ_rows dy ⊙ x̂`, `∂L/∂b += Σ_rows dy`
    ///
    /// and returns `∂L/∂x = (1/σ) (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` (means over each row), `rows × normalized_shape`.
    pub fn backward(&mut self, x: &[T], cache: &LayerNormCache<T>, dy: &[T], rows: usize) -> Result<Vec<T>> {
        let mut dx = vec![T::zero(); rows.saturating_mul(self.normalized_shape)];
        self.backward_into(x, cache, dy, rows, Some(&mut dx))?;
        Ok(dx)
    }

    /// [`LayerNorm::backward`] writing `∂L/∂x` into a caller's buffer (`rows × normalized_shape`), or skipping it
    /// when `dx` is `None` (only the parameters' gradients are wanted).
    ///
    /// Nothing is accumulated when a shape is wrong, or when the cache holds another number of rows or comes from
    /// a layer of another size.
    pub fn backward_into(
        &mut self,
        x: &[T],
        cache: &LayerNormCache<T>,
        dy: &[T],
        rows: usize,
        mut dx: Option<&mut [T]>,
    ) -> Result<()> {
        let n = self.normalized_shape;
        check_len("input", x.len(), rows, n)?;
        check_len("output gradient", dy.len(), rows, n)?;
        if let Some(dx) = &dx {
            check_len("input gradient", dx.len(), rows, n)?;
        }
        if cache.rows() != rows || cache.features != n {
            return Err(Error::shape(
                "LayerNorm cache",
                format!("the statistics of a forward of [{rows}, {n}]"),
                &[cache.rows(), cache.features],
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let inv_n = T::one() / from_usize::<T>(n);
        for r in 0..rows {
            let (mean, rstd) = (cache.mean[r], cache.rstd[r]);
            let xr = &x[r * n..(r + 1) * n];
            let dyr = &dy[r * n..(r + 1) * n];
            // The row's sums Σ ĝ and Σ ĝ ⊙ x̂, and the parameters' gradients, in one pass.
            let (mut sum_g, mut sum_gx) = (T::zero(), T::zero());
            for j in 0..n {
                let xhat = (xr[j] - mean) * rstd;
                let g = match &self.weight {
                    Some(w) => dyr[j] * w[j],
                    None => dyr[j],
                };
                sum_g += g;
                sum_gx += g * xhat;
                if let Some(dw) = &mut self.weight_grad {
                    dw[j] += dyr[j] * xhat;
                }
                if let Some(db) = &mut self.bias_grad {
                    db[j] += dyr[j];
                }
            }
            let Some(dx) = dx.as_deref_mut() else { continue };
            let (mean_g, mean_gx) = (sum_g * inv_n, sum_gx * inv_n);
            let dxr = &mut dx[r * n..(r + 1) * n];
            for j in 0..n {
                let xhat = (xr[j] - mean) * rstd;
                let g = match &self.weight {
                    Some(w) => dyr[j] * w[j],
                    None => dyr[j],
                };
                dxr[j] = rstd * (g - mean_g - xhat * mean_gx);
            }
        }
        Ok(())
    }

    fn check_io(&self, x: &[T], rows: usize, y: &[T]) -> Result<()> {
        check_len("input", x.len(), rows, self.normalized_shape)?;
        check_len("output", y.len(), rows, self.normalized_shape)
    }

    /// Normalises row `r` of `x` into `y` and returns its mean and `1/σ` (an empty row has mean 0 and variance 0).
    fn normalize_row(&self, r: usize, x: &[T], y: &mut [T]) -> (T, T) {
        let n = self.normalized_shape;
        let eps = T::from_f64_lossy(self.eps);
        if n == 0 {
            return (T::zero(), T::one() / eps.sqrt());
        }
        let xr = &x[r * n..(r + 1) * n];
        let yr = &mut y[r * n..(r + 1) * n];
        let inv_n = T::one() / from_usize::<T>(n);
        let mean = xr.iter().fold(T::zero(), |s, &v| s + v) * inv_n;
        let var = xr.iter().fold(T::zero(), |s, &v| s + (v - mean) * (v - mean)) * inv_n;
        let rstd = T::one() / (var + eps).sqrt();
        for (j, (y, &v)) in yr.iter_mut().zip(xr).enumerate() {
            let mut out = (v - mean) * rstd;
            if let Some(w) = &self.weight {
                out *= w[j];
            }
            if let Some(b) = &self.bias {
                out += b[j];
            }
            *y = out;
        }
        (mean, rstd)
    }
}

/// `n` as `T` (exact for any row size that fits in memory as `f64`; rounded to nearest in `f32`).
fn from_usize<T: Real>(n: usize) -> T {
    T::from_f64_lossy(n as f64)
}

impl LayerNorm<f32> {
    /// The normalised tensor of shape `(*, normalized_shape)`, normalising over the last dimension, as PyTorch
    /// broadcasts over any leading dimensions.
    pub fn forward_tensor(&self, x: &Tensor) -> Result<Tensor> {
        let lead = match x.shape().split_last() {
            Some((&last, lead)) if last == self.normalized_shape => lead,
            _ => return Err(Error::shape("input", format!("[*, {}]", self.normalized_shape), x.shape())),
        };
        let rows = lead.iter().product();
        Ok(Tensor::from_parts(x.shape().to_vec(), self.forward(x.data(), rows)?))
    }
}

impl Module for LayerNorm<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let shape = vec![self.normalized_shape];
        [("weight", &self.weight), ("bias", &self.bias)]
            .into_iter()
            .filter_map(|(name, p)| p.as_deref().map(|data| ParamRef { name: name.into(), shape: shape.clone(), data }))
            .collect()
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let shape = vec![self.normalized_shape];
        [("weight", &mut self.weight), ("bias", &mut self.bias)]
            .into_iter()
            .filter_map(|(name, p)| {
                p.as_deref_mut().map(|data| ParamMut { name: name.into(), shape: shape.clone(), data })
            })
            .collect()
    }
}

impl Trainable for LayerNorm<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let shape = vec![self.normalized_shape];
        [("weight", &mut self.weight, &mut self.weight_grad), ("bias", &mut self.bias, &mut self.bias_grad)]
            .into_iter()
            .filter_map(|(name, value, grad)| match (value, grad) {
                (Some(value), Some(grad)) => Some(Param { name: name.into(), shape: shape.clone(), value, grad }),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::gradcheck::check;

    fn random(len: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// `L = Σ y ⊙ g` for a fixed random `g`, so that `∂L/∂y = g`.
    fn loss(layer: &LayerNorm<f64>, x: &[f64], rows: usize, g: &[f64]) -> f64 {
        let y = layer.forward(x, rows).unwrap();
        y.iter().zip(g).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn hand_computed_forward_and_backward() {
        // One row [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5; eps = 0.5 makes σ = 2.
        let mut layer = LayerNorm::<f64>::with_options(4, 0.5, true, true).unwrap();
        layer.weight_mut().unwrap().copy_from_slice(&[1.0, 2.0, -1.0, 0.5]);
        layer.bias_mut().unwrap().copy_from_slice(&[0.0, 1.0, 0.0, -1.0]);
        let x = [1.0, 2.0, 3.0, 6.0];
        let (y, cache) = layer.forward_train(&x, 1).unwrap();
        // x̂ = [-1, -0.5, 0, 1.5]
        assert_eq!(cache.mean(), &[3.0][..]);
        assert_eq!(cache.rstd(), &[0.5][..]);
        assert_eq!(y, vec![-1.0, 0.0, 0.0, -0.25]);
        assert_eq!(layer.forward(&x, 1).unwrap(), y);

        let dy = [1.0, 1.0, 2.0, 2.0];
        let dx = layer.backward(&x, &cache, &dy, 1).unwrap();
        // ĝ = dy ⊙ w = [1, 2, -2, 1]: mean(ĝ) = 0.5, mean(ĝ ⊙ x̂) = (-1 - 1 + 0 + 1.5)/4 = -0.125,
        // dx = 0.5 (ĝ − 0.5 + 0.125 x̂) = [0.1875, 0.71875, -1.25, 0.34375].
        assert_eq!(dx, vec![0.1875, 0.71875, -1.25, 0.34375]);
        assert_eq!(dx.iter().sum::<f64>(), 0.0, "a shift of the row does not change y");
        assert_eq!(layer.weight_grad().unwrap(), &[-1.0, -0.5, 0.0, 3.0][..]);
        assert_eq!(layer.bias_grad().unwrap(), &[1.0, 1.0, 2.0, 2.0][..]);

        // A second backward accumulates, as PyTorch's `.grad` does.
        layer.backward_into(&x, &cache, &dy, 1, None).unwrap();
        assert_eq!(layer.bias_grad().unwrap(), &[2.0, 2.0, 4.0, 4.0][..]);
        layer.zero_grads();
        assert!(layer.weight_grad().unwrap().iter().all(|&g| g == 0.0));
    }

    #[test]
    fn default_layer_is_pytorch_s() {
        let layer = LayerNorm::<f32>::new(3);
        assert_eq!((layer.normalized_shape(), layer.eps()), (3, 1e-5));
        assert!(layer.elementwise_affine() && layer.has_bias());
        assert_eq!(layer.weight().unwrap(), &[1.0; 3][..]);
        assert_eq!(layer.bias().unwrap(), &[0.0; 3][..]);
        // With the identity affine, each row has mean 0 and variance 1 − ε/(var + ε).
        let x = [2.0f32, 4.0, 9.0, -1.0, -1.0, -1.0];
        let y = layer.forward(&x, 2).unwrap();
        let mean: f32 = y[..3].iter().sum::<f32>() / 3.0;
        let var: f32 = y[..3].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{mean} {var}");
        assert_eq!(&y[3..], &[0.0; 3], "a constant row normalises to zero");

        let plain = LayerNorm::<f32>::with_options(3, 1e-5, false, true).unwrap();
        assert!(!plain.elementwise_affine() && !plain.has_bias(), "bias needs elementwise_affine");
        assert_eq!(plain.forward(&x, 2).unwrap(), y);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(5);
        let options = [(true, true), (true, false), (false, true), (false, false)];
        for case in 0..16 {
            let (rows, n) = (rng.random_range(1..5), rng.random_range(1..9));
            let (affine, bias) = options[case % 4];
            let eps = [1e-5, 1e-3, 0.1][case % 3];
            let mut layer = LayerNorm::<f64>::with_options(n, eps, affine, bias).unwrap();
            for p in [layer.weight.as_mut(), layer.bias.as_mut()].into_iter().flatten() {
                p.iter_mut().for_each(|v| *v = rng.random_range(-2.0..2.0));
            }
            // Rows away from zero and of various spreads, so that the mean and the scale both matter.
            let mut x = random(rows * n, &mut rng);
            for (i, v) in x.iter_mut().enumerate() {
                *v = *v * (1.0 + (i / n) as f64) + 0.5 * (i / n) as f64;
            }
            let g = random(rows * n, &mut rng);
            let (_, cache) = layer.forward_train(&x, rows).unwrap();
            let dx = layer.backward(&x, &cache, &g, rows).unwrap();

            check("dx", &mut x.clone(), &dx, 1e-6, |x| loss(&layer, x, rows, &g))
                .unwrap_or_else(|e| panic!("case {case} ({rows}×{n}, affine {affine}, bias {bias}): {e}"));
            if affine {
                let dw = layer.weight_grad().unwrap().to_vec();
                let mut w = layer.weight().unwrap().to_vec();
                let mut probe = layer.clone();
                check("dw", &mut w, &dw, 1e-6, |w| {
                    probe.weight_mut().unwrap().copy_from_slice(w);
                    loss(&probe, &x, rows, &g)
                })
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
            } else {
                assert!(layer.weight_grad().is_none());
            }
            if affine && bias {
                let db = layer.bias_grad().unwrap().to_vec();
                let mut b = layer.bias().unwrap().to_vec();
                let mut probe = layer.clone();
                check("db", &mut b, &db, 1e-6, |b| {
                    probe.bias_mut().unwrap().copy_from_slice(b);
                    loss(&probe, &x, rows, &g)
                })
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
            } else {
                assert!(layer.bias_grad().is_none());
            }
        }
    }

    #[test]
    fn statistics_stay_accurate_far_from_zero() {
        // In f32, a one-pass E[x²] − E[x]² loses every digit of this row's variance (0.25 next to 1e8).
        let layer = LayerNorm::<f32>::with_options(2, 0.0, false, false).unwrap();
        let (y, cache) = layer.forward_train(&[10_000.0, 10_001.0], 1).unwrap();
        assert_eq!(cache.mean(), &[10_000.5][..]);
        assert_eq!(cache.rstd(), &[2.0][..]);
        assert_eq!(y, vec![-1.0, 1.0]);
    }

    #[test]
    fn a_row_of_one_value_has_no_input_or_weight_gradient() {
        // Zero variance: y = b whatever x, so ∂L/∂x and ∂L/∂w are zero, and exactly so here (the mean of one value
        // is that value), even where 1/σ = 1/√eps is large.
        let mut layer = LayerNorm::<f32>::new(1);
        layer.weight_mut().unwrap()[0] = 1.5;
        layer.bias_mut().unwrap()[0] = 0.25;
        let x = [-0.800_039_3, 3.0, 1e6];
        let (y, cache) = layer.forward_train(&x, 3).unwrap();
        assert_eq!(y, vec![0.25; 3]);
        let dx = layer.backward(&x, &cache, &[1.0, -2.0, 0.5], 3).unwrap();
        assert_eq!(dx, vec![0.0; 3]);
        assert_eq!(layer.weight_grad().unwrap(), &[0.0][..]);
        assert_eq!(layer.bias_grad().unwrap(), &[-0.5][..]);
    }

    #[test]
    fn module_and_trainable_use_pytorch_names() {
        let mut layer = LayerNorm::<f32>::new(3);
        let names: Vec<_> = layer.named_params().into_iter().map(|p| (p.name, p.shape)).collect();
        assert_eq!(names, vec![("weight".into(), vec![3]), ("bias".into(), vec![3])]);
        assert_eq!(layer.num_params(), 6);
        let x = [1.0, 2.0, 4.0];
        let (_, cache) = layer.forward_train(&x, 1).unwrap();
        layer.backward(&x, &cache, &[1.0; 3], 1).unwrap();
        let params = layer.parameters();
        assert_eq!(params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["weight", "bias"]);
        assert_eq!(params[1].grad, &[1.0; 3][..]);
        layer.zero_grad();
        assert!(layer.bias_grad().unwrap().iter().all(|&g| g == 0.0));

        let no_bias = LayerNorm::<f32>::with_options(3, 1e-5, true, false).unwrap();
        let names: Vec<_> = no_bias.state_dict().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["weight"]);
        let mut plain = LayerNorm::<f32>::with_options(3, 1e-5, false, false).unwrap();
        assert!(plain.named_params().is_empty() && plain.parameters().is_empty());
    }

    #[test]
    fn shapes_and_options_are_checked() {
        let mut layer = LayerNorm::<f32>::new(3);
        let err = layer.forward(&[0.0; 5], 2).unwrap_err();
        assert!(err.to_string().contains("input: expected shape [2, 3] (6 values), found [5]"), "{err}");
        let err = layer.forward_into(&[0.0; 6], 2, &mut [0.0; 3]).unwrap_err();
        assert!(err.to_string().contains("output"), "{err}");

        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0];
        let mut cache = LayerNormCache::new();
        let err = layer.forward_train_into(&x, 3, &mut [0.0; 6], &mut cache).unwrap_err();
        assert!(err.to_string().contains("input"), "{err}");
        assert_eq!(cache.rows(), 0, "a failed forward leaves the cache alone");
        layer.forward_train_into(&x, 2, &mut [0.0; 6], &mut cache).unwrap();
        assert_eq!(cache.rows(), 2);

        let err = layer.backward(&x, &cache, &[0.0; 3], 2).unwrap_err();
        assert!(err.to_string().contains("output gradient"), "{err}");
        let err = layer.backward(&x[..3], &cache, &[0.0; 3], 1).unwrap_err();
        assert!(err.to_string().contains("LayerNorm cache"), "{err}");
        let err = layer.backward_into(&x, &cache, &[1.0; 6], 2, Some(&mut [0.0; 5])).unwrap_err();
        assert!(err.to_string().contains("input gradient"), "{err}");
        let err = LayerNorm::<f32>::new(2).backward(&x[..4], &cache, &[1.0; 4], 2).unwrap_err();
        assert!(err.to_string().contains("LayerNorm cache"), "{err}");
        assert!(layer.weight_grad().unwrap().iter().chain(layer.bias_grad().unwrap()).all(|&g| g == 0.0));

        for eps in [-1e-5, f64::NAN, f64::INFINITY] {
            let err = LayerNorm::<f32>::with_options(3, eps, true, true).unwrap_err();
            assert!(err.to_string().contains("eps"), "{err}");
        }

        let t = Tensor::from_parts(vec![2, 1, 3], x.to_vec());
        let y = layer.forward_tensor(&t).unwrap();
        assert_eq!(y.shape(), &[2, 1, 3]);
        assert_eq!(y.data(), &layer.forward(&x, 2).unwrap()[..]);
        let err = layer.forward_tensor(&Tensor::zeros([3, 2])).unwrap_err();
        assert!(err.to_string().contains("[*, 3]"), "{err}");
    }

    #[test]
    fn empty_rows_and_no_rows() {
        let mut layer = LayerNorm::<f32>::new(0);
        let (y, cache) = layer.forward_train(&[], 2).unwrap();
        assert!(y.is_empty());
        assert_eq!(cache.rows(), 2);
        assert!(layer.backward(&[], &cache, &[], 2).unwrap().is_empty());

        let mut layer = LayerNorm::<f32>::new(4);
        let (y, cache) = layer.forward_train(&[], 0).unwrap();
        assert!(y.is_empty() && cache.rows() == 0);
        assert!(layer.backward(&[], &cache, &[], 0).unwrap().is_empty());
    }
}
