//! Named parameters: the bridge between a model's weights and PyTorch's `state_dict` names, shared by loading,
//! saving, initialisation and (later) the optimizers.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;

use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::tensor::Tensor;

/// A parameter of a model, seen read-only under its PyTorch `state_dict` name.
#[derive(Debug)]
pub struct ParamRef<'a, T = f32> {
    /// PyTorch `state_dict` name, e.g. `weight_hh_l1_reverse`.
    pub name: String,
    /// PyTorch shape, e.g. `[4 * hidden_size, hidden_size]`.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: &'a [T],
}

/// A parameter of a model, seen mutably under its PyTorch `state_dict` name.
#[derive(Debug)]
pub struct ParamMut<'a, T = f32> {
    /// PyTorch `state_dict` name.
    pub name: String,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: &'a mut [T],
}

/// The storage of one parameter: its values and, once a backward pass or an optimizer has asked for it, its
/// gradient (an inference-only model never allocates gradients).
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter<T> {
    value: Vec<T>,
    grad: Vec<T>,
}

impl<T: Real> Parameter<T> {
    /// `len` zeros, without a gradient.
    pub fn zeros(len: usize) -> Self {
        Parameter { value: vec![T::zero(); len], grad: Vec::new() }
    }

    /// These values, without a gradient.
    pub fn from_values(value: Vec<T>) -> Self {
        Parameter { value, grad: Vec::new() }
    }

    /// The values.
    pub fn value(&self) -> &[T] {
        &self.value
    }

    /// The values, mutably.
    pub fn value_mut(&mut self) -> &mut [T] {
        &mut self.value
    }

    /// The accumulated gradient, or `None` before the first backward pass.
    pub fn grad(&self) -> Option<&[T]> {
        (self.grad.len() == self.value.len()).then_some(&self.grad[..])
    }

    /// The gradient, allocated as zeros on first use.
    pub fn grad_mut(&mut self) -> &mut [T] {
        self.ensure_grad();
        &mut self.grad
    }

    /// Values and gradient together, mutably (the gradient allocated on first use).
    pub fn value_and_grad_mut(&mut self) -> (&mut [T], &mut [T]) {
        self.ensure_grad();
        (&mut self.value, &mut self.grad)
    }

    fn ensure_grad(&mut self) {
        if self.grad.len() != self.value.len() {
            self.grad = vec![T::zero(); self.value.len()];
        }
    }

    /// The same values in another precision, without a gradient.
    pub fn cast<U: Real>(&self) -> Parameter<U> {
        let value = self.value.iter().map(|&v| U::from_f64_lossy(Real::to_f64(v))).collect();
        Parameter { value, grad: Vec::new() }
    }
}

/// The weight `name`, row-major `rows × cols`, stored in `scheme`. Fails, naming the tensor, when it is stored
/// already (`stored_as`: quantize the f32 model), or holds a value that is not finite or (f16) out of range.
pub(crate) fn store_weight(
    name: &str,
    w: &[f32],
    (rows, cols): (usize, usize),
    scheme: crate::kernels::quant::Scheme,
    stored_as: Option<crate::kernels::quant::Scheme>,
) -> Result<crate::kernels::quant::StoredMatrix> {
    if let Some(s) = stored_as {
        return Err(Error::config(format!("{name} is already stored as {s}: quantize the f32 model")));
    }
    if let Some(why) = crate::kernels::quant::unstorable(w, scheme) {
        return Err(Error::config(format!("cannot store {name} as {scheme}: {why}")));
    }
    Ok(crate::kernels::quant::StoredMatrix::quantize(w, rows, cols, scheme))
}

/// The error of a backward pass or training step through weights stored in fewer bits.
pub(crate) fn inference_only(scheme: crate::kernels::quant::Scheme) -> Error {
    Error::config(format!(
        "the weights are stored as {scheme}, for inference only: train the f32 model, then quantize it"
    ))
}

/// A trainable parameter with its gradient, as an optimizer sees it: PyTorch's `param` and `param.grad`.
#[derive(Debug)]
pub struct Param<'a, T = f32> {
    /// PyTorch `state_dict` name.
    pub name: String,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// The values, updated in place by an optimizer step.
    pub value: &'a mut [T],
    /// The accumulated gradient, same length as `value`.
    pub grad: &'a mut [T],
}

/// A parameter view with a name that a parent module can prefix.
pub trait Named {
    /// The name, mutably.
    fn name_mut(&mut self) -> &mut String;
}

impl<T> Named for ParamRef<'_, T> {
    fn name_mut(&mut self) -> &mut String {
        &mut self.name
    }
}

impl<T> Named for ParamMut<'_, T> {
    fn name_mut(&mut self) -> &mut String {
        &mut self.name
    }
}

impl<T> Named for Param<'_, T> {
    fn name_mut(&mut self) -> &mut String {
        &mut self.name
    }
}

/// Prefixes every parameter's name with `prefix.`, as a PyTorch parent module names its children's parameters.
pub fn prefixed<P: Named>(prefix: &str, mut params: Vec<P>) -> Vec<P> {
    for p in &mut params {
        let name = p.name_mut();
        *name = format!("{prefix}.{name}");
    }
    params
}

/// Copies each named tensor into the parameter of the same name.
///
/// Every parameter must be present with its exact shape, and every tensor must belong to a parameter: a missing,
/// unexpected or mis-shaped tensor is an error naming it, and nothing is written unless all of them fit.
pub fn assign(params: Vec<ParamMut<'_>>, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut expected: BTreeMap<&str, &[usize]> = BTreeMap::new();
    for p in &params {
        expected.insert(&p.name, &p.shape);
        match tensors.get(&p.name) {
            None => {
                return Err(Error::MissingTensor { name: p.name.clone(), expected: p.shape.clone() });
            }
            Some(t) if t.shape() != p.shape.as_slice() => {
                return Err(Error::TensorShape {
                    name: p.name.clone(),
                    expected: p.shape.clone(),
                    found: t.shape().to_vec(),
                });
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !expected.contains_key(k.as_str())).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::UnexpectedTensor { name: (*name).clone(), shape: tensors[*name].shape().to_vec() });
    }
    for p in params {
        p.data.copy_from_slice(tensors[&p.name].data());
    }
    Ok(())
}

/// Copies every parameter into a named tensor, in a stable order.
pub fn collect(params: Vec<ParamRef<'_>>) -> Vec<(String, Tensor)> {
    params.into_iter().map(|p| (p.name, Tensor::from_parts(p.shape, p.data.to_vec()))).collect()
}

/// PyTorch's default initialisation of recurrent layers and cells: every parameter uniform in `[-k, k]` with
/// `k = 1/√hidden_size`.
pub fn init_uniform(params: Vec<ParamMut<'_>>, hidden_size: usize, rng: &mut impl Rng) {
    let k = 1.0 / (hidden_size as f32).sqrt();
    for p in params {
        p.data.iter_mut().for_each(|v| *v = rng.random_range(-k..=k));
    }
}

/// Anything with named parameters: cells and layers. Gives PyTorch's `state_dict` and `load_state_dict`.
pub trait Module {
    /// The parameters under their PyTorch `state_dict` names, in PyTorch's order.
    fn named_params(&self) -> Vec<ParamRef<'_>>;

    /// The parameters, mutably.
    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>>;

    /// A copy of every parameter as a named tensor, like PyTorch's `state_dict()`.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        collect(self.named_params())
    }

    /// Overwrites every parameter from named tensors, like PyTorch's `load_state_dict(strict=True)`: a missing,
    /// unexpected or mis-shaped tensor is an error, and then nothing is changed.
    fn load_state_dict(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        assign(self.named_params_mut(), tensors)
    }

    /// Total number of parameter values.
    fn num_params(&self) -> usize {
        self.named_params().iter().map(|p| p.data.len()).sum()
    }
}

/// A module that learns: its parameters come with gradients, accumulated by every backward pass until zeroed,
/// as PyTorch's `.grad` is.
pub trait Trainable: Module {
    /// Every parameter with its gradient, in the order of [`Module::named_params`].
    fn parameters(&mut self) -> Vec<Param<'_>>;

    /// Sets every gradient to zero, like PyTorch's `zero_grad(set_to_none=False)`.
    fn zero_grad(&mut self) {
        for p in self.parameters() {
            p.grad.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn one_param(buf: &mut [f32]) -> Vec<ParamMut<'_>> {
        vec![ParamMut { name: "w".into(), shape: vec![2, 2], data: buf }]
    }

    #[test]
    fn assign_reports_missing_mis_shaped_and_unexpected() {
        let mut buf = [0.0; 4];
        let err = assign(one_param(&mut buf), &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("missing tensor `w`"), "{err}");

        let mut map = HashMap::new();
        map.insert("w".to_string(), Tensor::zeros([4]));
        let err = assign(one_param(&mut buf), &map).unwrap_err();
        assert!(err.to_string().contains("expected shape [2, 2], found [4]"), "{err}");

        map.insert("w".to_string(), Tensor::new([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
        map.insert("extra".to_string(), Tensor::zeros([1]));
        let err = assign(one_param(&mut buf), &map).unwrap_err();
        assert!(err.to_string().contains("unexpected tensor `extra`"), "{err}");
        assert_eq!(buf, [0.0; 4], "nothing is written on error");

        map.remove("extra");
        assign(one_param(&mut buf), &map).unwrap();
        assert_eq!(buf, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn init_uniform_stays_in_bounds() {
        let mut buf = vec![0.0; 1000];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        init_uniform(vec![ParamMut { name: "w".into(), shape: vec![1000], data: &mut buf }], 16, &mut rng);
        assert!(buf.iter().all(|v| v.abs() <= 0.25));
        assert!(buf.iter().any(|v| v.abs() > 0.2), "spread over the whole range");
    }
}
