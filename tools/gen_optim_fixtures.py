"""Generate PyTorch reference fixtures for recur's optimizers, gradient clipping and learning-rate schedules.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_optim_fixtures.py

(Pinned package versions are in `tools/requirements.txt`.)

Each run deletes `crates/recur/tests/fixtures/optim/` -- and only that folder; the sibling folders belong to
`tools/gen_fixtures.py` -- and rewrites it completely. Output is deterministic (every case seeds torch from its
own index) and byte-for-byte reproducible (metadata keys are sorted after writing). All tensors are float32;
metadata values are strings, JSON where structured. Floats inside JSON are Python's `repr`, so they round-trip.

Layout written (see also the README.md written into the folder):

* `<case>.safetensors`, one per optimizer configuration, run for `STEPS` steps on three small parameters named
  like an LSTM's (`PARAMS`):
  - `init.<p>`: the parameter before the first step;
  - `grad.<p>`: shape [STEPS, *shape], row k the gradient fed at step k (k = 0 .. STEPS-1);
  - `param.<p>`: shape [STEPS, *shape], row k the parameter after step k;
  - `state.<buffer>.<p>`: PyTorch's `optimizer.state[p][buffer]` after `MID` steps (`momentum_buffer`,
    `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`), so that a reader can resume from PyTorch's own state;
  - metadata `config` (JSON: `optimizer` = sgd/adam/adamw and its hyper-parameters), `lrs` (JSON list: the
    learning rate set before each step), `params` (JSON list of names, in order), `steps`, `mid`.
* `clip_norm_<case>.safetensors` / `clip_value_<case>.safetensors`: `grad.<p>` before and `clipped.<p>` after
  `clip_grad_norm_` / `clip_grad_value_`, `total_norm` (shape [1], norm cases only); metadata `params`,
  `max_norm` or `clip`.
* `schedules.safetensors`: one float32 tensor of shape [SCHEDULE_STEPS] per schedule, the learning rate at
  positions 0 .. SCHEDULE_STEPS-1 (read from `param_groups[0]["lr"]` after each `scheduler.step()`); metadata
  `schedules`: JSON list of {name, base_lr, spec, lrs} where `spec` describes the schedule and `lrs` holds the
  same values as exact doubles.
* `index.json`: {"optimizers": [...], "clip_norm": [...], "clip_value": [...]} case names.
"""

import json
import math
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "recur" / "tests" / "fixtures" / "optim"

PARAMS = [("weight_ih_l0", (6, 3)), ("weight_hh_l0", (6, 2)), ("bias_ih_l0", (6,))]
STEPS = 6
MID = 3
SCHEDULE_STEPS = 30

README = """\
# recur optimizer fixtures (generated -- do not edit by hand)

Reference runs of `torch.optim.SGD`, `torch.optim.Adam`, `torch.optim.AdamW`, of
`torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`, and of the learning-rate
schedulers `StepLR`, `CosineAnnealingLR`, `LinearLR` and `SequentialLR`. The
test `crates/recur/tests/optim_parity.rs` checks that recur reproduces them.
The layout is described in the docstring of `tools/gen_optim_fixtures.py`.

All tensors are float32. To regenerate (this deletes and rewrites this folder
only), run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_optim_fixtures.py
"""

# (name, config, lrs or None). `lrs` overrides the learning rate before each step (exercises set_lr).
OPTIMIZER_CASES = [
    ("sgd_plain", {"optimizer": "sgd", "lr": 0.1}, None),
    ("sgd_weight_decay", {"optimizer": "sgd", "lr": 0.05, "weight_decay": 0.1}, None),
    ("sgd_momentum", {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, None),
    ("sgd_dampening", {"optimizer": "sgd", "lr": 0.05, "momentum": 0.8, "dampening": 0.3}, None),
    ("sgd_nesterov", {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}, None),
    (
        "sgd_all",
        {"optimizer": "sgd", "lr": 0.02, "momentum": 0.7, "dampening": 0.1, "weight_decay": 0.05},
        None,
    ),
    (
        "sgd_nesterov_weight_decay_lr_changes",
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        [0.05, 0.1, 0.025, 0.07, 0.01, 0.03],
    ),
    ("adam", {"optimizer": "adam", "lr": 0.01}, None),
    ("adam_weight_decay", {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.1}, None),
    (
        "adam_betas_eps",
        {"optimizer": "adam", "lr": 0.05, "betas": [0.3, 0.8], "eps": 1e-6},
        None,
    ),
    ("adam_amsgrad", {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.05, "amsgrad": True}, None),
    (
        "adam_lr_changes",
        {"optimizer": "adam", "lr": 0.01},
        [0.01, 0.02, 0.005, 0.03, 0.001, 0.015],
    ),
    ("adamw", {"optimizer": "adamw", "lr": 0.01}, None),
    ("adamw_weight_decay", {"optimizer": "adamw", "lr": 0.02, "weight_decay": 0.2}, None),
    (
        "adamw_amsgrad",
        {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "betas": [0.8, 0.99]},
        None,
    ),
]

# (name, max_norm, gradient scale)
CLIP_NORM_CASES = [("clipped", 1.0, 1.0), ("not_clipped", 100.0, 1.0), ("tiny", 1e-3, 0.01)]
# (name, clip, gradient scale)
CLIP_VALUE_CASES = [("half", 0.5, 1.0), ("loose", 10.0, 1.0)]


def canonicalize_header(path):
    """Sort the `__metadata__` keys (safetensors writes them in random order) so the bytes are reproducible."""
    raw = bytearray(Path(path).read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    rebuilt = {}
    if meta is not None:
        rebuilt["__metadata__"] = dict(sorted(meta.items()))
    rebuilt.update(header)
    text = json.dumps(rebuilt, separators=(",", ":")).encode("utf-8")
    assert len(text) <= n, path
    raw[8 : 8 + n] = text + b" " * (n - len(text))
    Path(path).write_bytes(bytes(raw))


def save(tensors, name, metadata):
    out = {}
    for key, t in tensors.items():
        assert t.dtype == torch.float32, (key, t.dtype)
        out[key] = t.detach().clone().contiguous()
    path = OUT_DIR / f"{name}.safetensors"
    save_file(out, str(path), metadata=metadata)
    canonicalize_header(path)


def make_params(seed):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float32))
        for _, shape in PARAMS
    ]


def make_grads(seed, scale=1.0):
    """STEPS gradients per parameter, of varied magnitudes, with a few exact zeros."""
    gen = torch.Generator().manual_seed(1000 + seed)
    steps = []
    for k in range(STEPS):
        grads = []
        for i, (_, shape) in enumerate(PARAMS):
            g = torch.randn(shape, generator=gen, dtype=torch.float32) * scale * (0.5 + k % 3)
            if i == 2 and k == 1:
                g.zero_()  # a whole zero gradient
            g.view(-1)[0] = 0.0  # and one zero element everywhere
            grads.append(g)
        steps.append(grads)
    return steps


def build_optimizer(params, cfg):
    kind = cfg["optimizer"]
    if kind == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg["lr"],
            momentum=cfg.get("momentum", 0.0),
            dampening=cfg.get("dampening", 0.0),
            weight_decay=cfg.get("weight_decay", 0.0),
            nesterov=cfg.get("nesterov", False),
            foreach=False,
        )
    common = dict(
        lr=cfg["lr"],
        betas=tuple(cfg.get("betas", (0.9, 0.999))),
        eps=cfg.get("eps", 1e-8),
        amsgrad=cfg.get("amsgrad", False),
        foreach=False,
    )
    if kind == "adam":
        return torch.optim.Adam(params, weight_decay=cfg.get("weight_decay", 0.0), **common)
    if kind == "adamw":
        return torch.optim.AdamW(params, weight_decay=cfg.get("weight_decay", 1e-2), **common)
    raise ValueError(kind)


def optimizer_case(index, name, cfg, lrs):
    params = make_params(index)
    grads = make_grads(index)
    opt = build_optimizer(params, cfg)
    lrs = lrs or [cfg["lr"]] * STEPS
    assert len(lrs) == STEPS
    tensors = {f"init.{n}": p.detach().clone() for (n, _), p in zip(PARAMS, params)}
    after = [[] for _ in PARAMS]
    for k in range(STEPS):
        for p, g in zip(params, grads[k]):
            p.grad = g.clone()
        opt.param_groups[0]["lr"] = lrs[k]
        opt.step()
        for i, p in enumerate(params):
            after[i].append(p.detach().clone())
        if k + 1 == MID:
            for (n, _), p in zip(PARAMS, params):
                for buffer, value in opt.state[p].items():
                    if buffer == "step":
                        assert float(value) == MID, (name, value)
                        continue
                    tensors[f"state.{buffer}.{n}"] = value.detach().clone()
    for i, (n, _) in enumerate(PARAMS):
        tensors[f"grad.{n}"] = torch.stack([grads[k][i] for k in range(STEPS)])
        tensors[f"param.{n}"] = torch.stack(after[i])
    metadata = {
        "config": json.dumps(cfg, sort_keys=True),
        "lrs": json.dumps(lrs),
        "params": json.dumps([n for n, _ in PARAMS]),
        "steps": str(STEPS),
        "mid": str(MID),
    }
    save(tensors, name, metadata)


def clip_case(index, kind, name, limit, scale):
    grads = make_grads(100 + index, scale)[0]
    params = make_params(100 + index)
    tensors = {}
    for (n, _), p, g in zip(PARAMS, params, grads):
        p.grad = g.clone()
        tensors[f"grad.{n}"] = g
    metadata = {"params": json.dumps([n for n, _ in PARAMS])}
    if kind == "norm":
        total = torch.nn.utils.clip_grad_norm_(params, max_norm=limit)
        tensors["total_norm"] = total.reshape(1).to(torch.float32)
        metadata["max_norm"] = repr(limit)
    else:
        torch.nn.utils.clip_grad_value_(params, clip_value=limit)
        metadata["clip"] = repr(limit)
    for (n, _), p in zip(PARAMS, params):
        tensors[f"clipped.{n}"] = p.grad.detach().clone()
    save(tensors, f"clip_{kind}_{name}", metadata)


def scheduler_from_spec(opt, spec):
    kind = spec["kind"]
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=spec["step_size"], gamma=spec["gamma"])
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec["t_max"], eta_min=spec["eta_min"])
    if kind == "linear":
        return torch.optim.lr_scheduler.LinearLR(
            opt,
            start_factor=spec["start_factor"],
            end_factor=spec["end_factor"],
            total_iters=spec["total_iters"],
        )
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    if kind == "sequential":
        subs = [scheduler_from_spec(opt, s) for s in spec["schedules"]]
        return torch.optim.lr_scheduler.SequentialLR(opt, subs, milestones=spec["milestones"])
    raise ValueError(kind)


SCHEDULE_CASES = [
    ("constant", 0.1, {"kind": "constant"}),
    ("step_7_half", 0.1, {"kind": "step", "step_size": 7, "gamma": 0.5}),
    ("step_3_tenth", 1.0, {"kind": "step", "step_size": 3, "gamma": 0.1}),
    ("cosine_10", 0.1, {"kind": "cosine", "t_max": 10, "eta_min": 0.001}),
    ("cosine_30", 0.05, {"kind": "cosine", "t_max": 30, "eta_min": 0.0}),
    ("cosine_7", 0.3, {"kind": "cosine", "t_max": 7, "eta_min": 0.01}),
    ("linear_warmup", 0.1, {"kind": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 8}),
    ("linear_decay", 0.1, {"kind": "linear", "start_factor": 1.0, "end_factor": 0.2, "total_iters": 20}),
    (
        "warmup_cosine",
        0.01,
        {
            "kind": "sequential",
            "schedules": [
                {"kind": "linear", "start_factor": 0.01, "end_factor": 1.0, "total_iters": 5},
                {"kind": "cosine", "t_max": 25, "eta_min": 1e-5},
            ],
            "milestones": [5],
        },
    ),
    (
        "warmup_plateau_cosine",
        0.01,
        {
            "kind": "sequential",
            "schedules": [
                {"kind": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 4},
                {"kind": "cosine", "t_max": 12, "eta_min": 0.0},
            ],
            "milestones": [7],
        },
    ),
    (
        "warmup_step_cosine",
        0.2,
        {
            "kind": "sequential",
            "schedules": [
                {"kind": "linear", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 3},
                {"kind": "step", "step_size": 4, "gamma": 0.5},
                {"kind": "cosine", "t_max": 10, "eta_min": 0.001},
            ],
            "milestones": [5, 17],
        },
    ),
]


def schedules():
    tensors = {}
    records = []
    for name, base_lr, spec in SCHEDULE_CASES:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        sched = scheduler_from_spec(opt, spec)
        lrs = []
        for _ in range(SCHEDULE_STEPS):
            lrs.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            sched.step()
        assert all(math.isfinite(v) for v in lrs)
        tensors[name] = torch.tensor(lrs, dtype=torch.float32)
        records.append({"name": name, "base_lr": base_lr, "spec": spec, "lrs": lrs})
    save(tensors, "schedules", {"schedules": json.dumps(records)})


def main():
    warnings.simplefilter("ignore")
    torch.use_deterministic_algorithms(True)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    for index, (name, cfg, lrs) in enumerate(OPTIMIZER_CASES):
        optimizer_case(index, name, cfg, lrs)
    for index, (name, max_norm, scale) in enumerate(CLIP_NORM_CASES):
        clip_case(index, "norm", name, max_norm, scale)
    for index, (name, clip, scale) in enumerate(CLIP_VALUE_CASES):
        clip_case(50 + index, "value", name, clip, scale)
    schedules()
    index = {
        "optimizers": [name for name, _, _ in OPTIMIZER_CASES],
        "clip_norm": [name for name, _, _ in CLIP_NORM_CASES],
        "clip_value": [name for name, _, _ in CLIP_VALUE_CASES],
    }
    (OUT_DIR / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (OUT_DIR / "README.md").write_text(README)
    total = sum(f.stat().st_size for f in OUT_DIR.iterdir())
    print(f"wrote {len(list(OUT_DIR.iterdir()))} files, {total} bytes, into {OUT_DIR}")


if __name__ == "__main__":
    main()
