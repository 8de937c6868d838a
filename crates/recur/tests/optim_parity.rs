//! Parity with PyTorch for optimizers, gradient clipping and learning-rate schedules: every fixture written by
//! `tools/gen_optim_fixtures.py` (PyTorch's own runs) is reproduced at every step to within 1e-6, absolute or
//! relative to `max(1, |reference|)`; and an optimizer saved and restored mid-run continues bit for bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use recur::model_file::TensorFile;
use recur::optim::{
    Adam, AdamConfig, Optimizer, Schedule, Scheduler, Sgd, SgdConfig, clip_grad_norm, clip_grad_value, load_state_file,
    save_state_file,
};
use recur::{Param, Tensor};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim")
}

fn index(kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("index.json")).expect("fixture index");
    let index: Value = serde_json::from_str(&text).expect("index is JSON");
    let names: Vec<String> = index[kind]
        .as_array()
        .expect("a list of cases")
        .iter()
        .map(|v| v.as_str().expect("case name").to_string())
        .collect();
    assert!(!names.is_empty(), "no {kind} fixtures");
    names
}

fn read(name: &str) -> TensorFile {
    TensorFile::read(dir().join(format!("{name}.safetensors"))).expect("fixture file")
}

fn json(file: &TensorFile, key: &str) -> Value {
    serde_json::from_str(&file.metadata[key]).expect("JSON metadata")
}

/// Error of `got` against `want`: absolute, or relative to `|want|` when that exceeds 1.
fn error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (f64::from(*g) - f64::from(*w)).abs() / f64::from(w.abs()).max(1.0))
        .fold(0.0, f64::max)
}

/// A parameter owned by the test.
#[derive(Clone, Debug, PartialEq)]
struct OwnedParam {
    name: String,
    shape: Vec<usize>,
    value: Vec<f32>,
    grad: Vec<f32>,
}

/// Parameters owned by the test, in training order.
#[derive(Clone, Debug, PartialEq)]
struct Owned(Vec<OwnedParam>);

impl Owned {
    fn params(&mut self) -> Vec<Param<'_>> {
        self.0
            .iter_mut()
            .map(|p| Param { name: p.name.clone(), shape: p.shape.clone(), value: &mut p.value, grad: &mut p.grad })
            .collect()
    }
}

/// Row `k` of a tensor stacked over steps.
fn row(t: &Tensor, k: usize) -> &[f32] {
    let len = t.len() / t.shape()[0];
    &t.data()[k * len..(k + 1) * len]
}

/// One optimizer fixture: its PyTorch run.
struct Run {
    name: String,
    file: TensorFile,
    config: Value,
    lrs: Vec<f64>,
    names: Vec<String>,
    steps: usize,
    mid: usize,
}

impl Run {
    fn load(name: &str) -> Self {
        let file = read(name);
        let config = json(&file, "config");
        let lrs = json(&file, "lrs").as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let names = json(&file, "params").as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        let steps = file.metadata["steps"].parse().unwrap();
        let mid = file.metadata["mid"].parse().unwrap();
        Run { name: name.to_string(), file, config, lrs, names, steps, mid }
    }

    fn tensor(&self, key: &str) -> &Tensor {
        self.file.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
    }

    fn optimizer(&self) -> Box<dyn Optimizer> {
        let c = &self.config;
        let f = |key: &str, default: f64| c.get(key).and_then(Value::as_f64).unwrap_or(default);
        let b = |key: &str| c.get(key).and_then(Value::as_bool).unwrap_or(false);
        let lr = f("lr", 0.0);
        match c["optimizer"].as_str().unwrap() {
            "sgd" => Box::new(
                Sgd::new(
                    SgdConfig::new(lr)
                        .momentum(f("momentum", 0.0))
                        .dampening(f("dampening", 0.0))
                        .weight_decay(f("weight_decay", 0.0))
                        .nesterov(b("nesterov")),
                )
                .unwrap(),
            ),
            kind @ ("adam" | "adamw") => {
                let base = if kind == "adam" { AdamConfig::new(lr) } else { AdamConfig::adamw(lr) };
                let betas = c.get("betas").and_then(Value::as_array);
                let (b1, b2) = betas.map_or(base.betas, |v| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap()));
                let config = base
                    .betas(b1, b2)
                    .eps(f("eps", base.eps))
                    .weight_decay(f("weight_decay", base.weight_decay))
                    .amsgrad(b("amsgrad"));
                let adam = Adam::new(config).unwrap();
                assert_eq!(adam.kind(), kind);
                Box::new(adam)
            }
            other => panic!("unknown optimizer {other}"),
        }
    }

    /// The parameters as they were after `done` steps (0: the initial values), with zero gradients.
    fn params_after(&self, done: usize) -> Owned {
        Owned(
            self.names
                .iter()
                .map(|n| {
                    let init = self.tensor(&format!("init.{n}"));
                    let value = if done == 0 {
                        init.data().to_vec()
                    } else {
                        row(self.tensor(&format!("param.{n}")), done - 1).to_vec()
                    };
                    OwnedParam { name: n.clone(), shape: init.shape().to_vec(), value, grad: vec![0.0; init.len()] }
                })
                .collect(),
        )
    }

    /// PyTorch's optimizer state after `mid` steps, under recur's names (`<buffer>.<param>`).
    fn pytorch_state(&self) -> HashMap<String, Tensor> {
        self.file
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix("state.").map(|k| (k.to_string(), t.clone())))
            .collect()
    }

    /// Runs steps `from..to` on `owned`, returning the largest error against PyTorch's parameters.
    fn run(&self, opt: &mut dyn Optimizer, owned: &mut Owned, from: usize, to: usize) -> f64 {
        let mut worst: f64 = 0.0;
        for k in from..to {
            for p in owned.0.iter_mut() {
                p.grad.copy_from_slice(row(self.tensor(&format!("grad.{}", p.name)), k));
            }
            opt.set_lr(self.lrs[k]);
            opt.step(&mut owned.params()).unwrap_or_else(|e| panic!("{}: step {k}: {e}", self.name));
            for OwnedParam { name, value, .. } in &owned.0 {
                let err = error(value, row(self.tensor(&format!("param.{name}")), k));
                assert!(err <= TOLERANCE, "{}: step {k}: `{name}` differs from PyTorch by {err}", self.name);
                worst = worst.max(err);
            }
        }
        worst
    }
}

#[test]
fn optimizers_match_pytorch_at_every_step() {
    let mut report = Vec::new();
    for name in index("optimizers") {
        let run = Run::load(&name);
        let mut opt = run.optimizer();
        let mut owned = run.params_after(0);
        let mut worst = run.run(opt.as_mut(), &mut owned, 0, run.mid);
        assert_eq!(opt.step_count(), run.mid as u64);

        // The buffers after `mid` steps are PyTorch's, under PyTorch's names.
        let want = run.pytorch_state();
        let got: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
        let mut got_names: Vec<&String> = got.keys().collect();
        let mut want_names: Vec<&String> = want.keys().collect();
        got_names.sort();
        want_names.sort();
        assert_eq!(got_names, want_names, "{name}: state buffers");
        for (key, t) in &want {
            assert_eq!(got[key].shape(), t.shape(), "{name}: shape of {key}");
            let err = error(got[key].data(), t.data());
            assert!(err <= TOLERANCE, "{name}: state {key} differs by {err}");
            worst = worst.max(err);
        }

        worst = worst.max(run.run(opt.as_mut(), &mut owned, run.mid, run.steps));
        report.push(format!("{name}: {worst:.2e}"));
    }
    println!("max error per optimizer case: {}", report.join(", "));
}

#[test]
fn resuming_from_pytorch_state_matches_pytorch() {
    for name in index("optimizers") {
        let run = Run::load(&name);
        let mut opt = run.optimizer();
        let mut owned = run.params_after(run.mid);
        opt.load_state_tensors(&owned.params(), &run.pytorch_state(), run.mid as u64)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        run.run(opt.as_mut(), &mut owned, run.mid, run.steps);
        assert_eq!(opt.step_count(), run.steps as u64);
    }
}

#[test]
fn saved_and_restored_state_continues_identically() {
    let tmp = std::env::temp_dir().join(format!("recur-optim-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in index("optimizers") {
        let run = Run::load(&name);
        let mut original = run.optimizer();
        let mut owned = run.params_after(0);
        run.run(original.as_mut(), &mut owned, 0, run.mid);

        let path = tmp.join(format!("{name}.safetensors"));
        save_state_file(original.as_ref(), &path).unwrap();
        let mut restored = run.optimizer();
        restored.set_lr(123.0);
        load_state_file(restored.as_mut(), &owned.params(), &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(restored.step_count(), original.step_count(), "{name}");
        assert_eq!(restored.lr(), original.lr(), "{name}: lr restored");
        assert_eq!(restored.state_tensors(), original.state_tensors(), "{name}");

        let mut copy = owned.clone();
        run.run(original.as_mut(), &mut owned, run.mid, run.steps);
        run.run(restored.as_mut(), &mut copy, run.mid, run.steps);
        assert_eq!(copy, owned, "{name}: restored run diverges");
        assert_eq!(restored.state_tensors(), original.state_tensors(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn restoring_into_other_parameters_is_an_error() {
    let run = Run::load("adam");
    let mut opt = run.optimizer();
    let mut owned = run.params_after(0);
    run.run(opt.as_mut(), &mut owned, 0, 1);
    let state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();

    let mut renamed = owned.clone();
    renamed.0[0].name = "weight_ih_l1".into();
    let mut fresh = run.optimizer();
    assert!(fresh.load_state_tensors(&renamed.params(), &state, 1).is_err());
    assert!(fresh.step(&mut renamed.params()).is_ok(), "still fresh");
    assert!(opt.step(&mut renamed.params()).is_err(), "a renamed parameter is not the one the state was built for");
    let mut fewer = owned.clone();
    fewer.0.pop();
    assert!(opt.step(&mut fewer.params()).is_err());
    assert_eq!(opt.step_count(), 1);
}

fn clip_case(name: &str) -> (TensorFile, Owned) {
    let file = read(name);
    let names = json(&file, "params");
    let owned = Owned(
        names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let n = n.as_str().unwrap();
                let g = &file.tensors[&format!("grad.{n}")];
                OwnedParam {
                    name: n.to_string(),
                    shape: g.shape().to_vec(),
                    value: vec![0.0; g.len()],
                    grad: g.data().to_vec(),
                }
            })
            .collect(),
    );
    (file, owned)
}

fn assert_clipped(name: &str, file: &TensorFile, owned: &Owned) -> f64 {
    let mut worst: f64 = 0.0;
    for OwnedParam { name: n, grad, .. } in &owned.0 {
        let err = error(grad, file.tensors[&format!("clipped.{n}")].data());
        assert!(err <= TOLERANCE, "{name}: `{n}` differs from PyTorch by {err}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let mut report = Vec::new();
    for case in index("clip_norm") {
        let name = format!("clip_norm_{case}");
        let (file, mut owned) = clip_case(&name);
        let max_norm: f32 = file.metadata["max_norm"].parse().unwrap();
        let total = clip_grad_norm(&mut owned.params(), max_norm).unwrap();
        let want = file.tensors["total_norm"].data()[0];
        let mut worst = error(&[total], &[want]);
        assert!(worst <= TOLERANCE, "{name}: total norm {total} vs {want}");
        worst = worst.max(assert_clipped(&name, &file, &owned));
        report.push(format!("{case}: {worst:.2e}"));
    }
    println!("max error per clip_grad_norm case: {}", report.join(", "));
}

#[test]
fn clip_grad_value_matches_pytorch() {
    for case in index("clip_value") {
        let name = format!("clip_value_{case}");
        let (file, mut owned) = clip_case(&name);
        let clip: f32 = file.metadata["clip"].parse().unwrap();
        clip_grad_value(&mut owned.params(), clip).unwrap();
        assert_eq!(assert_clipped(&name, &file, &owned), 0.0, "{name}: exact");
    }
}

fn schedule_from_spec(spec: &Value) -> Schedule {
    let u = |key: &str| spec[key].as_u64().unwrap();
    let f = |key: &str| spec[key].as_f64().unwrap();
    match spec["kind"].as_str().unwrap() {
        "constant" => Schedule::constant(),
        "step" => Schedule::step_lr(u("step_size"), f("gamma")).unwrap(),
        "cosine" => Schedule::cosine(u("t_max"), f("eta_min")).unwrap(),
        "linear" => Schedule::linear(f("start_factor"), f("end_factor"), u("total_iters")).unwrap(),
        "sequential" => Schedule::sequential(
            spec["schedules"].as_array().unwrap().iter().map(schedule_from_spec).collect(),
            spec["milestones"].as_array().unwrap().iter().map(|m| m.as_u64().unwrap()).collect(),
        )
        .unwrap(),
        other => panic!("unknown schedule {other}"),
    }
}

#[test]
fn schedules_match_pytorch() {
    let file = read("schedules");
    let records = json(&file, "schedules");
    let records = records.as_array().unwrap();
    assert!(records.len() >= 5);
    let mut report = Vec::new();
    for record in records {
        let name = record["name"].as_str().unwrap();
        let base_lr = record["base_lr"].as_f64().unwrap();
        let want: Vec<f64> = record["lrs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(want.len(), 30, "{name}");
        let f32_values = file.tensors[name].data();
        let mut scheduler = Scheduler::new(schedule_from_spec(&record["spec"]), base_lr).unwrap();
        let mut worst: f64 = 0.0;
        for (t, w) in want.iter().enumerate() {
            let got = scheduler.lr();
            assert_eq!(got, scheduler.schedule().lr_at(base_lr, t as u64));
            let err = (got - w).abs() / w.abs().max(1.0);
            assert!(err <= TOLERANCE, "{name}: step {t}: {got} vs PyTorch {w}");
            assert_eq!(got as f32, f32_values[t], "{name}: step {t} as f32");
            worst = worst.max(err);
            scheduler.step();
        }
        report.push(format!("{name}: {worst:.1e}"));
    }
    println!("max error per schedule: {}", report.join(", "));
}
