"""Write the ONNX node-test cases of LSTM, GRU and RNN that recur-onnx's tests read.

Run from the repository root:

    ~/.cache/recur-onnx-venv/bin/python tools/gen_onnx_node_cases.py

(The venv lives outside the repository; it needs onnx==1.22.0, onnxruntime and numpy, pinned in
`tools/requirements-onnx.txt`.)

Each run deletes `crates/recur-onnx/tests/data/node/` and rewrites it completely, in the layout of ONNX's own
node tests: `<case>/model.onnx` (one LSTM, GRU or RNN node) and `<case>/test_data_set_0/input_N.pb`,
`output_N.pb` (serialized TensorProtos, numbered in the order of the graph's inputs and outputs).

Two sources:

* The twelve LSTM/GRU/RNN cases shipped in the onnx 1.22.0 wheel (`onnx/backend/test/data/node/`), copied
  byte for byte. They are all forward-only: the wheel's case generators (`onnx/backend/test/case/node/{lstm,gru,
  rnn}.py`) raise NotImplementedError for two directions and have no reverse case.
* Reverse and bidirectional cases written here (`GENERATED_CASES`): the expected outputs come from the numpy
  implementation of the ONNX operator specs below (onnx's ReferenceEvaluator ignores `direction` and rejects two
  directions), computed in float64 and stored as float32, and each is checked against onnxruntime before it is
  written. Inputs come from a numpy generator seeded with the case's index, so the files are reproducible.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "crates" / "recur-onnx" / "tests" / "data" / "node"
ONNX_NODE_TESTS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
SHIPPED_CASES = [
    "test_gru_batchwise",
    "test_gru_defaults",
    "test_gru_seq_length",
    "test_gru_with_initial_bias",
    "test_lstm_batchwise",
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_rnn_seq_length",
    "test_simple_rnn_batchwise",
    "test_simple_rnn_defaults",
    "test_simple_rnn_with_initial_bias",
]
OPSET = 22
IR_VERSION = 10
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
TOLERANCE = 1e-5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lstm_step(x, h, c, w, r, b, p, _attrs):
    """One LSTM step (ONNX gate order i, o, f, c; peepholes p = [p_i, p_o, p_f])."""
    hidden = h.shape[-1]
    gates = x @ w.T + h @ r.T + b[: 4 * hidden] + b[4 * hidden :]
    i, o, f, g = np.split(gates, 4, axis=-1)
    p_i, p_o, p_f = np.split(p, 3)
    i = sigmoid(i + p_i * c)
    f = sigmoid(f + p_f * c)
    c_next = f * c + i * np.tanh(g)
    o = sigmoid(o + p_o * c_next)
    return o * np.tanh(c_next), c_next


def gru_step(x, h, _c, w, r, b, _p, attrs):
    """One GRU step (ONNX gate order z, r, h)."""
    hidden = h.shape[-1]
    w_z, w_r, w_h = np.split(w, 3)
    r_z, r_r, r_h = np.split(r, 3)
    wb_z, wb_r, wb_h, rb_z, rb_r, rb_h = np.split(b, 6)
    assert wb_h.shape == (hidden,)
    z = sigmoid(x @ w_z.T + h @ r_z.T + wb_z + rb_z)
    reset = sigmoid(x @ w_r.T + h @ r_r.T + wb_r + rb_r)
    if attrs.get("linear_before_reset", 0):
        candidate = np.tanh(x @ w_h.T + reset * (h @ r_h.T + rb_h) + wb_h)
    else:
        candidate = np.tanh(x @ w_h.T + (reset * h) @ r_h.T + rb_h + wb_h)
    return (1 - z) * candidate + z * h, None


def rnn_step(x, h, _c, w, r, b, _p, _attrs):
    """One RNN step with the default Tanh activation."""
    hidden = h.shape[-1]
    return np.tanh(x @ w.T + h @ r.T + b[:hidden] + b[hidden:]), None


STEPS = {"LSTM": lstm_step, "GRU": gru_step, "RNN": rnn_step}


def reference(op: str, attrs: dict, x, w, r, b, lens, h0, c0, p):
    """Y [T, D, B, H], Y_h [D, B, H] and (LSTM) Y_c by the ONNX spec, for layout 0, in float64.

    Steps at or past a sequence's length leave its state unchanged and its Y zero; the reverse direction of a
    sequence starts at its own last valid step.
    """
    steps, batch, _ = x.shape
    directions, _, hidden = r.shape
    y = np.zeros((steps, directions, batch, hidden))
    y_h = np.zeros((directions, batch, hidden))
    y_c = np.zeros((directions, batch, hidden))
    reverse_dirs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[attrs["direction"]]
    for d, reverse in enumerate(reverse_dirs):
        for n in range(batch):
            h, c = h0[d, n], c0[d, n]
            order = range(lens[n] - 1, -1, -1) if reverse else range(lens[n])
            for t in order:
                h, c_next = STEPS[op](x[t, n], h, c, w[d], r[d], b[d], p[d], attrs)
                c = c_next if c_next is not None else c
                y[t, d, n] = h
            y_h[d, n], y_c[d, n] = h, c
    return y, y_h, y_c


def generated_case(index: int, op: str, direction: str, seq_lens: list[int] | None, attrs: dict):
    """Inputs, outputs and node of one generated case: 3 steps, 2 input features, 3 hidden units."""
    rng = np.random.default_rng(index)
    steps, features, hidden = 3, 2, 3
    batch = len(seq_lens) if seq_lens else 2
    directions = 2 if direction == "bidirectional" else 1
    gates = GATES[op]

    def uniform(*shape):
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)

    inputs = {
        "X": uniform(steps, batch, features),
        "W": uniform(directions, gates * hidden, features),
        "R": uniform(directions, gates * hidden, hidden),
        "B": uniform(directions, 2 * gates * hidden),
    }
    if seq_lens is not None:
        inputs["sequence_lens"] = np.array(seq_lens, dtype=np.int32)
    inputs["initial_h"] = uniform(directions, batch, hidden)
    if op == "LSTM":
        inputs["initial_c"] = uniform(directions, batch, hidden)

    lens = seq_lens or [steps] * batch
    zeros = np.zeros((directions, batch, hidden))
    y, y_h, y_c = reference(
        op,
        {"direction": direction, **attrs},
        *(inputs[k].astype(np.float64) for k in ("X", "W", "R", "B")),
        lens,
        inputs["initial_h"].astype(np.float64),
        inputs["initial_c"].astype(np.float64) if op == "LSTM" else zeros,
        np.zeros((directions, 3 * hidden)),
    )
    outputs = {"Y": y, "Y_h": y_h}
    if op == "LSTM":
        outputs["Y_c"] = y_c
    outputs = {k: v.astype(np.float32) for k, v in outputs.items()}

    # The node's inputs by position: an omitted optional input is an empty name.
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h"] + (["initial_c"] if op == "LSTM" else [])
    node_inputs = [k if k in inputs else "" for k in order]
    node = helper.make_node(
        op, node_inputs, list(outputs), hidden_size=hidden, direction=direction, **attrs
    )
    return node, inputs, outputs


GENERATED_CASES = [
    # (folder, op, direction, sequence_lens, extra attributes)
    ("test_lstm_reverse", "LSTM", "reverse", None, {}),
    ("test_lstm_bidirectional", "LSTM", "bidirectional", None, {}),
    ("test_lstm_bidirectional_seq_length", "LSTM", "bidirectional", [3, 1, 2], {}),
    ("test_gru_reverse", "GRU", "reverse", None, {}),
    ("test_gru_bidirectional", "GRU", "bidirectional", None, {"linear_before_reset": 1}),
    ("test_gru_bidirectional_seq_length", "GRU", "bidirectional", [3, 1, 2], {"linear_before_reset": 1}),
    ("test_rnn_reverse", "RNN", "reverse", None, {}),
    ("test_rnn_bidirectional", "RNN", "bidirectional", None, {}),
    ("test_rnn_bidirectional_seq_length", "RNN", "bidirectional", [3, 1, 2], {}),
]


def value_info(name: str, array: np.ndarray):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)


def write_case(folder: Path, node, inputs: dict, outputs: dict) -> None:
    graph = helper.make_graph(
        [node],
        folder.name,
        [value_info(k, v) for k, v in inputs.items()],
        [value_info(k, v) for k, v in outputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    model.producer_name = "recur tools/gen_onnx_node_cases.py"
    onnx.checker.check_model(model, full_check=True)
    check_against_onnxruntime(model, inputs, outputs)

    data = folder / "test_data_set_0"
    data.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for i, (name, array) in enumerate(tensors.items()):
            (data / f"{kind}_{i}.pb").write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def check_against_onnxruntime(model, inputs: dict, outputs: dict) -> None:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    found = session.run(list(outputs), inputs)
    for (name, expected), got in zip(outputs.items(), found):
        err = float(np.max(np.abs(expected - got)))
        if err > TOLERANCE:
            raise SystemExit(f"{model.graph.name}: {name} differs from onnxruntime by {err}")


def main() -> None:
    if onnx.__version__ != "1.22.0":
        raise SystemExit(f"expected onnx 1.22.0 (the version of the shipped cases), found {onnx.__version__}")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for name in SHIPPED_CASES:
        source = ONNX_NODE_TESTS / name
        shutil.copytree(source, OUT / name)
    for index, (name, op, direction, seq_lens, attrs) in enumerate(GENERATED_CASES):
        node, inputs, outputs = generated_case(index, op, direction, seq_lens, attrs)
        write_case(OUT / name, node, inputs, outputs)
    print(f"wrote {len(SHIPPED_CASES) + len(GENERATED_CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
