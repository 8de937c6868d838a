"""Generate PyTorch reference fixtures for variable-length (packed) sequences.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_lengths_fixtures.py

(The venv lives outside the repository; its pinned packages are in `tools/requirements.txt`.)

Each run deletes `crates/recur/tests/fixtures/lengths/` -- and only that folder; the sibling folders belong to
the other generators under `tools/` -- and rewrites it completely. The helpers (module construction, config
JSON, the safetensors writer with sorted metadata keys, the autograd gradients) are imported from
`tools/gen_fixtures.py`, so the conventions are exactly those of `layers/`.

Every case runs PyTorch's variable-length pipeline

    packed = pack_padded_sequence(input, lengths, batch_first=bf, enforce_sorted=False)
    out, state = module(packed, hx)
    output, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)

with the module in eval mode. So `output` is zero past each sequence's length, `h_n`/`c_n` hold each sequence's
state after its own last valid step (for the reverse direction: after its step 0, having started at its own
last valid step), and `h0`/`c0`/`h_n`/`c_n` are in the caller's (unsorted) batch order.

Output is deterministic: case `index` seeds torch with `index` (weights, then input, then h0/c0), and the
upstream gradients come from a separate `torch.Generator` seeded with `GRAD_SEED + index`. Metadata keys are
sorted after writing, so the files are byte-for-byte reproducible.

Layout written (also described in the README.md written into the folder):

* `<case>.model.safetensors` -- exactly `module.state_dict()`; metadata `{"config": <json>}` always present
  (keys mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size).
* `<case>.io.safetensors`, all tensors float32:
  - `input`: padded, `(T, B, I)` or `(B, T, I)` with batch_first; the padded positions hold random nonzero
    values that PyTorch never reads;
  - `lengths`: `(B,)`, float32 holding small integers (1 <= length <= T), in batch order (not sorted);
  - `h0` (and `c0` for LSTM) when `has_h0` is "true";
  - expected `output` (zeros past each length, time dimension T), `h_n` (and `c_n`);
  - upstream `grad_output` (shape of `output`, random everywhere, including the padded positions, which do
    not contribute since those outputs are constant zeros), and `grad_h_n` (and `grad_c_n`) when
    `has_grad_state` is "true";
  - expected gradients of `(output*grad_output).sum() + (h_n*grad_h_n).sum() + (c_n*grad_c_n).sum()`
    through the pack/pad pipeline: `grad.input` (zero at padded positions), `grad.h0`/`grad.c0` when
    given, and `grad.<param>` for every state_dict entry.
  Metadata: `config` (JSON), `has_h0`, `has_grad_state` ("true"/"false").
* `index.json` -- JSON array of case names.
"""

import itertools
import json
import random
import shutil
import sys
import warnings
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.dont_write_bytecode = True  # do not leave tools/__pycache__ behind
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_fixtures as gf  # noqa: E402

OUT_DIR = gf.OUT_DIR / "lengths"
MODES = [("RNN_TANH", False), ("RNN_RELU", False), ("LSTM", False), ("GRU", False), ("LSTM", True)]
GRAD_SEED = 3_000_000

README = """\
# Variable-length (packed) sequence fixtures (generated -- do not edit by hand)

PyTorch's results for `nn.RNN`, `nn.LSTM` and `nn.GRU` run on a batch of sequences of different lengths:

    packed = pack_padded_sequence(input, lengths, batch_first=bf, enforce_sorted=False)
    out, state = module(packed, hx)
    output, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)

The module is in eval mode (dropout between layers does not act). Same conventions as `../layers/`:

* `<case>.model.safetensors`: the module's `state_dict()`; metadata `config` (JSON string: mode,
  input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size), always present.
* `<case>.io.safetensors`, all tensors float32:
  - `input`: the padded batch, `(T, B, I)`, or `(B, T, I)` when `batch_first`. Positions past a sequence's
    length hold random nonzero values that must be ignored.
  - `lengths`: shape `(B,)`, **float32** holding whole numbers 1..T, in batch order (unsorted, with ties).
  - `h0` (and `c0` for LSTM) only when metadata `has_h0` is `"true"`, in batch order.
  - expected `output` (time dimension T; exactly zero past each sequence's length), `h_n` (and `c_n`):
    each sequence's state after its own last valid step; the reverse direction starts at each sequence's
    own last valid step, so its `h_n` is its state after step 0. States are in batch order.
  - upstream `grad_output` (random everywhere, also at padded positions, which contribute nothing since those
    outputs are constant zeros), and `grad_h_n` (`grad_c_n` for LSTM) only when `has_grad_state` is
    `"true"` -- otherwise the upstream gradient of `h_n`/`c_n` is zero.
  - expected gradients from autograd through the pack/pad pipeline: `grad.input` (zero at padded
    positions), `grad.h0`/`grad.c0` when the case has initial states, and `grad.<param>` for every
    state_dict entry.
  - metadata: `config`, `has_h0`, `has_grad_state`.
* `index.json` lists the case names. Cases whose name contains `_alleq_` have every length equal to T (their
  results equal the plain, unpacked forward); `_b1_` cases have a batch of one.

To regenerate (this deletes and rewrites this folder only), run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_lengths_fixtures.py
"""


def case_sizes(rng, mode, proj):
    I = rng.randint(1, 4)
    if proj:
        H = rng.randint(2, 4)
        P = rng.randint(1, H - 1)
    else:
        # ReLU units with hidden size 1 or 2 are often dead throughout, which leaves gradients all zero.
        H = rng.randint(3, 4) if mode == "RNN_RELU" else rng.randint(1, 4)
        P = 0
    return I, H, P


def mixed_lengths(rng, T, B):
    """B lengths in 1..T containing T, 1 and a tie, in an order that is not sorted either way."""
    assert B in (3, 4) and T >= 3
    if B == 3:
        lengths = [T, 1, rng.choice([T, 1])]
    else:
        k = rng.randint(2, T - 1)
        lengths = [T, 1] + rng.choice([[k, k], [T, k], [1, k]])
    while True:
        rng.shuffle(lengths)
        if lengths != sorted(lengths) and lengths != sorted(lengths, reverse=True):
            return lengths


def specs():
    """Deterministic list of (cfg, has_h0, T, lengths, tag) tuples."""
    out = []
    # Main grid: every mode x layers x bidirectional x batch_first x h0, with mixed lengths.
    for mode, proj in MODES:
        for num_layers, bidir, bf, has_h0 in itertools.product([1, 2], [False, True], [False, True], [False, True]):
            rng = random.Random(len(out) * 7919 + 23)
            I, H, P = case_sizes(rng, mode, proj)
            T = rng.randint(3, 6)
            B = rng.randint(3, 4)
            lengths = mixed_lengths(rng, T, B)
            bias = rng.random() >= 0.2
            cfg = gf.layer_config(mode, I, H, num_layers, bias, bf, bidir, P)
            out.append((cfg, has_h0, T, lengths, ""))
    # Per mode: a batch of one shorter than T, and a batch whose lengths all equal T.
    for k, (mode, proj) in enumerate(MODES):
        rng = random.Random(len(out) * 7919 + 23)
        I, H, P = case_sizes(rng, mode, proj)
        T = rng.randint(3, 6)
        cfg = gf.layer_config(mode, I, H, 2, True, k % 2 == 0, True, P)
        out.append((cfg, k % 2 == 1, T, [rng.randint(1, T - 1)], "b1"))
        rng = random.Random(len(out) * 7919 + 23)
        I, H, P = case_sizes(rng, mode, proj)
        T = rng.randint(3, 6)
        cfg = gf.layer_config(mode, I, H, 1 + k % 2, True, k % 2 == 1, k % 3 != 2, P)
        out.append((cfg, k % 2 == 0, T, [T] * rng.randint(3, 4), "alleq"))
    return out


def case_name(cfg, has_h0, T, lengths, tag):
    B = len(lengths)
    base = gf.layer_case_name(cfg, False, has_h0, T, B)
    return "_".join(([tag] if tag else []) + [base, "len" + "-".join(map(str, lengths))])


def run_packed(module, x, lengths, hx, batch_first, T):
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = module(packed, hx)
    output, out_lengths = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    assert torch.equal(out_lengths, lengths)
    return output, state


def gen_case(index, cfg, has_h0, T, lengths_list, tag):
    torch.manual_seed(index)
    module = gf.build_layer(cfg).eval()

    B = len(lengths_list)
    L = cfg["num_layers"]
    D = 2 if cfg["bidirectional"] else 1
    H = cfg["hidden_size"]
    H_out = cfg["proj_size"] if cfg["proj_size"] > 0 else H
    I = cfg["input_size"]
    bf = cfg["batch_first"]
    is_lstm = cfg["mode"] == "LSTM"
    lengths = torch.tensor(lengths_list, dtype=torch.int64)  # PyTorch wants CPU int64 lengths

    x = torch.randn(B, T, I) if bf else torch.randn(T, B, I)
    assert (x != 0).all()  # padded positions hold nonzero garbage
    state_shape = (L * D, B, H_out)
    cell_shape = (L * D, B, H)

    io = {"input": x, "lengths": lengths.to(torch.float32)}
    hx = None
    if has_h0:
        io["h0"] = torch.randn(*state_shape)
        if is_lstm:
            io["c0"] = torch.randn(*cell_shape)
            hx = (io["h0"], io["c0"])
        else:
            hx = io["h0"]

    with torch.no_grad():
        out, state = run_packed(module, x, lengths, hx, bf, T)
        plain_out, plain_state = module(x, hx)
    h_n, c_n = state if is_lstm else (state, None)
    io["output"] = out
    io["h_n"] = h_n
    if is_lstm:
        io["c_n"] = c_n
        assert tuple(c_n.shape) == cell_shape
    assert tuple(h_n.shape) == state_shape
    assert tuple(out.shape) == ((B, T, D * H_out) if bf else (T, B, D * H_out))

    # Outputs past each length are exactly zero.
    out_tb = out.transpose(0, 1) if bf else out
    for b, n in enumerate(lengths_list):
        assert (out_tb[n:, b] == 0).all()
    # All lengths equal to T: the packed pipeline must agree with the plain forward.
    if all(n == T for n in lengths_list):
        plain = {"output": plain_out}
        plain.update({"h_n": plain_state[0], "c_n": plain_state[1]} if is_lstm else {"h_n": plain_state})
        for name, t in plain.items():
            err = (t - io[name]).abs().max().item()
            assert err <= 1e-6, f"all lengths = T differs from the plain forward for {name} by {err}"

    # Upstream gradients from their own generator, random at the padded positions too.
    has_grad_state = bin(index).count("1") % 2 == 1
    gen = torch.Generator().manual_seed(GRAD_SEED + index)
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
        out_, state_ = run_packed(module, leaves["input"], lengths, hx_, bf, T)
        if is_lstm:
            return {"output": out_, "h_n": state_[0], "c_n": state_[1]}
        return {"output": out_, "h_n": state_}

    gf.autograd_grads(module, forward, args, upstream, io)

    gx = io["grad.input"].transpose(0, 1) if bf else io["grad.input"]
    for b, n in enumerate(lengths_list):
        assert (gx[n:, b] == 0).all()

    name = case_name(cfg, has_h0, T, lengths_list, tag)
    cfg_json = json.dumps(cfg)
    gf.save(module.state_dict(), OUT_DIR / f"{name}.model.safetensors", metadata={"config": cfg_json})
    gf.save(
        io,
        OUT_DIR / f"{name}.io.safetensors",
        metadata={"config": cfg_json, "has_h0": gf.flag(has_h0), "has_grad_state": gf.flag(has_grad_state)},
    )
    return name, has_grad_state


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)

    names = []
    n_grad_state = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index, (cfg, has_h0, T, lengths, tag) in enumerate(specs()):
            name, has_grad_state = gen_case(index, cfg, has_h0, T, lengths, tag)
            names.append(name)
            n_grad_state += has_grad_state
    for w in caught:
        print(f"warning: {w.category.__name__}: {w.message}", file=sys.stderr)

    if len(set(names)) != len(names):
        raise SystemExit("duplicate case names")
    (OUT_DIR / "index.json").write_text(json.dumps(names, indent=1) + "\n")
    (OUT_DIR / "README.md").write_text(README)
    print(
        f"torch {torch.__version__}: wrote {len(names)} cases ({n_grad_state} with upstream state gradients) "
        f"to {OUT_DIR}"
    )


if __name__ == "__main__":
    main()
