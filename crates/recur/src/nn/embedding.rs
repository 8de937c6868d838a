//! The lookup table `y_i = W[idx_i]`, PyTorch's `nn.Embedding`, with its scatter-add backward.

use std::fmt::Display;

use rand::Rng;

use super::check_len;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::kernels::quant::{Scheme, StoredMatrix};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable};

/// A table of `num_embeddings` vectors of size `embedding_dim`, PyTorch's
/// `nn.Embedding(num_embeddings, embedding_dim, padding_idx)`:
///
/// `y_i = W[idx_i]`, with `weight W (num_embeddings, embedding_dim)` under the `state_dict` name `weight`.
///
/// The row `padding_idx`, when set, starts at zero and never receives a gradient, so it stays whatever it was
/// set to. PyTorch's `max_norm`, `scale_grad_by_freq` and `sparse` are not supported.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding<T: Real = f32> {
    num_embeddings: usize,
    embedding_dim: usize,
    padding_idx: Option<usize>,
    weight: Vec<T>,
    weight_grad: Vec<T>,
    /// `W` stored in fewer bits, for inference: when set, `weight` and `weight_grad` are empty.
    stored: Option<StoredMatrix>,
}

impl<T: Real> Embedding<T> {
    /// A table with PyTorch's default initialisation drawn from `rng`: every entry from `N(0, 1)`, then the
    /// `padding_idx` row set to zero.
    ///
    /// `padding_idx` may be negative, counted from the end as in PyTorch (`-1` is the last row); it must lie in
    /// `[-num_embeddings, num_embeddings)`. Values are drawn in `f32`, so an `f64` table built from the same seed
    /// holds the same numbers.
    pub fn new(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<i64>,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut table = Self::zeros(num_embeddings, embedding_dim, padding_idx)?;
        fill_standard_normal(&mut table.weight, rng);
        if let Some(p) = table.padding_idx {
            table.row_mut(p).fill(T::zero());
        }
        Ok(table)
    }

    /// A table of zeros (to be loaded or set). Fails on a `padding_idx` outside
    /// `[-num_embeddings, num_embeddings)`.
    pub fn zeros(num_embeddings: usize, embedding_dim: usize, padding_idx: Option<i64>) -> Result<Self> {
        let len = num_embeddings.checked_mul(embedding_dim).ok_or_else(|| {
            Error::config(format!("Embedding({num_embeddings}, {embedding_dim}) has too many weights"))
        })?;
        let padding_idx = padding_idx
            .map(|p| {
                let n = num_embeddings as i64;
                let resolved = if p < 0 { p + n } else { p };
                if (0..n).contains(&resolved) {
                    Ok(resolved as usize)
                } else {
                    Err(Error::config(format!(
                        "padding_idx must be in [-{num_embeddings}, {num_embeddings}), found {p}"
                    )))
                }
            })
            .transpose()?;
        Ok(Embedding {
            num_embeddings,
            embedding_dim,
            padding_idx,
            weight: vec![T::zero(); len],
            weight_grad: vec![T::zero(); len],
            stored: None,
        })
    }

    /// How `W` is stored, when not in `T`.
    pub fn scheme(&self) -> Option<Scheme> {
        self.stored.as_ref().map(StoredMatrix::scheme)
    }

    /// `W` as stored, when stored in fewer bits ([`Embedding::weight`] is then empty).
    pub fn stored(&self) -> Option<&StoredMatrix> {
        self.stored.as_ref()
    }

    /// Replaces `W` by a matrix stored in fewer bits; a lookup then reads its row as `f32`. The table is then
    /// for inference: [`Embedding::backward`] fails.
    ///
    /// # Panics
    /// When the matrix's shape is not `W`'s (a caller bug: files are checked with the tensor's name first).
    pub(crate) fn set_stored(&mut self, m: StoredMatrix) {
        assert_eq!((m.rows(), m.cols()), (self.num_embeddings, self.embedding_dim), "Embedding::set_stored: shape");
        self.weight = Vec::new();
        self.weight_grad = Vec::new();
        self.stored = Some(m);
    }

    /// Number of rows (the vocabulary size).
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }

    /// Size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// The padding row, resolved to a non-negative index (as PyTorch stores it).
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// `W`, row-major `(num_embeddings, embedding_dim)`.
    pub fn weight(&self) -> &[T] {
        &self.weight
    }

    /// `W`, mutably.
    pub fn weight_mut(&mut self) -> &mut [T] {
        &mut self.weight
    }

    /// `∂L/∂W` accumulated so far, row-major `(num_embeddings, embedding_dim)`.
    pub fn weight_grad(&self) -> &[T] {
        &self.weight_grad
    }

    /// Sets the gradient to zero.
    pub fn zero_grads(&mut self) {
        self.weight_grad.fill(T::zero());
    }

    /// `y_i = W[idx_i]` for every index: the result is `indices.len() × embedding_dim`.
    ///
    /// Indices may be any integer type (`usize`, `i64` as PyTorch's, …); one outside `[0, num_embeddings)` is an
    /// error naming it.
    pub fn forward<I>(&self, indices: &[I]) -> Result<Vec<T>>
    where
        I: Copy + Display + TryInto<usize>,
    {
        let mut y = vec![T::zero(); indices.len().saturating_mul(self.embedding_dim)];
        self.forward_into(indices, &mut y)?;
        Ok(y)
    }

    /// [`Embedding::forward`] into a caller's buffer `y` (`indices.len() × embedding_dim`).
    pub fn forward_into<I>(&self, indices: &[I], y: &mut [T]) -> Result<()>
    where
        I: Copy + Display + TryInto<usize>,
    {
        check_len("output", y.len(), indices.len(), self.embedding_dim)?;
        if self.embedding_dim == 0 {
            return indices.iter().try_for_each(|&i| self.resolve(i).map(drop));
        }
        for (&i, out) in indices.iter().zip(y.chunks_exact_mut(self.embedding_dim)) {
            let k = self.resolve(i)?;
            match &self.stored {
                Some(m) => m.row_into(k, T::as_f32_mut(out).expect("a stored table is read in f32")),
                None => out.copy_from_slice(self.row(k)),
            }
        }
        Ok(())
    }

    /// The backward of [`Embedding::forward`] for the same indices: scatter-adds each row of `dy = ∂L/∂y`
    /// (`indices.len() × embedding_dim`) into the gradient of the row it was read from,
    ///
    /// `∂L/∂W[k] += Σ_{i : idx_i = k} dy_i`, except for `k = padding_idx`.
    ///
    /// Indices carry no gradient. Nothing is accumulated when an index or the shape of `dy` is wrong.
    pub fn backward<I>(&mut self, indices: &[I], dy: &[T]) -> Result<()>
    where
        I: Copy + Display + TryInto<usize>,
    {
        if let Some(scheme) = self.scheme() {
            return Err(crate::params::inference_only(scheme));
        }
        let dim = self.embedding_dim;
        check_len("output gradient", dy.len(), indices.len(), dim)?;
        // Validate every index first: a bad one late in the batch must not leave half the gradient added.
        for &i in indices {
            self.resolve(i)?;
        }
        if dim == 0 {
            return Ok(());
        }
        for (&i, d) in indices.iter().zip(dy.chunks_exact(dim)) {
            let k = self.resolve(i)?;
            if Some(k) == self.padding_idx {
                continue;
            }
            self.weight_grad[k * dim..(k + 1) * dim].iter_mut().zip(d).for_each(|(g, &v)| *g += v);
        }
        Ok(())
    }

    fn resolve<I: Copy + Display + TryInto<usize>>(&self, index: I) -> Result<usize> {
        match index.try_into() {
            Ok(k) if k < self.num_embeddings => Ok(k),
            _ => Err(Error::Index {
                what: "embedding index".into(),
                index: index.to_string(),
                valid: format!("0..{} for a vocabulary of {}", self.num_embeddings, self.num_embeddings),
            }),
        }
    }

    fn row(&self, k: usize) -> &[T] {
        &self.weight[k * self.embedding_dim..(k + 1) * self.embedding_dim]
    }

    fn row_mut(&mut self, k: usize) -> &mut [T] {
        &mut self.weight[k * self.embedding_dim..(k + 1) * self.embedding_dim]
    }
}

/// Fills `out` with independent draws from `N(0, 1)` by the Box–Muller transform (rand 0.9 alone has no normal
/// distribution): each pair of uniforms gives two normals.
fn fill_standard_normal<T: Real>(out: &mut [T], rng: &mut impl Rng) {
    for pair in out.chunks_mut(2) {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = <T as Real>::from_f32((r * c) as f32);
        if let Some(second) = pair.get_mut(1) {
            *second = <T as Real>::from_f32((r * s) as f32);
        }
    }
}

impl Embedding<f32> {
    /// `W` (named `name`) as a matrix in `scheme` (int8: one scale per row, per token). Fails, naming the tensor,
    /// when a value is not finite or (f16) out of range.
    pub(crate) fn quantize_weight(&self, scheme: Scheme, name: &str) -> Result<StoredMatrix> {
        let shape = (self.num_embeddings, self.embedding_dim);
        crate::params::store_weight(name, &self.weight, shape, scheme, self.scheme())
    }
}

impl Module for Embedding<f32> {
    /// `weight`, unless it is stored in fewer bits (see [`Embedding::stored`]).
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        let shape = vec![self.num_embeddings, self.embedding_dim];
        let params = vec![ParamRef { name: "weight".into(), shape, data: &self.weight }];
        if self.stored.is_some() { Vec::new() } else { params }
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        let shape = vec![self.num_embeddings, self.embedding_dim];
        let stored = self.stored.is_some();
        let params = vec![ParamMut { name: "weight".into(), shape, data: &mut self.weight }];
        if stored { Vec::new() } else { params }
    }
}

impl Trainable for Embedding<f32> {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        let shape = vec![self.num_embeddings, self.embedding_dim];
        let stored = self.stored.is_some();
        let params = vec![Param { name: "weight".into(), shape, value: &mut self.weight, grad: &mut self.weight_grad }];
        if stored { Vec::new() } else { params }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::gradcheck::check;

    #[test]
    fn hand_computed_lookup_and_scatter_add() {
        let mut table = Embedding::<f64>::zeros(4, 2, Some(0)).unwrap();
        table.weight_mut().copy_from_slice(&[9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let idx: [i64; 4] = [2, 0, 2, 3];
        assert_eq!(
            table.forward(&idx).unwrap(),
            vec![3.0, 4.0, 9.0, 9.0, 3.0, 4.0, 5.0, 6.0],
            "the padding row is read as it is"
        );
        let dy = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, -1.0, 0.5];
        table.backward(&idx, &dy).unwrap();
        assert_eq!(
            table.weight_grad(),
            &[0.0, 0.0, 0.0, 0.0, 4.0, 6.0, -1.0, 0.5][..],
            "repeats add up; the padding row gets nothing"
        );
        table.backward(&idx, &dy).unwrap();
        assert_eq!(table.weight_grad()[4], 8.0, "accumulates until zeroed");
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(5);
        for case in 0..8 {
            let (num, dim, n) = (rng.random_range(1..6), rng.random_range(1..4), rng.random_range(1..8));
            let padding = (case % 2 == 0).then(|| rng.random_range(0..num) as i64);
            let mut table = Embedding::<f64>::new(num, dim, padding, &mut rng).unwrap();
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..num)).collect();
            let g: Vec<f64> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            table.backward(&idx, &g).unwrap();
            let analytic = table.weight_grad().to_vec();
            let mut w = table.weight().to_vec();
            let mut probe = table.clone();
            // The padding row is a constant by definition: probes of it are undone, so its numeric gradient is 0.
            let fixed = table.padding_idx().map(|p| (p, table.row(p).to_vec()));
            check("dW", &mut w, &analytic, 1e-7, |w| {
                probe.weight_mut().copy_from_slice(w);
                if let Some((p, row)) = &fixed {
                    probe.row_mut(*p).copy_from_slice(row);
                }
                let y = probe.forward(&idx).unwrap();
                y.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
            })
            .unwrap();
        }
    }

    #[test]
    fn init_is_standard_normal_with_a_zero_padding_row() {
        let table = Embedding::<f32>::new(1000, 10, Some(-1), &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(table.padding_idx(), Some(999));
        assert!(table.weight()[999 * 10..].iter().all(|&v| v == 0.0));
        let body = &table.weight()[..999 * 10];
        let n = body.len() as f64;
        let mean = body.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = body.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn bad_indices_and_shapes_are_errors() {
        let mut table = Embedding::<f32>::zeros(5, 3, None).unwrap();
        let err = table.forward(&[1usize, 7]).unwrap_err();
        assert!(err.to_string().contains("index 7 is out of range (valid: 0..5 for a vocabulary of 5)"), "{err}");
        let err = table.forward(&[-1i64]).unwrap_err();
        assert!(err.to_string().contains("index -1"), "{err}");
        let err = table.backward(&[0usize, 5], &[1.0; 6]).unwrap_err();
        assert!(err.to_string().contains("index 5"), "{err}");
        assert!(table.weight_grad().iter().all(|&g| g == 0.0), "nothing added");
        let err = table.backward(&[0usize], &[1.0; 2]).unwrap_err();
        assert!(err.to_string().contains("output gradient"), "{err}");

        let err = Embedding::<f32>::zeros(5, 3, Some(5)).unwrap_err();
        assert!(err.to_string().contains("padding_idx must be in [-5, 5)"), "{err}");
        assert!(Embedding::<f32>::zeros(5, 3, Some(-6)).is_err());
    }

    #[test]
    fn module_names() {
        let mut table = Embedding::new(3, 2, None, &mut StdRng::seed_from_u64(0)).unwrap();
        let p = table.named_params();
        assert_eq!((p[0].name.as_str(), p[0].shape.clone()), ("weight", vec![3, 2]));
        table.backward(&[1u32], &[1.0, 1.0]).unwrap();
        assert_eq!(table.parameters()[0].grad[2..4], [1.0, 1.0]);
        table.zero_grad();
        assert!(table.weight_grad().iter().all(|&g| g == 0.0));
    }
}
