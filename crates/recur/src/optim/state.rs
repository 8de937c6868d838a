//! Per-parameter optimizer buffers (PyTorch's `optimizer.state[param]`), keyed by the parameter's position and
//! checked against its name and length on every step, and their conversion to and from named tensors.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::params::Param;
use crate::tensor::Tensor;

/// Every prefix any recur optimizer uses for its state tensors: a tensor whose name starts with one of these
/// (followed by `.`) is optimizer state, anything else belongs to someone else (the model, for instance).
pub(crate) const ALL_KINDS: [&str; 4] = ["momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// The buffers of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// The parameter's name when the state was created.
    pub name: String,
    /// Its shape (only used to export the buffers as tensors).
    pub shape: Vec<usize>,
    /// One buffer per kind, in the order of [`Slots::kinds`], each as long as the parameter.
    pub buffers: Vec<Vec<f32>>,
}

/// The state of an optimizer over an ordered list of parameters: its buffers and its step count.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slots {
    kinds: &'static [&'static str],
    /// `None` until the first step (or a load) fixes the parameter list.
    entries: Option<Vec<Entry>>,
    /// Steps taken (PyTorch's `state["step"]`).
    steps: u64,
}

impl Slots {
    /// Empty state for an optimizer keeping one buffer of each of `kinds` per parameter.
    pub fn new(kinds: &'static [&'static str]) -> Self {
        Slots { kinds, entries: None, steps: 0 }
    }

    /// Steps taken, including those restored by [`Slots::load`].
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Counts one more step, once its update is done.
    pub fn finish_step(&mut self) {
        self.steps = self.steps.saturating_add(1);
    }

    /// Whether the parameter list is fixed (after a first step or a load).
    #[cfg(test)]
    pub fn is_bound(&self) -> bool {
        self.entries.is_some()
    }

    /// Checks `params` against the state (creating zeroed buffers the first time) and returns the entries, one per
    /// parameter in the same order. Fails, changing nothing, when a parameter's gradient is not as long as its
    /// value, its length disagrees with its shape, or the list differs (count, name or length) from the one the
    /// state was created for.
    pub fn bind(&mut self, params: &[Param<'_>]) -> Result<&mut [Entry]> {
        check_params(params)?;
        match &self.entries {
            Some(entries) => check_same(entries, params)?,
            None => {
                let entries = params
                    .iter()
                    .map(|p| Entry {
                        name: p.name.clone(),
                        shape: p.shape.clone(),
                        buffers: vec![vec![0.0; p.value.len()]; self.kinds.len()],
                    })
                    .collect();
                self.entries = Some(entries);
            }
        }
        Ok(self.entries.as_deref_mut().unwrap_or_default())
    }

    /// Every buffer as a tensor named `<kind>.<parameter name>` with the parameter's shape, parameter by
    /// parameter, in the order of `kinds`. Empty before the first step.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for entry in self.entries.iter().flatten() {
            for (kind, buffer) in self.kinds.iter().zip(&entry.buffers) {
                out.push((format!("{kind}.{}", entry.name), Tensor::from_parts(entry.shape.clone(), buffer.clone())));
            }
        }
        out
    }

    /// Replaces the state with the step count `steps` and the buffers found in `tensors` for `params`, or with
    /// empty buffers when `steps == 0` (an optimizer that has not stepped yet).
    ///
    /// Tensors whose name does not start with an optimizer-state prefix (see [`ALL_KINDS`]) are ignored, so that
    /// one file can hold a model and its optimizer. Every expected buffer must be present with its parameter's
    /// shape, and no other optimizer-state tensor may be: otherwise this fails and nothing changes.
    pub fn load(&mut self, params: &[Param<'_>], tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let bound = steps > 0;
        check_params(params)?;
        let mut expected: HashMap<String, &[usize]> = HashMap::new();
        if bound {
            for p in params {
                for kind in self.kinds {
                    expected.insert(format!("{kind}.{}", p.name), &p.shape);
                }
            }
        }
        let mut unexpected: Vec<&String> =
            tensors.keys().filter(|name| is_state_name(name) && !expected.contains_key(*name)).collect();
        unexpected.sort();
        if let Some(name) = unexpected.first() {
            return Err(Error::UnexpectedTensor { name: (*name).clone(), shape: tensors[*name].shape().to_vec() });
        }
        if !bound {
            self.entries = None;
            self.steps = 0;
            return Ok(());
        }
        let mut entries = Vec::with_capacity(params.len());
        for p in params {
            let mut buffers = Vec::with_capacity(self.kinds.len());
            for kind in self.kinds {
                let name = format!("{kind}.{}", p.name);
                let tensor = match tensors.get(&name) {
                    None => {
                        return Err(Error::MissingTensor { name, expected: p.shape.clone() });
                    }
                    Some(t) => t,
                };
                if tensor.shape() != p.shape.as_slice() {
                    return Err(Error::TensorShape { name, expected: p.shape.clone(), found: tensor.shape().to_vec() });
                }
                buffers.push(tensor.data().to_vec());
            }
            entries.push(Entry { name: p.name.clone(), shape: p.shape.clone(), buffers });
        }
        self.entries = Some(entries);
        self.steps = steps;
        Ok(())
    }
}

/// Whether `name` is `<kind>.<something>` for a known optimizer-state kind.
fn is_state_name(name: &str) -> bool {
    ALL_KINDS.iter().any(|kind| name.strip_prefix(kind).is_some_and(|rest| rest.starts_with('.')))
}

/// Each parameter's value, gradient and shape agree in length.
fn check_params(params: &[Param<'_>]) -> Result<()> {
    for p in params {
        if p.grad.len() != p.value.len() {
            return Err(Error::shape(
                format!("gradient of `{}`", p.name),
                format!("{} values, like the parameter", p.value.len()),
                &[p.grad.len()],
            ));
        }
        let expected: usize = p.shape.iter().product();
        if expected != p.value.len() {
            return Err(Error::DataLength { shape: p.shape.clone(), expected, found: p.value.len() });
        }
    }
    Ok(())
}

/// The parameter list is the one the state was built for: same count, and at each position the same name and
/// length.
fn check_same(entries: &[Entry], params: &[Param<'_>]) -> Result<()> {
    if entries.len() != params.len() {
        return Err(Error::config(format!(
            "optimizer state holds {} parameters, but {} were given",
            entries.len(),
            params.len()
        )));
    }
    for (i, (entry, p)) in entries.iter().zip(params).enumerate() {
        let len: usize = entry.shape.iter().product();
        if entry.name != p.name || len != p.value.len() {
            return Err(Error::config(format!(
                "optimizer state for parameter {i} is `{}` with {len} values, but `{}` with {} values was given",
                entry.name,
                p.name,
                p.value.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(name: &str, value: &'a mut [f32], grad: &'a mut [f32]) -> Param<'a> {
        Param { name: name.into(), shape: vec![value.len()], value, grad }
    }

    #[test]
    fn bind_creates_zeroed_buffers_then_checks_names_and_lengths() {
        let (mut v, mut g) = ([1.0, 2.0], [0.0, 0.0]);
        let mut slots = Slots::new(&["exp_avg", "exp_avg_sq"]);
        assert!(!slots.is_bound());
        {
            let params = [param("w", &mut v, &mut g)];
            let entries = slots.bind(&params).unwrap();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].buffers, vec![vec![0.0; 2]; 2]);
        }
        assert!(slots.is_bound());

        let (mut v3, mut g3) = ([0.0; 3], [0.0; 3]);
        let err = slots.bind(&[param("w", &mut v3, &mut g3)]).unwrap_err();
        assert!(err.to_string().contains("`w` with 2 values"), "{err}");
        let err = slots.bind(&[param("b", &mut v, &mut g)]).unwrap_err();
        assert!(err.to_string().contains("but `b`"), "{err}");
        let err = slots.bind(&[]).unwrap_err();
        assert!(err.to_string().contains("holds 1 parameters"), "{err}");
    }

    #[test]
    fn bind_rejects_gradient_and_shape_length_mismatch() {
        let (mut v, mut g) = ([1.0, 2.0], [0.0]);
        let mut slots = Slots::new(&["exp_avg"]);
        let err = slots.bind(&[param("w", &mut v, &mut g)]).unwrap_err();
        assert!(err.to_string().contains("gradient of `w`"), "{err}");

        let mut g2 = [0.0, 0.0];
        let p = Param { name: "w".into(), shape: vec![3], value: &mut v, grad: &mut g2 };
        assert!(slots.bind(&[p]).is_err());
        assert!(!slots.is_bound(), "nothing is bound after an error");
    }

    #[test]
    fn tensors_round_trip_and_load_is_strict() {
        let (mut v, mut g) = ([1.0, 2.0], [0.0, 0.0]);
        let mut slots = Slots::new(&["momentum_buffer"]);
        let params = [param("w", &mut v, &mut g)];
        slots.bind(&params).unwrap()[0].buffers[0] = vec![3.0, 4.0];
        slots.finish_step();
        let tensors: HashMap<String, Tensor> = slots.tensors().into_iter().collect();
        assert_eq!(tensors["momentum_buffer.w"].data(), &[3.0, 4.0]);

        let mut fresh = Slots::new(&["momentum_buffer"]);
        let mut with_model = tensors.clone();
        with_model.insert("w".into(), Tensor::zeros([2]));
        fresh.load(&params, &with_model, 1).unwrap();
        assert_eq!(fresh, slots);

        let mut extra = tensors.clone();
        extra.insert("exp_avg.w".into(), Tensor::zeros([2]));
        let err = fresh.load(&params, &extra, 1).unwrap_err();
        assert!(err.to_string().contains("unexpected tensor `exp_avg.w`"), "{err}");
        let err = fresh.load(&params, &tensors, 0).unwrap_err();
        assert!(err.to_string().contains("unexpected"), "{err}");
        let err = fresh.load(&params, &HashMap::new(), 1).unwrap_err();
        assert!(err.to_string().contains("missing tensor `momentum_buffer.w`"), "{err}");
        let mut bad = HashMap::new();
        bad.insert("momentum_buffer.w".to_string(), Tensor::zeros([1, 2]));
        assert!(fresh.load(&params, &bad, 1).is_err());
        assert_eq!(fresh, slots, "nothing changes on error");

        fresh.load(&params, &HashMap::new(), 0).unwrap();
        assert!(!fresh.is_bound());
        assert_eq!(fresh.steps(), 0);
    }

    #[test]
    fn state_names_need_a_known_prefix_and_a_dot() {
        assert!(is_state_name("exp_avg.w"));
        assert!(is_state_name("exp_avg_sq.rnn.weight_hh_l0"));
        assert!(!is_state_name("exp_avgw"));
        assert!(!is_state_name("weight_ih_l0"));
    }
}
