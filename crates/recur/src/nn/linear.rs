//! The affine layer `y = x Wᵀ + b`, PyTorch's `nn.Linear`, with its backward.

use rand::Rng;

use super::check_len;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, broadcast_rows, gemm};
use crate::kernels::quant::{Scheme, StoredMatrix, StoredWeight};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable};
use crate::tensor::Tensor;

/// A fully connected layer, PyTorch's `nn.Linear(in_features, out_features, bias)`:
///
/// `y = x Wᵀ + b`, with `weight W (out_features, in_features)` and optional `bias b (out_features)`, under the
/// `state_dict` names `weight` and `bias`.
///
/// Each parameter's gradient is stored beside it (same length, zero at construction); [`Linear::backward`] adds
/// into it.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T: Real = f32> {
    in_features: usize,
    out_features: usize,
    weight: Vec<T>,
    bias: Option<Vec<T>>,
    weight_grad: Vec<T>,
    bias_grad: Option<Vec<T>>,
    /// `W` stored in fewer bits, for inference: when set, `weight` and `weight_grad` are empty.
    stored: Option<StoredWeight>,
}

impl<T: Real> Linear<T> {
    /// A layer with PyTorch's default initialisation drawn from `rng`: weight and bias uniform in `[-k, k]`,
    /// `k = 1/√in_features`.
    ///
    /// PyTorch initialises the weight with `kaiming_uniform_(a=√5)`, whose bound `gain·√(3/fan_in)` with
    /// `gain = √(2/(1+a²))` is exactly `1/√fan_in`; the bias uses the same bound (zero when `in_features` is 0).
    /// Values are drawn in `f32`, so an `f64` layer built from the same seed holds the same numbers.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Result<Self> {
        let mut layer = Self::zeros(in_features, out_features, bias)?;
        let k = if in_features == 0 { 0.0 } else { 1.0 / (in_features as f32).sqrt() };
        let mut draw = |v: &mut T| *v = <T as Real>::from_f32(rng.random_range(-k..=k));
        layer.weight.iter_mut().for_each(&mut draw);
        if let Some(b) = &mut layer.bias {
            b.iter_mut().for_each(&mut draw);
        }
        Ok(layer)
    }

    /// A layer with all parameters zero (to be loaded or set).
    ///
    /// Zero sizes are allowed, as in PyTorch (an `in_features = 0` layer outputs its bias). Fails only when the
    /// weight would not fit in memory.
    pub fn zeros(in_features: usize, out_features: usize, bias: bool) -> Result<Self> {
        let len = in_features
            .checked_mul(out_features)
            .ok_or_else(|| Error::config(format!("Linear({in_features}, {out_features}) has too many weights")))?;
        Ok(Linear {
            in_features,
            out_features,
            weight: vec![T::zero(); len],
            bias: bias.then(|| vec![T::zero(); out_features]),
            weight_grad: vec![T::zero(); len],
            bias_grad: bias.then(|| vec![T::zero(); out_features]),
            stored: None,
        })
    }

    /// How `W` is stored, when not in `T`.
    pub fn scheme(&self) -> Option<Scheme> {
        self.stored.as_ref().map(|s| s.matrix().scheme())
    }

    /// `W` as stored, when stored in fewer bits ([`Linear::weight`] is then empty).
    pub fn stored(&self) -> Option<&StoredMatrix> {
        self.stored.as_ref().map(StoredWeight::matrix)
    }

    /// Replaces `W` by a matrix stored in fewer bits; the bias stays as it is. The layer is then for inference:
    /// [`Linear::backward`] fails.
    ///
    /// # Panics
    /// When the matrix's shape is not `W`'s (a caller bug: files are checked with the tensor's name first).
    pub(crate) fn set_stored(&mut self, m: StoredMatrix) {
        assert_eq!((m.rows(), m.cols()), (self.out_features, self.in_features), "Linear::set_stored: shape");
        self.weight = Vec::new();
        self.weight_grad = Vec::new();
        self.stored = Some(StoredWeight::new(m));
    }

    /// Size of each input row.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Size of each output row.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    /// `W`, row-major `(out_features, in_features)`.
    pub fn weight(&self) -> &[T] {
        &self.weight
    }

    /// `W`, mutably.
    pub fn weight_mut(&mut self) -> &mut [T] {
        &mut self.weight
    }

    /// `b`, when the layer has one.
    pub fn bias(&self) -> Option<&[T]> {
        self.bias.as_deref()
    }

    /// `b`, mutably.
    pub fn bias_mut(&mut self) -> Option<&mut [T]> {
        self.bias.as_deref_mut()
    }

    /// `∂L/∂W` accumulated so far, row-major `(out_features, in_features)`.
    pub fn weight_grad(&self) -> &[T] {
        &self.weight_grad
    }

    /// `∂L/∂b` accumulated so far, when the layer has a bias.
    pub fn bias_grad(&self) -> Option<&[T]> {
        self.bias_grad.as_deref()
    }

    /// Sets both gradients to zero.
    pub fn zero_grads(&mut self) {
        self.weight_grad.fill(T::zero());
        if let Some(g) = &mut self.bias_grad {
            g.fill(T::zero());
        }
    }

    /// `y = x Wᵀ + b` for `rows` rows: `x` is `rows × in_features`, the result `rows × out_features`.
    pub fn forward(&self, x: &[T], rows: usize) -> Result<Vec<T>> {
        let mut y = vec![T::zero(); rows.saturating_mul(self.out_features)];
        self.forward_into(x, rows, &mut y)?;
        Ok(y)
    }

    /// [`Linear::forward`] into a caller's buffer `y` (`rows × out_features`), without allocating.
    pub fn forward_into(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()> {
        check_len("input", x.len(), rows, self.in_features)?;
        check_len("output", y.len(), rows, self.out_features)?;
        if let Some(stored) = &self.stored {
            let f32_only = "a stored weight computes in f32";
            let bias = self.bias.as_deref().map(|b| T::as_f32(b).expect(f32_only));
            stored.product(T::as_f32(x).expect(f32_only), rows, bias, T::as_f32_mut(y).expect(f32_only));
            return Ok(());
        }
        // The bias goes in first so that the product adds onto it (β = 1) instead of a second pass.
        broadcast_rows(y, self.bias.as_deref(), self.out_features);
        gemm(
            MatRef::new(x, rows, self.in_features),
            MatRef::new(&self.weight, self.out_features, self.in_features).t(),
            T::one(),
            MatMut::new(y, rows, self.out_features),
        );
        Ok(())
    }

    /// The backward of [`Linear::forward`] for the same `x`: from `dy = ∂L/∂y` (`rows × out_features`),
    /// accumulates
    ///
    /// `∂L/∂W += dyᵀ x`, `∂L/∂b += Σ_rows dy`
    ///
    /// and returns `∂L/∂x = dy W` (`rows × in_features`).
    pub fn backward(&mut self, x: &[T], dy: &[T], rows: usize) -> Result<Vec<T>> {
        let mut dx = vec![T::zero(); rows.saturating_mul(self.in_features)];
        self.backward_into(x, dy, rows, Some(&mut dx))?;
        Ok(dx)
    }

    /// [`Linear::backward`] writing `∂L/∂x` into a caller's buffer (`rows × in_features`), or skipping it when
    /// `dx` is `None` (a first layer, whose input needs no gradient).
    ///
    /// Nothing is accumulated when a shape is wrong, or when `W` is stored in fewer bits (for inference only).
    pub fn backward_into(&mut self, x: &[T], dy: &[T], rows: usize, dx: Option<&mut [T]>) -> Result<()> {
        if let Some(scheme) = self.scheme() {
            return Err(crate::params::inference_only(scheme));
        }
        let (i, o) = (self.in_features, self.out_features);
        check_len("input", x.len(), rows, i)?;
        check_len("output gradient", dy.len(), rows, o)?;
        if let Some(dx) = &dx {
            check_len("input gradient", dx.len(), rows, i)?;
        }
        let dy_mat = MatRef::new(dy, rows, o);
        gemm(dy_mat.t(), MatRef::new(x, rows, i), T::one(), MatMut::new(&mut self.weight_grad, o, i));
        if let Some(db) = &mut self.bias_grad
            && o > 0
        {
            for row in dy.chunks_exact(o) {
                db.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
        }
        if let Some(dx) = dx {
            gemm(dy_mat, MatRef::new(&self.weight, o, i), T::zero(), MatMut::new(dx, rows, i));
        }
        Ok(())
    }
}

impl Linear<f32> {
    /// `W` (named `name`) as a matrix in `scheme`. Fails, naming the tensor, when a weight is not finite or (f16)
    /// out of range.
    pub(crate) fn quantize_weight(&self, scheme: Scheme, name: &str) -> Result<StoredMatrix> {
        let shape = (self.out_features, self.in_features);
        crate::params::store_weight(name, &self.weight, shape, scheme, self.scheme())
    }

    /// `y = x Wᵀ + b` on a tensor of shape `(*, in_features)`, giving `(*, out_features)`, as PyTorch broadcasts
    /// over any leading dimensions.
    pub fn forward_tensor(&self, x: &Tensor) -> Result<Tensor> {
        let lead = match x.shape().split_last() {
            Some((&last, lead)) if last == self.in_features => lead,
            _ => {
                return Err(Error::shape("input", format!("[*, {}]", self.in_features), x.shape()));
            }
        };
        let rows = lead.iter().product();
        let mut shape = lead.to_vec();
        shape.push(self.out_features);
        Ok(Tensor::from_parts(shape, self.forward(x.data(), rows)?))
    }
}

impl Module for Linear<f32> {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let mut params = vec![ParamRef {
            name: "weight".into(),
            shape: vec![self.out_features, self.in_features],
            data: &self.weight,
        }];
        // A stored `W` is not an f32 parameter (see `Linear::stored`).
        params.retain(|_| self.stored.is_none());
        if let Some(b) = &self.bias {
            params.push(ParamRef { name: "bias".into(), shape: vec![self.out_features], data: b });
        }
        params
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let stored = self.stored.is_some();
        let mut params = vec![ParamMut {
            name: "weight".into(),
            shape: vec![self.out_features, self.in_features],
            data: &mut self.weight,
        }];
        params.retain(|_| !stored);
        if let Some(b) = &mut self.bias {
            params.push(ParamMut { name: "bias".into(), shape: vec![self.out_features], data: b });
        }
        params
    }
}

impl Trainable for Linear<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let stored = self.stored.is_some();
        let mut params = vec![Param {
            name: "weight".into(),
            shape: vec![self.out_features, self.in_features],
            value: &mut self.weight,
            grad: &mut self.weight_grad,
        }];
        params.retain(|_| !stored);
        if let (Some(b), Some(g)) = (&mut self.bias, &mut self.bias_grad) {
            params.push(Param { name: "bias".into(), shape: vec![self.out_features], value: b, grad: g });
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::gradcheck::check;

    fn random(len: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// `L = Σ y ⊙ g` for a fixed random `g`, so that `∂L/∂y = g`.
    fn loss(layer: &Linear<f64>, x: &[f64], rows: usize, g: &[f64]) -> f64 {
        let y = layer.forward(x, rows).unwrap();
        y.iter().zip(g).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn hand_computed_forward_and_backward() {
        let mut layer = Linear::<f64>::zeros(2, 3, true).unwrap();
        layer.weight_mut().copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        layer.bias_mut().unwrap().copy_from_slice(&[0.5, -1.0, 0.0]);
        let x = [1.0, -1.0, 2.0, 0.0];
        let y = layer.forward(&x, 2).unwrap();
        assert_eq!(y, vec![-0.5, -2.0, -1.0, 2.5, 5.0, 10.0]);

        let dy = [1.0, 0.0, -1.0, 0.0, 2.0, 1.0];
        let dx = layer.backward(&x, &dy, 2).unwrap();
        // dx = dy W
        assert_eq!(dx, vec![-4.0, -4.0, 11.0, 14.0]);
        // dW = dyᵀ x
        assert_eq!(layer.weight_grad(), &[1.0, -1.0, 4.0, 0.0, 1.0, 1.0][..]);
        assert_eq!(layer.bias_grad().unwrap(), &[1.0, 2.0, 0.0][..]);

        // A second backward accumulates, as PyTorch's `.grad` does.
        layer.backward_into(&x, &dy, 2, None).unwrap();
        assert_eq!(layer.bias_grad().unwrap(), &[2.0, 4.0, 0.0][..]);
        layer.zero_grads();
        assert!(layer.weight_grad().iter().all(|&g| g == 0.0));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(11);
        for case in 0..12 {
            let (rows, i, o) = (rng.random_range(1..5), rng.random_range(1..6), rng.random_range(1..6));
            let bias = case % 2 == 0;
            let mut layer = Linear::<f64>::new(i, o, bias, &mut rng).unwrap();
            let x = random(rows * i, &mut rng);
            let g = random(rows * o, &mut rng);
            let dx = layer.backward(&x, &g, rows).unwrap();

            check("dx", &mut x.clone(), &dx, 1e-7, |x| loss(&layer, x, rows, &g)).unwrap();
            let dw = layer.weight_grad().to_vec();
            let mut w = layer.weight().to_vec();
            let mut probe = layer.clone();
            check("dW", &mut w, &dw, 1e-7, |w| {
                probe.weight_mut().copy_from_slice(w);
                loss(&probe, &x, rows, &g)
            })
            .unwrap();
            if bias {
                let db = layer.bias_grad().unwrap().to_vec();
                let mut b = layer.bias().unwrap().to_vec();
                let mut probe = layer.clone();
                check("db", &mut b, &db, 1e-7, |b| {
                    probe.bias_mut().unwrap().copy_from_slice(b);
                    loss(&probe, &x, rows, &g)
                })
                .unwrap();
            }
        }
    }

    #[test]
    fn default_init_is_uniform_in_one_over_sqrt_in() {
        let mut rng = StdRng::seed_from_u64(3);
        let layer = Linear::<f32>::new(16, 64, true, &mut rng).unwrap();
        let k = 0.25;
        for v in layer.weight().iter().chain(layer.bias().unwrap()) {
            assert!(v.abs() <= k);
        }
        assert!(layer.weight().iter().any(|v| v.abs() > 0.2));
        assert!(layer.weight_grad().iter().all(|&g| g == 0.0));

        let same = Linear::<f64>::new(16, 64, true, &mut StdRng::seed_from_u64(3)).unwrap();
        assert!(same.weight().iter().zip(layer.weight()).all(|(a, &b)| *a == b as f64));
    }

    #[test]
    fn module_and_trainable_use_pytorch_names() {
        let mut layer = Linear::new(3, 2, true, &mut StdRng::seed_from_u64(0)).unwrap();
        let names: Vec<_> = layer.named_params().into_iter().map(|p| (p.name, p.shape)).collect();
        assert_eq!(names, vec![("weight".into(), vec![2, 3]), ("bias".into(), vec![2])]);
        assert_eq!(layer.num_params(), 8);
        layer.backward(&[1.0; 3], &[1.0; 2], 1).unwrap();
        let params = layer.parameters();
        assert_eq!(params.len(), 2);
        assert_eq!(params[1].grad, &[1.0, 1.0][..]);
        layer.zero_grad();
        assert!(layer.bias_grad().unwrap().iter().all(|&g| g == 0.0));

        let no_bias = Linear::<f32>::zeros(3, 2, false).unwrap();
        assert_eq!(no_bias.named_params().len(), 1);
    }

    #[test]
    fn shapes_are_checked() {
        let mut layer = Linear::<f32>::zeros(3, 2, true).unwrap();
        let err = layer.forward(&[0.0; 5], 2).unwrap_err();
        assert!(err.to_string().contains("input: expected shape [2, 3] (6 values), found [5]"), "{err}");
        let err = layer.backward(&[0.0; 6], &[0.0; 3], 2).unwrap_err();
        assert!(err.to_string().contains("output gradient"), "{err}");
        assert!(layer.weight_grad().iter().all(|&g| g == 0.0));

        let t = Tensor::zeros([4, 5, 3]);
        assert_eq!(layer.forward_tensor(&t).unwrap().shape(), &[4, 5, 2]);
        let err = layer.forward_tensor(&Tensor::zeros([4, 2])).unwrap_err();
        assert!(err.to_string().contains("[*, 3]"), "{err}");
    }

    #[test]
    fn zero_sizes_behave_as_pytorch() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut layer = Linear::<f32>::new(0, 2, true, &mut rng).unwrap();
        layer.bias_mut().unwrap().copy_from_slice(&[1.0, 2.0]);
        assert_eq!(layer.forward(&[], 2).unwrap(), vec![1.0, 2.0, 1.0, 2.0]);
        assert_eq!(layer.backward(&[], &[1.0; 4], 2).unwrap(), Vec::<f32>::new());
        assert_eq!(layer.bias_grad().unwrap(), &[2.0, 2.0][..]);
        assert!(Linear::<f32>::new(3, 2, true, &mut rng).unwrap().forward(&[], 0).unwrap().is_empty());
    }
}
