"""Generate PyTorch reference fixtures for the `recur` crate.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_fixtures.py

(The venv lives outside the repo; install its packages with
`~/.cache/recur-venv/bin/pip install -r tools/requirements.txt`.)

Each run deletes `crates/recur/tests/fixtures/{layers,cells}/` and rewrites them completely.
Output is deterministic: every case seeds torch from its own index, weights use
PyTorch's default initialisation, and inputs/initial states come from
`torch.randn`. The upstream gradients for the backward-through-time data are
drawn afterwards from a separate `torch.Generator` seeded from the case index
(`GRAD_SEED_LAYERS + index`, `GRAD_SEED_CELLS + index`), so adding them did not
change any weight, input or forward result.

Layout written:

* `layers/<case>.model.safetensors` -- exactly `module.state_dict()` of an
  nn.RNN / nn.LSTM / nn.GRU. Every even-indexed case stores metadata
  `{"config": <json>}`; odd-indexed cases store no metadata at all, so a reader
  has to infer the configuration from tensor names and shapes.
* `layers/<case>.io.safetensors` -- `input`, optional `h0` (and `c0` for LSTM),
  and the expected `output`, `h_n` (and `c_n` for LSTM) computed in eval mode
  under `torch.no_grad()`. Metadata: `config` (JSON string), `unbatched`,
  `has_h0` and `has_grad_state` ("true"/"false").
  Backward-through-time data, from `torch.autograd.grad` in eval mode (dropout
  between layers does not act):
  - upstream gradients `grad_output` (shape of `output`) and, when
    `has_grad_state` is "true" (about half of the cases), `grad_h_n` (and
    `grad_c_n` for LSTM). When they are absent the upstream gradient of
    `h_n`/`c_n` is zero.
  - expected gradients of
    `(output*grad_output).sum() + (h_n*grad_h_n).sum() + (c_n*grad_c_n).sum()`:
    `grad.input`, `grad.h0` (and `grad.c0`) when the case has initial states,
    and `grad.<name>` for every parameter `<name>` of the state_dict
    (`grad.weight_ih_l0`, `grad.bias_hh_l1_reverse`, `grad.weight_hr_l0`, ...).
  The gradients come from a second forward with autograd enabled. For nn.LSTM
  that forward can differ from the stored no_grad results by about 1 ulp
  (PyTorch's CPU LSTM uses oneDNN only for inference); the script checks the
  two agree to 1e-6.
* `cells/<case>.model.safetensors` / `cells/<case>.io.safetensors` -- the same
  for nn.RNNCell / nn.LSTMCell / nn.GRUCell, with expected `h1` (and `c1`).
  Backward data: upstream `grad_h1` (and `grad_c1` for LSTMCell, always
  present) and the expected gradients of
  `(h1*grad_h1).sum() + (c1*grad_c1).sum()`: `grad.input`, `grad.h0` (and
  `grad.c0`) when hx is given, `grad.weight_ih`, `grad.weight_hh` and, with
  bias, `grad.bias_ih`, `grad.bias_hh`.
* `layers/index.json`, `cells/index.json` -- JSON arrays of case names.
* `README.md` -- short description of the fixtures.

All tensors are float32 and contiguous. After `save_file`, the metadata keys in
each header are sorted (safetensors writes them in random order) so the files
are byte-for-byte reproducible.
"""

import itertools
import json
import random
import shutil
import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "recur" / "tests" / "fixtures"

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
MODE_PREFIX = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
MULTI_LAYER_DROPOUT = 0.25
# Seeds of the separate generators for the upstream gradients (plus the case index).
GRAD_SEED_LAYERS = 1_000_000
GRAD_SEED_CELLS = 2_000_000

README = """\
# recur test fixtures (generated -- do not edit by hand)

Reference inputs and outputs produced by PyTorch for `nn.RNN`, `nn.LSTM`,
`nn.GRU` (`layers/`) and `nn.RNNCell`, `nn.LSTMCell`, `nn.GRUCell` (`cells/`).
The recur test suite loads them and checks that recur reproduces PyTorch.

* `<case>.model.safetensors`: the module's `state_dict()` (PyTorch tensor
  names). About half of the layer cases carry a `config` metadata entry; the
  rest have no metadata, so the configuration must be inferred from names and
  shapes. Cell model files always carry `config`.
* `<case>.io.safetensors`: `input`, optional `h0`/`c0`, and the expected
  results (`output`, `h_n`, `c_n` for layers; `h1`, `c1` for cells), computed
  in eval mode under `torch.no_grad()`. Metadata: `config` (JSON string),
  `unbatched`, `has_h0` and (layers only) `has_grad_state`
  (`"true"`/`"false"`).
* The io files also hold backward-through-time data computed with
  `torch.autograd.grad` (eval mode, so dropout does not act):
  - upstream gradients: `grad_output` (shape of `output`), and `grad_h_n`
    (`grad_c_n` for LSTM) only when `has_grad_state` is `"true"` -- otherwise
    the upstream gradient of `h_n`/`c_n` is zero. Cells: `grad_h1` (and
    `grad_c1` for LSTMCell), always present.
  - expected gradients of the sum of (result * upstream gradient) over all
    results: `grad.input`; `grad.h0` (and `grad.c0`) only when the case has
    initial states; and `grad.<param>` for every state_dict entry, e.g.
    `grad.weight_ih_l0`, `grad.bias_hh_l1_reverse`, `grad.weight_hr_l0`,
    `grad.weight_ih` (cells).
  The gradients come from a separate forward with autograd; for LSTM it may
  differ from the stored no_grad results by about 1 ulp (PyTorch uses oneDNN
  only for the no_grad CPU LSTM).
* `index.json` in each folder lists the case names.

The other folders are written by their own generators under `tools/` and
described by their own `README.md` or generator: `blocks/` (nn.Linear,
nn.Embedding and the losses; `gen_blocks_fixtures.py`), `lengths/`
(variable-length batches; `gen_lengths_fixtures.py`), `optim/` (the
optimizers; `gen_optim_fixtures.py`), `nn/` (nn.LayerNorm and the positional
encoding of PyTorch's Transformer tutorial; `gen_nn_fixtures.py`, read by
`tests/layer_norm_parity.rs`) and `attention/` (nn.MultiheadAttention, a
decoder's additive, general, dot and scaled-dot attention, and whole
encoder-decoders; `gen_attention_fixtures.py`, read by
`tests/attention_parity.rs`).

All tensors are float32. These files are generated and must never be edited by
hand. To regenerate (this deletes and rewrites `layers/` and `cells/`), run
from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_fixtures.py

Pinned package versions are in `tools/requirements.txt`.
"""


def tensor_dict(d):
    """Detached, contiguous float32 copies (safetensors refuses shared storage)."""
    out = {}
    for name, t in d.items():
        assert t.dtype == torch.float32, (name, t.dtype)
        out[name] = t.detach().clone().contiguous()
    return out


def canonicalize_header(path):
    """Sort the `__metadata__` keys in a file written by `save_file`.

    safetensors serialises metadata from a Rust HashMap, so the key order (and
    hence the file bytes) changes from run to run. Reordering the keys keeps the
    header the same length and the tensor data untouched, and makes the output
    byte-for-byte reproducible.
    """
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


def save(tensors, path, metadata=None):
    save_file(tensor_dict(tensors), str(path), metadata=metadata)
    canonicalize_header(path)


def flag(b):
    return "true" if b else "false"


def autograd_grads(module, forward, args, upstream, io):
    """Re-run the forward with autograd and store the expected gradients in `io`.

    `forward(leaves)` calls `module` and returns a dict of its results under
    their io names ("output", "h_n", "c_n" / "h1", "c1"); `args` maps io names
    ("input", "h0", "c0") to the tensors passed in; `upstream` maps result
    names to upstream gradients (a result without one gets a zero upstream
    gradient, i.e. does not enter the loss). The forward with autograd must
    reproduce the stored no_grad results (to 1e-6, see below). Writes
    `grad.<arg>` for every arg and `grad.<param>` for every parameter.
    """
    leaves = {name: t.detach().clone().requires_grad_(True) for name, t in args.items()}
    params = dict(module.named_parameters())
    assert list(params) == list(module.state_dict()), "parameters = state_dict entries"
    results = forward(leaves)
    for name, r in results.items():
        # Not bit-identical for nn.LSTM: under no_grad PyTorch's CPU LSTM runs
        # through oneDNN, with autograd through the native kernel (differences
        # of about 1 ulp). The stored forward results stay the no_grad ones.
        err = (r - io[name]).abs().max().item() if r.numel() else 0.0
        assert err <= 1e-6, f"autograd forward differs from no_grad for {name} by {err}"
    loss = 0
    for name, g in upstream.items():
        assert results[name].shape == g.shape, name
        loss = loss + (results[name] * g).sum()
    wrt = list(leaves.items()) + list(params.items())
    grads = torch.autograd.grad(loss, [t for _, t in wrt])
    for (name, t), g in zip(wrt, grads):
        assert g.shape == t.shape, name
        io[f"grad.{name}"] = g


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def layer_config(mode, input_size, hidden_size, num_layers, bias, batch_first, bidirectional, proj_size):
    return {
        "mode": mode,
        "input_size": input_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "bias": bias,
        "batch_first": batch_first,
        "dropout": MULTI_LAYER_DROPOUT if num_layers > 1 else 0.0,
        "bidirectional": bidirectional,
        "proj_size": proj_size,
    }


def build_layer(cfg):
    common = dict(
        input_size=cfg["input_size"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"],
        bias=cfg["bias"],
        batch_first=cfg["batch_first"],
        dropout=cfg["dropout"],
        bidirectional=cfg["bidirectional"],
    )
    mode = cfg["mode"]
    if mode == "LSTM":
        return torch.nn.LSTM(proj_size=cfg["proj_size"], **common)
    assert cfg["proj_size"] == 0
    if mode == "GRU":
        return torch.nn.GRU(**common)
    nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[mode]
    return torch.nn.RNN(nonlinearity=nonlinearity, **common)


def layer_case_name(cfg, unbatched, has_h0, T, B):
    parts = [
        MODE_PREFIX[cfg["mode"]],
        f"l{cfg['num_layers']}",
        "bi" if cfg["bidirectional"] else "uni",
        f"bias{int(cfg['bias'])}",
        f"bf{int(cfg['batch_first'])}",
    ]
    if unbatched:
        parts.append("unb")
    parts.append(f"h0_{int(has_h0)}")
    if cfg["proj_size"] > 0:
        parts.append("proj")
    sizes = f"T{T}" + ("" if unbatched else f"B{B}") + f"I{cfg['input_size']}H{cfg['hidden_size']}"
    if cfg["proj_size"] > 0:
        sizes += f"P{cfg['proj_size']}"
    parts.append(sizes)
    return "_".join(parts)


def layer_specs():
    """Deterministic list of (cfg, unbatched, has_h0, T, B) tuples."""
    specs = []

    def sizes(rng, proj):
        T = rng.randint(1, 5)
        B = rng.randint(1, 3)
        I = rng.randint(1, 5)
        if proj:
            H = rng.randint(2, 4)
            P = rng.randint(1, H - 1)
        else:
            H = rng.randint(1, 4)
            P = 0
        return T, B, I, H, P

    # Main batched grid (plus the LSTM-with-projection copy of the LSTM grid).
    grid_modes = [(m, False) for m in MODES] + [("LSTM", True)]
    for mode, proj in grid_modes:
        for num_layers, bidir, bias, bf, has_h0 in itertools.product(
            [1, 2, 3], [False, True], [True, False], [False, True], [False, True]
        ):
            rng = random.Random(len(specs) * 7919 + 17)
            T, B, I, H, P = sizes(rng, proj)
            cfg = layer_config(mode, I, H, num_layers, bias, bf, bidir, P)
            specs.append((cfg, False, has_h0, T, B))

    # Unbatched: every mode x {1 layer uni, 2 layers bi} x {without, with h0}.
    # batch_first alternates (PyTorch ignores it for unbatched input).
    for mode, proj in grid_modes:
        for k, ((num_layers, bidir), has_h0) in enumerate(
            itertools.product([(1, False), (2, True)], [False, True])
        ):
            rng = random.Random(len(specs) * 7919 + 17)
            T, _, I, H, P = sizes(rng, proj)
            cfg = layer_config(mode, I, H, num_layers, True, k % 2 == 1, bidir, P)
            specs.append((cfg, True, has_h0, T, 1))

    # Explicit edge sizes for every mode: hidden 1, input 1, T 1, batch 1.
    for mode in MODES:
        specs.append((layer_config(mode, 1, 1, 1, True, False, False, 0), False, True, 1, 1))
        specs.append((layer_config(mode, 1, 1, 2, True, True, True, 0), False, False, 1, 2))
        specs.append((layer_config(mode, 3, 1, 2, False, False, True, 0), False, True, 4, 3))
        specs.append((layer_config(mode, 1, 3, 1, True, False, False, 0), False, False, 5, 2))
        specs.append((layer_config(mode, 1, 1, 1, True, False, False, 0), True, True, 1, 1))
    # LSTM projection edge cases: smallest legal hidden (2) with proj 1.
    specs.append((layer_config("LSTM", 1, 2, 1, True, False, False, 1), False, True, 1, 1))
    specs.append((layer_config("LSTM", 1, 2, 2, True, True, True, 1), False, False, 1, 2))
    specs.append((layer_config("LSTM", 2, 2, 2, True, False, True, 1), True, True, 1, 1))
    return specs


def gen_layer_case(index, cfg, unbatched, has_h0, T, B, out_dir):
    torch.manual_seed(index)
    module = build_layer(cfg).eval()

    L = cfg["num_layers"]
    D = 2 if cfg["bidirectional"] else 1
    H = cfg["hidden_size"]
    H_out = cfg["proj_size"] if cfg["proj_size"] > 0 else H
    I = cfg["input_size"]
    is_lstm = cfg["mode"] == "LSTM"

    if unbatched:
        x = torch.randn(T, I)
        state_shape = (L * D, H_out)
        cell_shape = (L * D, H)
    else:
        x = torch.randn(B, T, I) if cfg["batch_first"] else torch.randn(T, B, I)
        state_shape = (L * D, B, H_out)
        cell_shape = (L * D, B, H)

    io = {"input": x}
    hx = None
    if has_h0:
        h0 = torch.randn(*state_shape)
        io["h0"] = h0
        if is_lstm:
            c0 = torch.randn(*cell_shape)
            io["c0"] = c0
            hx = (h0, c0)
        else:
            hx = h0

    with torch.no_grad():
        out, state = module(x, hx)
    if is_lstm:
        h_n, c_n = state
        io["c_n"] = c_n
        assert tuple(c_n.shape) == cell_shape
    else:
        h_n = state
    io["output"] = out
    io["h_n"] = h_n
    assert tuple(h_n.shape) == state_shape

    if unbatched:
        assert tuple(out.shape) == (T, D * H_out)
    elif cfg["batch_first"]:
        assert tuple(out.shape) == (B, T, D * H_out)
    else:
        assert tuple(out.shape) == (T, B, D * H_out)

    # Backward through time. Upstream gradients come from their own generator
    # so that the weights and inputs above stay as they were. has_grad_state
    # is bit0 XOR bit1 of the index, so it is not tied to has_h0 (bit 0 in the
    # main grid), batch_first (bit 1) or the model metadata (bit 0).
    has_grad_state = (index + index // 2) % 2 == 1
    gen = torch.Generator().manual_seed(GRAD_SEED_LAYERS + index)
    upstream = {"output": torch.randn(out.shape, generator=gen)}
    if has_grad_state:
        upstream["h_n"] = torch.randn(state_shape, generator=gen)
        if is_lstm:
            upstream["c_n"] = torch.randn(cell_shape, generator=gen)
    for result, g in upstream.items():
        io[f"grad_{result}"] = g

    args = {"input": x}
    if has_h0:
        args["h0"] = io["h0"]
        if is_lstm:
            args["c0"] = io["c0"]

    def forward(leaves):
        if not has_h0:
            hx_ = None
        elif is_lstm:
            hx_ = (leaves["h0"], leaves["c0"])
        else:
            hx_ = leaves["h0"]
        out_, state_ = module(leaves["input"], hx_)
        if is_lstm:
            return {"output": out_, "h_n": state_[0], "c_n": state_[1]}
        return {"output": out_, "h_n": state_}

    autograd_grads(module, forward, args, upstream, io)

    name = layer_case_name(cfg, unbatched, has_h0, T, B)
    cfg_json = json.dumps(cfg)
    model_meta = {"config": cfg_json} if index % 2 == 0 else None
    save(module.state_dict(), out_dir / f"{name}.model.safetensors", metadata=model_meta)
    save(
        io,
        out_dir / f"{name}.io.safetensors",
        metadata={
            "config": cfg_json,
            "unbatched": flag(unbatched),
            "has_h0": flag(has_h0),
            "has_grad_state": flag(has_grad_state),
        },
    )
    return name


# --------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------

CELL_PREFIX = {"RNN_TANH": "rnncell_tanh", "RNN_RELU": "rnncell_relu", "LSTM": "lstmcell", "GRU": "grucell"}


def build_cell(cfg):
    I, H, bias = cfg["input_size"], cfg["hidden_size"], cfg["bias"]
    mode = cfg["mode"]
    if mode == "LSTM":
        return torch.nn.LSTMCell(I, H, bias=bias)
    if mode == "GRU":
        return torch.nn.GRUCell(I, H, bias=bias)
    nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[mode]
    return torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity)


def cell_specs():
    specs = []
    for mode in MODES:
        for bias, batched, has_h0 in itertools.product([True, False], [True, False], [True, False]):
            rng = random.Random(len(specs) * 104729 + 5)
            I = rng.randint(1, 5)
            H = rng.randint(1, 4)
            cfg = {"mode": mode, "input_size": I, "hidden_size": H, "bias": bias}
            specs.append((cfg, batched, has_h0))
    return specs


def gen_cell_case(index, cfg, batched, has_h0, out_dir):
    torch.manual_seed(10_000 + index)
    cell = build_cell(cfg).eval()
    I, H = cfg["input_size"], cfg["hidden_size"]
    B = 3
    is_lstm = cfg["mode"] == "LSTM"

    x = torch.randn(B, I) if batched else torch.randn(I)
    state_shape = (B, H) if batched else (H,)
    io = {"input": x}
    hx = None
    if has_h0:
        h0 = torch.randn(*state_shape)
        io["h0"] = h0
        if is_lstm:
            c0 = torch.randn(*state_shape)
            io["c0"] = c0
            hx = (h0, c0)
        else:
            hx = h0

    with torch.no_grad():
        res = cell(x, hx)
    if is_lstm:
        h1, c1 = res
        io["c1"] = c1
        assert tuple(c1.shape) == state_shape
    else:
        h1 = res
    io["h1"] = h1
    assert tuple(h1.shape) == state_shape

    # Backward: upstream gradients from their own generator (inputs/weights unchanged).
    gen = torch.Generator().manual_seed(GRAD_SEED_CELLS + index)
    upstream = {"h1": torch.randn(state_shape, generator=gen)}
    if is_lstm:
        upstream["c1"] = torch.randn(state_shape, generator=gen)
    for result, g in upstream.items():
        io[f"grad_{result}"] = g

    args = {"input": x}
    if has_h0:
        args["h0"] = io["h0"]
        if is_lstm:
            args["c0"] = io["c0"]

    def forward(leaves):
        if not has_h0:
            hx_ = None
        elif is_lstm:
            hx_ = (leaves["h0"], leaves["c0"])
        else:
            hx_ = leaves["h0"]
        res_ = cell(leaves["input"], hx_)
        if is_lstm:
            return {"h1": res_[0], "c1": res_[1]}
        return {"h1": res_}

    autograd_grads(cell, forward, args, upstream, io)

    name = "_".join(
        [
            CELL_PREFIX[cfg["mode"]],
            f"bias{int(cfg['bias'])}",
            "batched" if batched else "unb",
            f"h0_{int(has_h0)}",
            (f"B{B}" if batched else "") + f"I{I}H{H}",
        ]
    )
    cfg_json = json.dumps(cfg)
    save(cell.state_dict(), out_dir / f"{name}.model.safetensors", metadata={"config": cfg_json})
    save(
        io,
        out_dir / f"{name}.io.safetensors",
        metadata={"config": cfg_json, "unbatched": flag(not batched), "has_h0": flag(has_h0)},
    )
    return name


# --------------------------------------------------------------------------


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    # Other generators under tools/ own other subfolders of OUT_DIR: delete only ours.
    layers_dir = OUT_DIR / "layers"
    cells_dir = OUT_DIR / "cells"
    for d in (layers_dir, cells_dir):
        if d.exists():
            shutil.rmtree(d)
    layers_dir.mkdir(parents=True)
    cells_dir.mkdir(parents=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        layer_names = []
        for index, (cfg, unbatched, has_h0, T, B) in enumerate(layer_specs()):
            layer_names.append(gen_layer_case(index, cfg, unbatched, has_h0, T, B, layers_dir))

        cell_names = []
        for index, (cfg, batched, has_h0) in enumerate(cell_specs()):
            cell_names.append(gen_cell_case(index, cfg, batched, has_h0, cells_dir))

    for w in caught:
        print(f"warning: {w.category.__name__}: {w.message}", file=sys.stderr)

    for names in (layer_names, cell_names):
        if len(set(names)) != len(names):
            raise SystemExit("duplicate case names")

    (layers_dir / "index.json").write_text(json.dumps(layer_names, indent=1) + "\n")
    (cells_dir / "index.json").write_text(json.dumps(cell_names, indent=1) + "\n")
    (OUT_DIR / "README.md").write_text(README)

    print(f"torch {torch.__version__}: wrote {len(layer_names)} layer cases and {len(cell_names)} cell cases to {OUT_DIR}")


if __name__ == "__main__":
    main()
