//! Parity with PyTorch for the training building blocks: every case written by `tools/gen_blocks_fixtures.py`
//! (values and gradients from PyTorch's autograd) is reproduced to within 1e-5 relative to `max(1, |reference|)`.

use std::collections::HashMap;

use recur::{BceWithLogitsLoss, CrossEntropyLoss, Embedding, Linear, Module, MseLoss, Tensor};

mod common;

use common::{cases, report};

#[test]
fn linear_matches_pytorch() {
    let mut errors = Vec::new();
    for case in cases("blocks", "linear") {
        let weight = case.tensor("weight");
        let (out, inp) = (weight.shape()[0], weight.shape()[1]);
        let bias = case.meta("bias") == "true";
        let mut layer = Linear::<f32>::zeros(inp, out, bias).unwrap();
        let state: HashMap<String, Tensor> = ["weight", "bias"]
            .into_iter()
            .filter_map(|k| case.file.tensors.get(k).map(|t| (k.to_string(), t.clone())))
            .collect();
        layer.load_state_dict(&state).unwrap();

        let x = case.data("x");
        let rows = x.len() / inp;
        errors.push(case.compare("y", &layer.forward(x, rows).unwrap()));
        let dx = layer.backward(x, case.data("dy"), rows).unwrap();
        errors.push(case.compare("dx", &dx));
        errors.push(case.compare("dweight", layer.weight_grad()));
        if bias {
            errors.push(case.compare("dbias", layer.bias_grad().unwrap()));
        }
    }
    report("Linear", errors);
}

#[test]
fn embedding_matches_pytorch() {
    let mut errors = Vec::new();
    for case in cases("blocks", "embedding") {
        let weight = case.tensor("weight");
        let (num, dim) = (weight.shape()[0], weight.shape()[1]);
        let padding_idx = match case.meta("padding_idx") {
            "none" => None,
            p => Some(p.parse::<i64>().unwrap()),
        };
        let mut table = Embedding::<f32>::zeros(num, dim, padding_idx).unwrap();
        let state = HashMap::from([("weight".to_string(), weight.clone())]);
        table.load_state_dict(&state).unwrap();

        let indices = case.integers("indices");
        errors.push(case.compare("y", &table.forward(&indices).unwrap()));
        table.backward(&indices, case.data("dy")).unwrap();
        errors.push(case.compare("dweight", table.weight_grad()));
    }
    report("Embedding", errors);
}

#[test]
fn cross_entropy_matches_pytorch() {
    let mut errors = Vec::new();
    for case in cases("blocks", "cross_entropy") {
        let logits = case.tensor("logits");
        let classes = logits.shape()[1];
        let targets = case.integers("targets");
        let ignore_index: i64 = case.meta("ignore_index").parse().unwrap();
        let mut ce = CrossEntropyLoss::new().with_ignore_index(ignore_index);
        if let Some(w) = case.optional("weight") {
            ce = ce.with_weight(w.to_vec());
        }
        let (loss, grad) = ce.forward(logits.data(), classes, &targets, None).unwrap();
        errors.push(case.compare("loss", &[loss]));
        errors.push(case.compare("dlogits", &grad));

        // A row mask in place of ignore_index must give the same numbers, whatever the masked rows' targets.
        let mask: Vec<bool> = targets.iter().map(|&t| t != ignore_index).collect();
        let padded: Vec<i64> = targets.iter().map(|&t| if t == ignore_index { 12345 } else { t }).collect();
        let (loss, grad) =
            ce.clone().with_ignore_index(-1).forward(logits.data(), classes, &padded, Some(&mask)).unwrap();
        errors.push(case.compare("loss", &[loss]));
        errors.push(case.compare("dlogits", &grad));
    }
    report("CrossEntropyLoss", errors);
}

#[test]
fn mse_matches_pytorch() {
    let mut errors = Vec::new();
    for case in cases("blocks", "mse") {
        let (loss, grad) = MseLoss.forward(case.data("input"), case.data("target"), None).unwrap();
        errors.push(case.compare("loss", &[loss]));
        errors.push(case.compare("dinput", &grad));
    }
    report("MseLoss", errors);
}

#[test]
fn bce_with_logits_matches_pytorch() {
    let mut errors = Vec::new();
    for case in cases("blocks", "bce_with_logits") {
        let mut bce = BceWithLogitsLoss::new();
        if let Some(pw) = case.optional("pos_weight") {
            bce = bce.with_pos_weight(pw.to_vec());
        }
        let (loss, grad) = bce.forward(case.data("logits"), case.data("targets"), None).unwrap();
        errors.push(case.compare("loss", &[loss]));
        errors.push(case.compare("dlogits", &grad));
    }
    report("BceWithLogitsLoss", errors);
}
