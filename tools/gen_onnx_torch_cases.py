"""Export small PyTorch recurrent models to ONNX and write them as test cases for recur-onnx's importer.

Run from the repository root, with the torch venv of `tools/requirements.txt` (torch, numpy, onnx, onnxscript,
onnx-ir, onnxruntime):

    ~/.cache/recur-venv/bin/python tools/gen_onnx_torch_cases.py

Each run deletes the folders under `crates/recur-onnx/tests/data/torch/` and rewrites them, one per case, in the
layout of ONNX's node tests:

    <case>/model.onnx                      the model `torch.onnx.export` wrote, less its Python stack traces
    <case>/test_data_set_0/input_N.pb      a TensorProto per graph input, in the graph's order, named as it
    <case>/test_data_set_0/output_N.pb     PyTorch's outputs, a TensorProto per graph output, in the graph's order
    <case>/test_data_set_1/...             (cases with dynamic axes) another batch size and length
    <case>/graph.txt                       the graph in text: inputs, outputs, initializers, nodes

`crates/recur-onnx/tests/data/torch/README.md` describes the cases and the graphs the exporters write.

Models, weights and inputs come from `torch.manual_seed(index of the case)`. Every case is checked before it is
written: onnxruntime must reproduce PyTorch's outputs within 1e-5 on every test data set, and the W, R and B of
every LSTM, GRU and RNN node must be the PyTorch layer's parameters in ONNX's gate order (see `check_weights`).

Two exporters exist in torch 2.15: the default one (`dynamo=True`, torch.export + onnxscript) and the TorchScript
one (`dynamo=False`). Both write one plain LSTM or GRU node per layer. The default exporter unrolls every
`nn.RNN` (tanh or relu) into per-step MatMul/Add/Tanh or Relu, and exports an LSTM with `proj_size` wrongly; the
TorchScript exporter writes RNN nodes (with Tanh or Relu activations) and refuses `proj_size`. So the LSTM and GRU
cases mostly use the default exporter, every RNN case and a few LSTM/GRU ones the TorchScript exporter; `FAILURES`
lists what is tried and not written, and a run ends by printing what became of each.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime
import onnxscript
import torch
from onnx import numpy_helper
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "crates" / "recur-onnx" / "tests" / "data" / "torch"
TOLERANCE = 1e-5
FEATURES, HIDDEN, VOCAB, CLASSES = 3, 4, 10, 2
# Traced sizes (test_data_set_0) and, for cases with dynamic axes, the other sizes run (test_data_set_1).
STEPS, BATCH = 5, 2
OTHER_STEPS, OTHER_BATCH = 3, 3


class Bare(nn.Module):
    """An `nn.LSTM`, `nn.GRU` or `nn.RNN` returning `(output, h_n)` (and `c_n`), optionally given initial states."""

    def __init__(self, rnn: nn.Module, initial_states: bool):
        super().__init__()
        self.rnn = rnn
        self.initial_states = initial_states

    def forward(self, x, h0=None, c0=None):
        if isinstance(self.rnn, nn.LSTM):
            out, (h, c) = self.rnn(x, None if h0 is None else (h0, c0))
            return out, h, c
        out, h = self.rnn(x, h0)
        return out, h


class EveryStep(nn.Module):
    """Many-to-many: a Linear head on every step of the recurrent output."""

    def __init__(self, rnn: nn.Module, outputs: int):
        super().__init__()
        self.rnn = rnn
        directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(directions * rnn.hidden_size, outputs)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out)


class LastStep(nn.Module):
    """Many-to-one: a Linear head on the last step of a batch-first recurrent output (`out[:, -1]`)."""

    def __init__(self, rnn: nn.Module, outputs: int):
        super().__init__()
        assert rnn.batch_first
        self.rnn = rnn
        directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(directions * rnn.hidden_size, outputs)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class LanguageModel(nn.Module):
    """Token ids → Embedding → recurrent layer → Linear on every step, logits over the vocabulary."""

    def __init__(self, rnn: nn.Module, vocab: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, rnn.input_size)
        self.rnn = rnn
        directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(directions * rnn.hidden_size, vocab)

    def forward(self, ids):
        out, _ = self.rnn(self.embedding(ids))
        return self.head(out)


@dataclass
class Case:
    name: str
    exporter: str  # "dynamo" (torch.onnx.export's default) or "torchscript" (dynamo=False)
    build: Callable[[], nn.Module]
    input_names: list[str]
    output_names: list[str]
    tokens: bool = False  # int64 token ids instead of float features
    dynamic: bool = False  # batch and time axes dynamic
    what: str = ""
    notes: list[str] = field(default_factory=list)

    def module(self) -> nn.Module:
        return self.build().eval()


def rnn_of(kind: str, **kw) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(FEATURES, HIDDEN, **kw)
    if kind == "gru":
        return nn.GRU(FEATURES, HIDDEN, **kw)
    return nn.RNN(FEATURES, HIDDEN, nonlinearity=kind.removeprefix("rnn_"), **kw)


def bare_case(kind, exporter, *, batch_first=False, initial_states=False, dynamic=False, layers=2, bidir=True):
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first)
    parts = [kind, f"{layers}layer", "bidir" if bidir else "", "batch_first" if batch_first else "time_major"]
    if initial_states:
        parts.append("initial_states")
    if dynamic:
        parts.append("dynamic")
    if exporter == "torchscript":
        parts.append("torchscript")
    name = "_".join(p for p in parts if p)
    inputs = ["x"] + (["h0", "c0"] if kind == "lstm" else ["h0"]) * initial_states
    outputs = ["output", "h_n", "c_n"] if kind == "lstm" else ["output", "h_n"]
    module = {"lstm": "nn.LSTM", "gru": "nn.GRU", "rnn_tanh": "nn.RNN (tanh)", "rnn_relu": "nn.RNN (relu)"}[kind]
    what = f"bare {module}, {layers} layers{', bidirectional' if bidir else ''}, " + (
        "batch first" if batch_first else "time major"
    )
    what += ", initial states as inputs" if initial_states else ", no initial states"
    return Case(
        name,
        exporter,
        lambda: Bare(rnn_of(kind, **kw), initial_states),
        inputs,
        outputs,
        dynamic=dynamic,
        what=what,
    )


CASES: list[Case] = [
    # 1. bare layers, time major, 2 layers, bidirectional, with and without initial states.
    bare_case("lstm", "dynamo"),
    bare_case("lstm", "dynamo", initial_states=True),
    bare_case("lstm", "dynamo", dynamic=True),
    bare_case("gru", "dynamo"),
    bare_case("gru", "dynamo", initial_states=True),
    bare_case("rnn_tanh", "torchscript"),
    bare_case("rnn_tanh", "torchscript", initial_states=True),
    bare_case("rnn_relu", "torchscript"),
    bare_case("rnn_relu", "torchscript", initial_states=True),
    # 2. batch first.
    bare_case("lstm", "dynamo", batch_first=True),
    bare_case("lstm", "dynamo", batch_first=True, initial_states=True, dynamic=True),
    bare_case("gru", "dynamo", batch_first=True, initial_states=True, dynamic=True),
    bare_case("rnn_tanh", "torchscript", batch_first=True, dynamic=True),
    bare_case("rnn_relu", "torchscript", batch_first=True, dynamic=True),
    # 3. LSTM + Linear on every step.
    Case(
        "lstm_bidir_linear_every_step_dynamic",
        "dynamo",
        lambda: EveryStep(nn.LSTM(FEATURES, HIDDEN, bidirectional=True), CLASSES),
        ["x"],
        ["y"],
        dynamic=True,
        what="nn.LSTM (1 layer, bidirectional, time major) + nn.Linear(8, 2) on every step",
    ),
    Case(
        "lstm_linear_every_step",
        "dynamo",
        lambda: EveryStep(nn.LSTM(FEATURES, HIDDEN), CLASSES),
        ["x"],
        ["y"],
        what="nn.LSTM (1 layer, time major) + nn.Linear(4, 2) on every step, static shapes",
    ),
    # 4. GRU + Linear on the last step, batch first.
    Case(
        "gru_linear_last_step_batch_first_dynamic",
        "dynamo",
        lambda: LastStep(nn.GRU(FEATURES, HIDDEN, batch_first=True), CLASSES),
        ["x"],
        ["y"],
        dynamic=True,
        what="nn.GRU (1 layer, batch first) + nn.Linear(4, 2) on `out[:, -1]`",
    ),
    Case(
        "gru_2layer_linear_last_step_batch_first",
        "dynamo",
        lambda: LastStep(nn.GRU(FEATURES, HIDDEN, num_layers=2, batch_first=True), CLASSES),
        ["x"],
        ["y"],
        what="nn.GRU (2 layers, batch first) + nn.Linear(4, 2) on `out[:, -1]`, static shapes",
    ),
    # 5. Embedding → LSTM → Linear on every step.
    Case(
        "embedding_lstm_linear_lm_dynamic",
        "dynamo",
        lambda: LanguageModel(nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True), VOCAB),
        ["ids"],
        ["logits"],
        tokens=True,
        dynamic=True,
        what="nn.Embedding(10, 3) on int64 ids (B, T) → nn.LSTM (2 layers, batch first) → nn.Linear(4, 10)",
    ),
    # The TorchScript exporter on a few of the same models.
    bare_case("lstm", "torchscript", dynamic=True),
    bare_case("gru", "torchscript", initial_states=True),
    Case(
        "lstm_bidir_linear_every_step_dynamic_torchscript",
        "torchscript",
        lambda: EveryStep(nn.LSTM(FEATURES, HIDDEN, bidirectional=True), CLASSES),
        ["x"],
        ["y"],
        dynamic=True,
        what="as lstm_bidir_linear_every_step_dynamic",
    ),
    Case(
        "gru_linear_last_step_batch_first_dynamic_torchscript",
        "torchscript",
        lambda: LastStep(nn.GRU(FEATURES, HIDDEN, batch_first=True), CLASSES),
        ["x"],
        ["y"],
        dynamic=True,
        what="as gru_linear_last_step_batch_first_dynamic",
    ),
    Case(
        "embedding_lstm_linear_lm_dynamic_torchscript",
        "torchscript",
        lambda: LanguageModel(nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True), VOCAB),
        ["ids"],
        ["logits"],
        tokens=True,
        dynamic=True,
        what="as embedding_lstm_linear_lm_dynamic",
    ),
]

# Exports tried and not written: what each exporter does with them is printed at the end of a run.
FAILURES: list[Case] = [
    Case(
        "lstm_proj_size",
        "dynamo",
        lambda: Bare(nn.LSTM(FEATURES, 5, proj_size=2), False),
        ["x"],
        ["output", "h_n", "c_n"],
        what="nn.LSTM(3, 5, proj_size=2)",
    ),
    Case(
        "lstm_proj_size_torchscript",
        "torchscript",
        lambda: Bare(nn.LSTM(FEATURES, 5, proj_size=2), False),
        ["x"],
        ["output", "h_n", "c_n"],
        what="nn.LSTM(3, 5, proj_size=2)",
    ),
    bare_case("rnn_tanh", "dynamo"),
    bare_case("rnn_relu", "dynamo"),
]


def the_rnn(module: nn.Module) -> nn.Module:
    return module.rnn


def make_inputs(case: Case, module: nn.Module, steps: int, batch: int) -> list[torch.Tensor]:
    rnn = the_rnn(module)
    batch_first = rnn.batch_first
    if case.tokens:
        shape = (batch, steps) if batch_first else (steps, batch)
        return [torch.randint(0, VOCAB, shape, dtype=torch.int64)]
    shape = (batch, steps, FEATURES) if batch_first else (steps, batch, FEATURES)
    inputs = [torch.randn(shape)]
    directions = 2 if rnn.bidirectional else 1
    state_shape = (rnn.num_layers * directions, batch, rnn.hidden_size)
    for _ in case.input_names[1:]:
        inputs.append(torch.randn(state_shape))
    return inputs


def dims_of(case: Case, module: nn.Module, name: str) -> dict[int, str]:
    """The dynamic axes of one graph input: axis → "batch" or "steps"."""
    if name.startswith(("h0", "c0")):
        return {1: "batch"}
    if the_rnn(module).batch_first:
        return {0: "batch", 1: "steps"}
    return {0: "steps", 1: "batch"}


def export(case: Case, module: nn.Module, inputs: list[torch.Tensor]) -> onnx.ModelProto:
    if case.exporter == "dynamo":
        dynamic_shapes = None
        if case.dynamic:
            dim = {"batch": torch.export.Dim("batch"), "steps": torch.export.Dim("steps")}
            dynamic_shapes = tuple(
                {axis: dim[label] for axis, label in dims_of(case, module, name).items()} for name in case.input_names
            )
        program = torch.onnx.export(
            module,
            tuple(inputs),
            dynamo=True,
            input_names=case.input_names,
            output_names=case.output_names,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
        return program.model_proto
    buffer = io.BytesIO()
    dynamic_axes = None
    if case.dynamic:
        dynamic_axes = {name: dims_of(case, module, name) for name in case.input_names}
    torch.onnx.export(
        module,
        tuple(inputs),
        buffer,
        dynamo=False,
        input_names=case.input_names,
        output_names=case.output_names,
        dynamic_axes=dynamic_axes,
    )
    return onnx.load_from_string(buffer.getvalue())


def strip_stack_traces(model: onnx.ModelProto) -> None:
    """Drop the Python stack traces the default exporter leaves in its nodes' metadata: they hold the absolute
    paths of this script and of the venv. The other metadata (module names, FX nodes) stays, as in users' files."""
    for node in model.graph.node:
        keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)


def torch_outputs(module: nn.Module, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return [t.numpy() for t in out]


def run_onnxruntime(model: onnx.ModelProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def check_outputs(label: str, expected: list[np.ndarray], got: list[np.ndarray]) -> float:
    if len(expected) != len(got):
        raise AssertionError(f"{label}: {len(got)} outputs from onnxruntime, {len(expected)} from PyTorch")
    worst = 0.0
    for i, (e, g) in enumerate(zip(expected, got)):
        if e.shape != g.shape:
            raise AssertionError(f"{label}: output {i} has shape {g.shape} in onnxruntime, {e.shape} in PyTorch")
        worst = max(worst, float(np.max(np.abs(e - g))))
    if worst > TOLERANCE:
        raise AssertionError(f"{label}: onnxruntime differs from PyTorch by {worst}")
    return worst


# PyTorch's gate blocks in ONNX's order: LSTM i,f,g,o → i,o,f,c; GRU r,z,n → z,r,h.
GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}


def check_weights(model: onnx.ModelProto, module: nn.Module) -> None:
    """Every recurrent node's W, R, B are initializers holding the layer's parameters in ONNX's gate order.

    The k-th LSTM/GRU/RNN node of the graph is layer k; W[d], R[d] are `weight_ih_l{k}`, `weight_hh_l{k}` (with
    `_reverse` for d = 1) with their gate blocks reordered, and B[d] is `bias_ih` then `bias_hh`, each reordered.
    """
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rnn = the_rnn(module)
    nodes = [n for n in model.graph.node if n.op_type in GATE_ORDER]
    assert len(nodes) == rnn.num_layers, f"{len(nodes)} recurrent nodes for {rnn.num_layers} layers"
    for k, node in enumerate(nodes):
        order = GATE_ORDER[node.op_type]
        suffixes = [""] + (["_reverse"] if rnn.bidirectional else [])

        def blocks(t: torch.Tensor) -> np.ndarray:
            chunks = torch.chunk(t.detach(), len(order))
            return np.concatenate([chunks[i].numpy() for i in order])

        expect_w = np.stack([blocks(getattr(rnn, f"weight_ih_l{k}{s}")) for s in suffixes])
        expect_r = np.stack([blocks(getattr(rnn, f"weight_hh_l{k}{s}")) for s in suffixes])
        expect_b = np.stack(
            [
                np.concatenate([blocks(getattr(rnn, f"bias_ih_l{k}{s}")), blocks(getattr(rnn, f"bias_hh_l{k}{s}"))])
                for s in suffixes
            ]
        )
        for slot, expect in ((1, expect_w), (2, expect_r), (3, expect_b)):
            name = node.input[slot]
            assert name in init, f"{node.op_type} input {slot} ({name}) is not an initializer"
            assert np.array_equal(init[name], expect), f"{node.op_type} #{k} input {slot} is not the layer's"


def attribute_text(a: onnx.AttributeProto) -> str:
    value = onnx.helper.get_attribute_value(a)
    if a.type == onnx.AttributeProto.TENSOR:
        array = numpy_helper.to_array(value)
        value = array.tolist() if array.size <= 8 else f"<{array.dtype} {list(array.shape)}>"
    elif isinstance(value, bytes):
        value = value.decode()
    elif isinstance(value, list):
        value = [v.decode() if isinstance(v, bytes) else v for v in value]
    return f"{a.name}={value}"


def shape_text(v: onnx.ValueInfoProto) -> str:
    t = v.type.tensor_type
    dims = ",".join(d.dim_param if d.HasField("dim_param") else str(d.dim_value) for d in t.shape.dim)
    return f"{v.name}: {onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)}[{dims}]"


def dump(model: onnx.ModelProto) -> str:
    """The graph in text: opsets, inputs, outputs, initializers (shape; values when small), then every node."""
    g = model.graph
    lines = [
        f"producer {model.producer_name} {model.producer_version}, ir_version {model.ir_version}, opsets "
        + ", ".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import),
        "inputs:  " + "; ".join(shape_text(v) for v in g.input),
        "outputs: " + "; ".join(shape_text(v) for v in g.output),
        "initializers:",
    ]
    for i in g.initializer:
        array = numpy_helper.to_array(i)
        small = f" = {array.tolist()}" if array.size <= 4 else ""
        lines.append(f"  {i.name}: {array.dtype}{list(array.shape)}{small}")
    lines.append("nodes:")
    for n in g.node:
        attrs = " ".join(attribute_text(a) for a in n.attribute)
        line = f"  {n.op_type}({', '.join(n.input)}) -> {', '.join(n.output)}"
        lines.append(line + (f"  [{attrs}]" if attrs else ""))
    if model.functions:
        lines.append("functions: " + ", ".join(f.name for f in model.functions))
    return "\n".join(lines) + "\n"


def check_dynamic(case: Case, module: nn.Module, model: onnx.ModelProto) -> None:
    """The graph's inputs have named (not fixed) batch and time dimensions exactly where they were asked for."""
    for v in model.graph.input:
        dims = v.type.tensor_type.shape.dim
        for axis, d in enumerate(dims):
            symbolic = d.HasField("dim_param")
            wanted = case.dynamic and axis in dims_of(case, module, v.name)
            assert symbolic == wanted, f"{case.name}: input {v.name} axis {axis} symbolic={symbolic}"



def write_data_set(folder: Path, model: onnx.ModelProto, inputs: list[np.ndarray], outputs: list[np.ndarray]):
    folder.mkdir(parents=True)
    for kind, values, infos in (("input", inputs, model.graph.input), ("output", outputs, model.graph.output)):
        assert len(values) == len(infos)
        for i, (array, info) in enumerate(zip(values, infos)):
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), info.name)
            (folder / f"{kind}_{i}.pb").write_bytes(tensor.SerializeToString())


def generate(index: int, case: Case, write: bool) -> str:
    """Export, check and (when `write`) write one case; the summary line printed for it."""
    torch.manual_seed(index)
    module = case.module()
    inputs = make_inputs(case, module, STEPS, BATCH)
    expected = torch_outputs(module, inputs)
    model = export(case, module, inputs)
    strip_stack_traces(model)
    onnx.checker.check_model(model, full_check=True)
    check_dynamic(case, module, model)
    check_weights(model, module)
    sets = [([t.numpy() for t in inputs], expected)]
    if case.dynamic:
        other = make_inputs(case, module, OTHER_STEPS, OTHER_BATCH)
        sets.append(([t.numpy() for t in other], torch_outputs(module, other)))
    worst = max(
        check_outputs(f"{case.name} set {i}", want, run_onnxruntime(model, feeds))
        for i, (feeds, want) in enumerate(sets)
    )
    if write:
        folder = OUT / case.name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(model.SerializeToString())
        (folder / "graph.txt").write_text(dump(model))
        for i, (feeds, want) in enumerate(sets):
            write_data_set(folder / f"test_data_set_{i}", model, feeds, want)
    ops = sorted({n.op_type for n in model.graph.node})
    return f"{case.name}: {case.exporter}, opset {model.opset_import[0].version}, max diff {worst:.1e}, ops {ops}"


def probe(index: int, case: Case) -> str:
    """What the exporter makes of a case that is not written: its error, or its graph's ops and onnxruntime's run."""
    torch.manual_seed(index)
    module = case.module()
    inputs = make_inputs(case, module, STEPS, BATCH)
    try:
        model = export(case, module, inputs)
    except Exception as e:  # noqa: BLE001 - what fails is what this reports
        return f"export fails: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    recurrent = [n for n in model.graph.node if n.op_type in GATE_ORDER]
    text = f"exports {len(model.graph.node)} nodes {dict(sorted(counts.items()))}"
    if recurrent:
        text += "; recurrent nodes: " + ", ".join(
            f"{n.op_type}({' '.join(attribute_text(a) for a in n.attribute)})" for n in recurrent
        )
    try:
        got = run_onnxruntime(model, [t.numpy() for t in inputs])
        worst = check_outputs(case.name, torch_outputs(module, inputs), got)
        text += f"; onnxruntime matches PyTorch ({worst:.1e})"
    except Exception as e:  # noqa: BLE001
        text += f"; onnxruntime: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return text


def run_one(kind: str, name: str) -> None:
    """Export, check and (for `CASES`) write one case, in this process; print its summary line."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    cases = CASES if kind == "case" else FAILURES
    index = [c.name for c in cases].index(name) + (0 if kind == "case" else len(CASES))
    case = cases[index - (0 if kind == "case" else len(CASES))]
    if kind == "case":
        print(generate(index, case, write=True), flush=True)
        return
    print(f"not written: {case.name} ({case.exporter}, {case.what}): {probe(index, case)}")


def main() -> None:
    # The exported graphs depend on torch and onnxscript (whose optimizer folds them); see tools/requirements.txt.
    found = {"torch": torch.__version__.split("+")[0], "onnxscript": onnxscript.__version__}
    if found != {"torch": "2.15.0", "onnxscript": "0.7.2"}:
        raise SystemExit(f"expected torch 2.15.0 and onnxscript 0.7.2, found {found}")
    if len(sys.argv) == 3:
        run_one(sys.argv[1], sys.argv[2])
        return
    names = [c.name for c in CASES + FAILURES]
    assert len(set(names)) == len(names), "case names must be unique"
    for child in OUT.iterdir() if OUT.exists() else []:
        if child.is_dir():
            shutil.rmtree(child)
    OUT.mkdir(parents=True, exist_ok=True)
    # One process per case: after a static export of an LSTM, the default exporter fixes the time axis of the
    # next LSTM exported in the same process even when it is asked to keep it dynamic.
    for kind, cases in (("case", CASES), ("failure", FAILURES)):
        for case in cases:
            run = subprocess.run(
                [sys.executable, __file__, kind, case.name], capture_output=True, text=True, check=False
            )
            if run.returncode != 0:
                raise SystemExit(f"{case.name} failed:\n{run.stderr[-3000:]}")
            print(run.stdout.strip().splitlines()[-1], flush=True)
        if kind == "case":
            print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
