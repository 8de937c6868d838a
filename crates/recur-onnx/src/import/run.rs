//! An imported model run on the graph's own inputs and outputs, by name: what a caller that had the ONNX file
//! (and the tests that compare with its expected outputs) hands it and gets back.

use std::collections::HashMap;

use recur::model::CarriedState;
use recur::{RecurrentOutput, SequenceInput, Tensor};

use super::{Imported, ImportedModel, OutputRole};
use crate::error::{Error, Result};
use crate::op::time_major_y;
use crate::recurrent::known_tensor;

/// A value for a graph input.
#[derive(Clone, Debug, PartialEq)]
pub enum InputValue {
    /// Floating-point values (features, states).
    Float(Tensor),
    /// Integers with their shape (token ids, `sequence_lens`).
    Int(Vec<i64>, Vec<usize>),
}

impl Imported {
    /// Runs the model on `inputs` (by graph input name) and returns every graph output by name, shaped as the
    /// graph declares it.
    pub fn run(&self, inputs: &HashMap<String, InputValue>) -> Result<HashMap<String, Tensor>> {
        let sig = &self.signature;
        let float = |name: &Option<String>| -> Result<Option<&Tensor>> {
            match name.as_ref().map(|n| (n, inputs.get(n))) {
                None | Some((_, None)) => Ok(None),
                Some((_, Some(InputValue::Float(t)))) => Ok(Some(t)),
                Some((n, Some(InputValue::Int(..)))) => Err(input_error(n, "floats", "integers")),
            }
        };
        let lengths = match sig.sequence_lens.as_ref().and_then(|n| inputs.get(n).map(|v| (n, v))) {
            None => None,
            Some((_, InputValue::Int(values, _))) => Some(
                values
                    .iter()
                    .map(|&v| {
                        usize::try_from(v)
                            .map_err(|_| input_error("sequence_lens", "lengths of 1 or more", &v.to_string()))
                    })
                    .collect::<Result<Vec<usize>>>()?,
            ),
            Some((n, InputValue::Float(_))) => return Err(input_error(n, "integers", "floats")),
        };
        let (h0, c0) = (float(&sig.initial_h)?, float(&sig.initial_c)?);
        let input = inputs.get(&sig.input).ok_or_else(|| input_error(&sig.input, "a value", "none"))?;
        let (out, predictions) = match (&self.model, input) {
            (ImportedModel::Layer(layer), InputValue::Float(x)) => {
                let out = match &lengths {
                    Some(l) => layer.forward_with_lengths(x, l, h0, c0)?,
                    None => layer.forward(x, h0, c0)?,
                };
                (out, None)
            }
            (ImportedModel::Sequence(model), value) => {
                let batch_first = model.config().recurrent.batch_first;
                let ids: Vec<usize>;
                let (sequence, steps, batch) = match value {
                    InputValue::Float(x) => {
                        let [a, b, _] = x.shape()[..] else {
                            return Err(input_error(&sig.input, "a rank-3 tensor", &format!("{:?}", x.shape())));
                        };
                        (SequenceInput::Features(x), if batch_first { b } else { a }, if batch_first { a } else { b })
                    }
                    InputValue::Int(values, shape) => {
                        let [a, b] = shape[..] else {
                            return Err(input_error(&sig.input, "token ids of rank 2", &format!("{shape:?}")));
                        };
                        ids = values
                            .iter()
                            .map(|&v| {
                                usize::try_from(v)
                                    .map_err(|_| input_error(&sig.input, "token ids of 0 or more", &v.to_string()))
                            })
                            .collect::<Result<_>>()?;
                        let (steps, batch) = if batch_first { (b, a) } else { (a, b) };
                        (SequenceInput::Tokens { ids: &ids, steps, batch }, steps, batch)
                    }
                };
                let state = match h0 {
                    Some(h) => CarriedState::from_tensors(h.clone(), c0.cloned()),
                    None => CarriedState::new(),
                };
                let (y, out) = model.forward(sequence, lengths.as_deref(), &state)?;
                let outputs = model.config().outputs;
                let shape = match model.config().readout {
                    recur::ReadoutName::EveryStep if batch_first => vec![batch, steps, outputs],
                    recur::ReadoutName::EveryStep => vec![steps, batch, outputs],
                    _ => vec![batch, outputs],
                };
                (out, Some(known_tensor(shape, y)))
            }
            (ImportedModel::Layer(_), InputValue::Int(..)) => {
                return Err(input_error(&sig.input, "features (floats)", "integers"));
            }
        };
        self.outputs(out, predictions)
    }

    fn outputs(&self, out: RecurrentOutput, predictions: Option<Tensor>) -> Result<HashMap<String, Tensor>> {
        let config = self.recurrent().config();
        let mut result = HashMap::new();
        for (name, role) in &self.signature.outputs {
            let value = match role {
                OutputRole::Output => out.output.clone(),
                OutputRole::OnnxY => time_major_y(&out.output, config.directions(), config.output_size()),
                OutputRole::FinalH => out.h_n.clone(),
                OutputRole::FinalC => out.c_n.clone().ok_or_else(|| input_error(name, "an LSTM", "another cell"))?,
                OutputRole::Predictions => predictions.clone().ok_or_else(|| input_error(name, "a head", "none"))?,
                OutputRole::PredictionRows => {
                    let p = predictions.clone().ok_or_else(|| input_error(name, "a head", "none"))?;
                    let outputs = *p.shape().last().expect("predictions have a shape");
                    known_tensor(vec![p.len() / outputs.max(1), outputs], p.into_data())
                }
            };
            result.insert(name.clone(), value);
        }
        Ok(result)
    }
}

fn input_error(name: &str, expected: &str, found: &str) -> Error {
    Error::Recur(recur::Error::config(format!("graph input or output `{name}`: expected {expected}, found {found}")))
}
