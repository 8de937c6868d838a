"""PyTorch reference values for recur's Transformer building blocks: nn.LayerNorm and the sinusoidal positional
encoding of PyTorch's Transformer tutorial.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_nn_fixtures.py

(The venv lives outside the repository; its pinned packages are in `tools/requirements.txt`.)

The script deletes and rewrites `crates/recur/tests/fixtures/nn/` and nothing else: other generators own the
sibling folders. `crates/recur/tests/layer_norm_parity.rs` reads what it writes.

One safetensors file per case, `<case>.safetensors`, all tensors float32. Metadata values are strings:

* `kind`: `layer_norm` or `positional_encoding`;
* layer_norm: `normalized_shape` (the size of the last dimension), `eps` (Python's repr of the float),
  `elementwise_affine` and `bias` ("true"/"false", as given to `nn.LayerNorm`; without `elementwise_affine`
  there are no parameters whatever `bias` says). Tensors:
  - `x`, the input, of shape `(*, normalized_shape)` (some cases have more than one leading dimension);
  - `weight`, `bias`: the module's `state_dict()` (absent when the module has no such parameter). They are
    drawn at random rather than left at their initial ones and zeros, so that they act on the result;
  - `y = layer_norm(x)`;
  - `dy`, a fixed random upstream gradient of the shape of `y`, and the gradients of `(y * dy).sum()` from
    autograd: `dx`, `dweight`, `dbias` (the last two when the parameter exists);
* positional_encoding: `max_len`, `d_model`. Tensors:
  - `pe`, of shape `(max_len, d_model)`: the `pe` buffer of the tutorial's `PositionalEncoding` module (its
    `(max_len, 1, d_model)` with the middle dimension dropped), built by the tutorial's own code, in float32.
    The tutorial assumes an even `d_model`; for an odd one (metadata `odd` "true") the cosine columns use the
    first `d_model // 2` frequencies, the only change;
  - `x` of shape `(seq_len, batch, d_model)` and `y`, the module's forward in eval mode (dropout off),
    `x + pe[:seq_len]`.
  The script checks that each table agrees with the formula computed in float64 to 5e-6 (PyTorch rounds each
  angle `pos * div_term` to float32, an error that grows with `pos`: keep `max_len` small).

`index.json` lists the case names. Every case seeds torch from its own name, so the output is deterministic,
and the metadata keys are sorted so that the files are byte-for-byte reproducible.
"""

import json
import math
import shutil
import zlib
from pathlib import Path

import torch
from safetensors.torch import save
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "recur" / "tests" / "fixtures" / "nn"

README = """\
# Transformer building-block fixtures (generated -- do not edit by hand)

PyTorch's values and gradients for `nn.LayerNorm`, and the sinusoidal positional encoding of PyTorch's
Transformer tutorial, read by `crates/recur/tests/layer_norm_parity.rs`. The layout of each file is described
in the docstring of `tools/gen_nn_fixtures.py`. To regenerate (this deletes and rewrites this folder only), run
from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_nn_fixtures.py
"""


def write(name, tensors, metadata):
    """Write one case with its metadata keys sorted (safetensors orders them at random otherwise)."""
    raw = bytearray(
        save(
            {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()},
            metadata={k: str(v) for k, v in metadata.items()},
        )
    )
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    # Reordering keys keeps the length, so the data offsets stay valid; pad back to the original size.
    assert len(text) <= n
    raw[8 : 8 + n] = text + b" " * (n - len(text))
    (OUT_DIR / f"{name}.safetensors").write_bytes(bytes(raw))
    return name


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def flag(b):
    return "true" if b else "false"


def layer_norm_case(name, lead, size, eps=1e-5, affine=True, bias=True, scale=1.0, shift=0.0):
    """`nn.LayerNorm(size, eps, affine, bias)` on an input of shape `lead + (size,)`, `scale * randn + shift`."""
    seed(name)
    layer = nn.LayerNorm(size, eps=eps, elementwise_affine=affine, bias=bias)
    with torch.no_grad():
        if layer.weight is not None:
            layer.weight.copy_(1.0 + 0.5 * torch.randn(size))
        if layer.bias is not None:
            layer.bias.copy_(0.5 * torch.randn(size))
    x = (scale * torch.randn(*lead, size) + shift).requires_grad_()
    dy = torch.randn(*lead, size)
    y = layer(x)
    (y * dy).sum().backward()
    tensors = {"x": x, "y": y, "dy": dy, "dx": x.grad}
    tensors.update(layer.state_dict())
    if layer.weight is not None:
        tensors["dweight"] = layer.weight.grad
    if layer.bias is not None:
        tensors["dbias"] = layer.bias.grad
    metadata = {
        "kind": "layer_norm",
        "normalized_shape": size,
        "eps": repr(eps),
        "elementwise_affine": flag(affine),
        "bias": flag(bias),
    }
    return write(name, tensors, metadata)


class PositionalEncoding(nn.Module):
    """The tutorial's module, verbatim but for the odd `d_model` (the cosine columns take the first
    `d_model // 2` frequencies)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.register_buffer("pe", pe)

    def forward(self, x):
        """x: shape `[seq_len, batch_size, embedding_dim]`."""
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


def positional_case(name, max_len, d_model, seq_len, batch):
    seed(name)
    module = PositionalEncoding(d_model, max_len=max_len).eval()
    pe = module.pe[:, 0, :]
    exact = torch.zeros(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        for j in range(d_model):
            angle = pos / 10000.0 ** (2 * (j // 2) / d_model)
            exact[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    drift = (pe.double() - exact).abs().max().item()
    assert drift < 5e-6, f"{name}: the float32 table is {drift:.2e} from the formula"
    x = torch.randn(seq_len, batch, d_model)
    with torch.no_grad():
        y = module(x)
    metadata = {"kind": "positional_encoding", "max_len": max_len, "d_model": d_model, "odd": flag(d_model % 2)}
    return write(name, {"pe": pe, "x": x, "y": y}, metadata)


def main():
    torch.set_num_threads(1)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)

    names = [
        layer_norm_case("layer_norm", (4,), 5),
        layer_norm_case("layer_norm_3d", (2, 3), 7),
        layer_norm_case("layer_norm_eps_no_bias", (3,), 8, eps=1e-3, bias=False),
        layer_norm_case("layer_norm_no_affine", (6,), 3, eps=0.1, affine=False),
        layer_norm_case("layer_norm_no_affine_no_bias", (2,), 6, affine=False, bias=False),
        layer_norm_case("layer_norm_wide_shifted", (3,), 96, scale=3.0, shift=2.0),
        # A row of one value has zero variance, so 1/σ = 1/√eps. With the default eps that is 316, and PyTorch's
        # float32 backward (which multiplies by 1/σ³) returns rounding noise of order 1e-5 where the exact `dx`
        # and `dweight` are zero; a large eps keeps the reference PyTorch's answer rather than its rounding.
        layer_norm_case("layer_norm_one_feature", (5,), 1, eps=0.5),
        positional_case("positional_encoding", 40, 16, 7, 3),
        positional_case("positional_encoding_odd", 12, 5, 12, 2),
    ]
    (OUT_DIR / "index.json").write_text(json.dumps(names, indent=1) + "\n")
    (OUT_DIR / "README.md").write_text(README)
    total = sum(f.stat().st_size for f in OUT_DIR.iterdir())
    where = OUT_DIR.relative_to(REPO_ROOT)
    print(f"torch {torch.__version__}: wrote {len(names)} cases ({total / 1024:.1f} KiB) to {where}")


if __name__ == "__main__":
    main()
