"""PyTorch reference values for recur's training building blocks: nn.Linear, nn.Embedding and the losses.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_blocks_fixtures.py

(The venv lives outside the repository; its pinned packages are in `tools/requirements.txt`.)

The script deletes and rewrites `crates/recur/tests/fixtures/blocks/` and nothing else: other generators own
the sibling folders. `crates/recur/tests/blocks_parity.rs` reads what it writes.

One safetensors file per case, `<case>.safetensors`, all tensors float32 (integer indices and targets too: they
are small and exact in float32, and recur's reader converts every tensor to float32). Scalars (losses) have
shape [1]. Metadata values are strings:

* `kind`: `linear`, `embedding`, `cross_entropy`, `mse` or `bce_with_logits`;
* linear: `bias` ("true"/"false"); tensors `weight`, `bias`?, `x`, `dy`, `y`, `dx`, `dweight`, `dbias`?,
  where the gradients are those of `sum(y * dy)`, so `dy` is the upstream gradient;
* embedding: `padding_idx` (as given to PyTorch, possibly negative, or "none"); tensors `weight`, `indices`,
  `dy`, `y`, `dweight`;
* cross_entropy: `ignore_index`; tensors `logits`, `targets`, `weight`? (class weights), `loss`, `dlogits`;
* mse: tensors `input`, `target`, `loss`, `dinput`;
* bce_with_logits: tensors `logits`, `targets`, `pos_weight`?, `loss`, `dlogits`.

`index.json` lists the case names. Every case seeds torch from its own name, so the output is deterministic,
and the metadata keys are sorted so that the files are byte-for-byte reproducible.
"""

import json
import shutil
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "recur" / "tests" / "fixtures" / "blocks"

README = """\
# Building-block fixtures (generated -- do not edit by hand)

PyTorch's values and gradients for `nn.Linear`, `nn.Embedding`, `F.cross_entropy`, `F.mse_loss` and
`F.binary_cross_entropy_with_logits`, read by `crates/recur/tests/blocks_parity.rs`. The layout of each file is
described in the docstring of `tools/gen_blocks_fixtures.py`. To regenerate (this deletes and rewrites this
folder only), run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_blocks_fixtures.py
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


def scalar(t):
    return t.detach().reshape(1)


def linear_case(name, rows, in_features, out_features, bias):
    seed(name)
    layer = torch.nn.Linear(in_features, out_features, bias=bias)
    x = torch.randn(rows, in_features, requires_grad=True)
    dy = torch.randn(rows, out_features)
    y = layer(x)
    (y * dy).sum().backward()
    tensors = {"weight": layer.weight, "x": x, "dy": dy, "y": y, "dx": x.grad, "dweight": layer.weight.grad}
    if bias:
        tensors.update(bias=layer.bias, dbias=layer.bias.grad)
    return write(name, tensors, {"kind": "linear", "bias": "true" if bias else "false"})


def embedding_case(name, num, dim, padding_idx, indices):
    seed(name)
    table = torch.nn.Embedding(num, dim, padding_idx=padding_idx)
    idx = torch.tensor(indices, dtype=torch.int64)
    dy = torch.randn(len(indices), dim)
    y = table(idx)
    (y * dy).sum().backward()
    tensors = {"weight": table.weight, "indices": idx, "dy": dy, "y": y, "dweight": table.weight.grad}
    meta = {"kind": "embedding", "padding_idx": "none" if padding_idx is None else padding_idx}
    return write(name, tensors, meta)


def cross_entropy_case(name, rows, classes, scale=1.0, weighted=False, ignore_index=-100, ignored_rows=()):
    seed(name)
    logits = (scale * torch.randn(rows, classes)).requires_grad_()
    targets = torch.randint(0, classes, (rows,))
    for r in ignored_rows:
        targets[r] = ignore_index
    weight = torch.rand(classes) + 0.5 if weighted else None
    loss = F.cross_entropy(logits, targets, weight=weight, ignore_index=ignore_index)
    loss.backward()
    tensors = {"logits": logits, "targets": targets, "loss": scalar(loss), "dlogits": logits.grad}
    if weighted:
        tensors["weight"] = weight
    return write(name, tensors, {"kind": "cross_entropy", "ignore_index": ignore_index})


def mse_case(name, rows, cols):
    seed(name)
    x = torch.randn(rows, cols, requires_grad=True)
    target = torch.randn(rows, cols)
    loss = F.mse_loss(x, target)
    loss.backward()
    return write(name, {"input": x, "target": target, "loss": scalar(loss), "dinput": x.grad}, {"kind": "mse"})


def bce_case(name, rows, cols, scale, pos_weight=False):
    seed(name)
    x = (scale * torch.randn(rows, cols)).requires_grad_()
    # Hard labels and soft ones: the loss is defined for any target in [0, 1].
    hard = torch.randint(0, 2, (rows, cols)).float()
    targets = torch.where(torch.rand(rows, cols) < 0.5, hard, torch.rand(rows, cols))
    pw = torch.rand(cols) * 3 + 0.1 if pos_weight else None
    loss = F.binary_cross_entropy_with_logits(x, targets, pos_weight=pw)
    loss.backward()
    tensors = {"logits": x, "targets": targets, "loss": scalar(loss), "dlogits": x.grad}
    if pos_weight:
        tensors["pos_weight"] = pw
    return write(name, tensors, {"kind": "bce_with_logits"})


def main():
    torch.set_num_threads(1)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)

    names = [
        linear_case("linear_bias", 5, 4, 3, True),
        linear_case("linear_nobias", 3, 6, 2, False),
        linear_case("linear_one_row", 1, 7, 5, True),
        embedding_case("embedding_padding", 6, 3, 2, [2, 0, 5, 2, 3, 0, 0, 1]),
        embedding_case("embedding_padding_negative", 5, 4, -1, [4, 1, 4, 0, 2]),
        embedding_case("embedding_plain", 7, 2, None, [6, 6, 0, 3]),
        cross_entropy_case("ce_plain", 6, 5),
        cross_entropy_case("ce_large_logits", 4, 3, scale=60.0),
        cross_entropy_case("ce_weight", 7, 4, weighted=True),
        cross_entropy_case("ce_ignore", 6, 5, ignored_rows=(1, 4)),
        cross_entropy_case("ce_weight_ignore", 8, 3, weighted=True, ignore_index=2, ignored_rows=(0, 5)),
        mse_case("mse", 4, 3),
        mse_case("mse_vector", 1, 9),
        bce_case("bce", 4, 3, scale=2.0),
        bce_case("bce_large_logits", 3, 4, scale=40.0),
        bce_case("bce_pos_weight", 5, 3, scale=3.0, pos_weight=True),
    ]
    (OUT_DIR / "index.json").write_text(json.dumps(names, indent=1) + "\n")
    (OUT_DIR / "README.md").write_text(README)
    print(f"wrote {len(names)} cases to {OUT_DIR.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
