//! The walk's findings into a recur model: the layers checked to form one stack, their parameters renamed by
//! layer, the states and outputs mapped onto the model's, and the model built through recur's model files (so it
//! gets their checks of declared sizes).

use std::collections::HashMap;

use recur::model_file::{CONFIG_KEY, TensorFile};
use recur::{LoadOptions, ReadoutName, Recurrent, RecurrentConfig, SequenceModel, SequenceModelConfig, Tensor};

use super::value::{Axes, Flow, Readout, Value};
use super::walk::{Layer, StateSource, Walk};
use super::{Imported, ImportedModel, OutputRole, Signature, graph_error};
use crate::error::{Error, Result};
use crate::proto::GraphProto;

/// Builds the model the walk found.
pub(crate) fn assemble(graph: &GraphProto, walk: Walk) -> Result<Imported> {
    if walk.layers.is_empty() {
        return Err(graph_error("the graph has no LSTM, GRU or RNN node"));
    }
    let batch_first = walk.batch_first.unwrap_or(false);
    let config = stack_config(&walk.layers, batch_first)?;
    let d = config.directions();
    let initial_h = state_input(&walk.layers, |l| &l.initial_h, d, "initial_h")?;
    let initial_c = state_input(&walk.layers, |l| &l.initial_c, d, "initial_c")?;
    let last = walk.layers.len() - 1;

    let mut outputs = Vec::new();
    let mut head = None;
    for output in &graph.output {
        let name = output.name();
        let role = match walk.values.get(name) {
            Some(Value::Flow(Flow::Sequence { axes, layer: Some(k) }))
                if *k == last && *axes == if batch_first { Axes::BatchFirst } else { Axes::TimeMajor } =>
            {
                OutputRole::Output
            }
            Some(Value::Flow(Flow::LayerY { layer, transposed: false })) if *layer == last && !batch_first => {
                OutputRole::OnnxY
            }
            Some(Value::Flow(Flow::States { cell, first: 0, end })) if *end == last + 1 => {
                if *cell {
                    OutputRole::FinalC
                } else {
                    OutputRole::FinalH
                }
            }
            Some(Value::Flow(Flow::Head { readout, weight, bias, rows })) if head.is_none() => {
                head = Some((*readout, weight.clone(), bias.clone()));
                if *rows && matches!(readout, Readout::EveryStep(_)) {
                    OutputRole::PredictionRows
                } else {
                    OutputRole::Predictions
                }
            }
            _ => {
                return Err(graph_error(format!(
                    "graph output `{name}` is none of the model's outputs (the last layer's output, the final \
                     states of every layer, a linear head's predictions)"
                )));
            }
        };
        outputs.push((name.to_owned(), role));
    }

    // The feature input is the float input that is not a state: the states' inputs were only ever sliced.
    let states = [initial_h.as_deref(), initial_c.as_deref()];
    let features = graph.input.iter().map(|i| i.name()).find(|name| {
        matches!(walk.values.get(*name), Some(Value::Flow(Flow::Input(_)))) && !states.contains(&Some(*name))
    });
    let input = match (&walk.embedding, features) {
        (Some((_, ids)), _) => ids.clone(),
        (None, Some(name)) => name.to_owned(),
        (None, None) => return Err(graph_error("no graph input reaches the first layer")),
    };
    let signature = Signature { input, sequence_lens: walk.lengths.clone(), initial_h, initial_c, outputs };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (k, layer) in walk.layers.iter().enumerate() {
        for (name, tensor) in &layer.node.params {
            tensors.insert(name.replacen("_l0", &format!("_l{k}"), 1), tensor.clone());
        }
    }
    let model = match (head, &walk.embedding) {
        (None, None) => {
            let metadata = HashMap::from([(CONFIG_KEY.to_string(), config.to_json())]);
            ImportedModel::Layer(Recurrent::from_tensor_file(
                &TensorFile { tensors, metadata, ..Default::default() },
                &LoadOptions::default(),
            )?)
        }
        (None, Some(_)) => return Err(graph_error("an embedding without a linear head has no recur model")),
        (Some((readout, weight, bias)), embedding) => {
            let readout = match readout {
                Readout::EveryStep(axes) if axes == if batch_first { Axes::BatchFirst } else { Axes::TimeMajor } => {
                    ReadoutName::EveryStep
                }
                Readout::EveryStep(_) => {
                    return Err(graph_error("the head reads the steps in another layout than the input's"));
                }
                Readout::Last => ReadoutName::Last,
                Readout::Mean => ReadoutName::Mean,
            };
            let mut prefixed: HashMap<String, Tensor> =
                tensors.into_iter().map(|(name, t)| (format!("rnn.{name}"), t)).collect();
            let outputs = weight.shape()[0];
            prefixed.insert("head.weight".into(), weight);
            prefixed.insert("head.bias".into(), bias);
            let vocab = embedding.as_ref().map(|(table, _)| table.shape()[0]);
            if let Some((table, _)) = embedding {
                prefixed.insert("embedding.weight".into(), table.clone());
            }
            let model_config = SequenceModelConfig { vocab, recurrent: config, readout, outputs };
            let json = serde_json::to_string(&model_config).expect("a configuration always serialises");
            let metadata = HashMap::from([("model".to_string(), json)]);
            ImportedModel::Sequence(Box::new(SequenceModel::from_tensor_file(&TensorFile {
                tensors: prefixed,
                metadata,
                ..Default::default()
            })?))
        }
    };
    Ok(Imported { model, signature })
}

/// One configuration for every layer: the same cell, sizes and options, each layer reading the one before.
fn stack_config(layers: &[Layer], batch_first: bool) -> Result<RecurrentConfig> {
    let first = &layers[0].node.config;
    for (k, layer) in layers.iter().enumerate().skip(1) {
        let c = &layer.node.config;
        let expected_input = first.directions() * first.output_size();
        let same = RecurrentConfig { input_size: first.input_size, ..c.clone() } == *first;
        if !same || c.input_size != expected_input {
            return Err(Error::Unsupported {
                node: Box::new(layer.node.label.clone()),
                reason: format!(
                    "layer {k} differs from layer 0 in more than its input size ({c:?} after {first:?}); recur's \
                     stacks repeat one layer"
                ),
            });
        }
    }
    Ok(RecurrentConfig { num_layers: layers.len(), batch_first, ..first.clone() })
}

/// The graph input every layer's initial states come from, or `None` for zeros; each layer must read its own rows.
fn state_input(
    layers: &[Layer],
    source: impl Fn(&Layer) -> &StateSource,
    directions: usize,
    what: &str,
) -> Result<Option<String>> {
    let mut found: Option<String> = None;
    let all_zeros = layers.iter().all(|l| *source(l) == StateSource::Zeros);
    if all_zeros {
        return Ok(None);
    }
    for (k, layer) in layers.iter().enumerate() {
        let fail = |why: &str| Error::Unsupported {
            node: Box::new(layer.node.label.clone()),
            reason: format!("{what}: {why}"),
        };
        let StateSource::Given { input, rows } = source(layer) else {
            return Err(fail("some layers start from zeros and others from a graph input"));
        };
        let expected = (k * directions, (k + 1) * directions);
        match rows {
            Some(r) if *r == expected => {}
            None if layers.len() == 1 => {}
            _ => {
                return Err(fail(&format!(
                    "layer {k} does not read rows {}..{} of the states",
                    expected.0, expected.1
                )));
            }
        }
        match &found {
            Some(previous) if previous != input => return Err(fail("the layers read different graph inputs")),
            _ => found = Some(input.clone()),
        }
    }
    Ok(found)
}
