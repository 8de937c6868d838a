"""Write recur-onnx's own LSTM/GRU/RNN test cases, with expected outputs from onnxruntime.

Run from the repository root:

    ~/.cache/recur-onnx-venv/bin/python tools/gen_onnx_ort_cases.py

(The venv lives outside the repository; it needs the onnx, onnxruntime and numpy pinned in
`tools/requirements-onnx.txt`.)

Each run deletes every case folder of `crates/recur-onnx/tests/data/ort/` (not its README) and rewrites them all,
byte for byte the same on every run, in the layout of ONNX's own node
tests (as `tools/gen_onnx_node_cases.py` writes `node/`): `<case>/model.onnx` (one LSTM, GRU or RNN node) and
`<case>/test_data_set_0/input_N.pb`, `output_N.pb` (serialized TensorProtos, numbered in the order of the graph's
inputs and outputs).

These cases cover what ONNX's node tests and `node/` leave out: GRU `linear_before_reset = 1` in every direction,
`clip`, the `activations` with `activation_alpha` / `activation_beta`, LSTM `input_forget` and peepholes, varying
`sequence_lens` in every direction and with `layout = 1`, initial states with sequence_lens, omitted outputs and
an omitted bias.

The expected outputs are onnxruntime's (float32, CPU execution provider). onnxruntime's CPU kernels reject
`layout = 1`, so for those cases it runs the same node with `layout = 0` on transposed inputs and its outputs are
transposed back (see batch_first_by_onnxruntime). Inputs come from a numpy generator seeded by the case's name.
Each case is also computed by the numpy
reference below (float64) and must agree with onnxruntime to 1e-5, so the reference documents the semantics the
outputs follow. What onnxruntime does where the ONNX spec is silent or loose (each reading that is ruled out is
checked to change the outputs of some case, see Case.rules_out):

* `clip` bounds every gate's pre-activation, after the bias and (LSTM) the peephole term are added, to
  [-clip, clip], before the activation is applied. It bounds nothing else: not the cell state C_t that h() is
  applied to, not the GRU's (R_h H + Rb_h) before the reset gate multiplies it with `linear_before_reset = 1`
  (the clip bounds the whole sum X W_h + Wb_h + r * (H R_h + Rb_h)), not the output H_t.
* LSTM `input_forget = 1` replaces the forget gate by f_t = 1 - i_t (i_t after its activation). W, R, B and P
  keep their four (three) blocks; the forget block of each is ignored.
* `activation_alpha` / `activation_beta` are consumed in order only by the functions that take that parameter,
  across both directions' lists (forward first): Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid and
  Elu take an alpha; Affine, ScaledTanh and HardSigmoid take a beta. Relu, Tanh, Sigmoid, Softsign and Softplus
  take none and consume no entry. Entry k is not function k's. When a list runs out (or is absent) a function
  takes its default (DEFAULT_ALPHA, DEFAULT_BETA below): LeakyRelu 0.01, HardSigmoid 0.2 / 0.5 and Elu 1.0 as
  the standalone operators, but 0 for Affine, ScaledTanh and ThresholdedRelu (the standalone ThresholdedRelu
  has 1.0), so the cases give those three explicit parameters.
* With `sequence_lens`, Y is zero at and past each sequence's length (in both directions and both layouts); the
  reverse direction starts at the sequence's own last valid step, and Y_h / Y_c are the state after the last step
  processed (the last valid step forward, step 0 in reverse). A sequence of length 0 gets zero Y_h and Y_c, not
  its initial state (check_zero_lengths; no case is written for it).
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "crates" / "recur-onnx" / "tests" / "data" / "ort"
IR_VERSION = {14: 7, 22: 10}  # the IR version onnx released with each opset
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
TOLERANCE = 1e-5

# The activation functions that take an alpha or a beta, with the value onnxruntime gives it when the list has
# none left. LeakyRelu, HardSigmoid and Elu take the defaults of the standalone ONNX operators. The others have no
# default in the RNN operators' spec and onnxruntime takes 0: Affine and ScaledTanh become the zero function, and
# ThresholdedRelu's threshold is 0 (the standalone ThresholdedRelu's default is 1). The cases always give those
# three their parameters explicitly (NO_ONNX_DEFAULT), so they do not depend on this choice.
DEFAULT_ALPHA = {"Affine": 0.0, "LeakyRelu": 0.01, "ThresholdedRelu": 0.0, "ScaledTanh": 0.0, "HardSigmoid": 0.2,
                 "Elu": 1.0}
DEFAULT_BETA = {"Affine": 0.0, "ScaledTanh": 0.0, "HardSigmoid": 0.5}
NO_ONNX_DEFAULT = {"Affine", "ThresholdedRelu", "ScaledTanh"}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "Relu": lambda x, a, b: np.maximum(x, 0.0),
    "Tanh": lambda x, a, b: np.tanh(x),
    "Sigmoid": lambda x, a, b: sigmoid(x),
    "Affine": lambda x, a, b: a * x + b,
    "LeakyRelu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda x, a, b: np.where(x > a, x, 0.0),
    "ScaledTanh": lambda x, a, b: a * np.tanh(b * x),
    "HardSigmoid": lambda x, a, b: np.clip(a * x + b, 0.0, 1.0),
    "Elu": lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1.0)),
    "Softsign": lambda x, a, b: x / (1.0 + np.abs(x)),
    "Softplus": lambda x, a, b: np.log1p(np.exp(x)),
}


def bind_activations(names: list[str], alphas: list[float], betas: list[float], variant: str | None = None):
    """The functions of `names`, each with its alpha and beta: the lists are consumed in order, an entry only by
    a function that takes that parameter; a function past the end of a list takes its default.

    variant "alpha_per_function" is the reading this rules out: entry k of each list belongs to function k.
    """
    if variant == "alpha_per_function":
        return [
            lambda x, fn=ACTIVATIONS[name], a=(alphas[k] if k < len(alphas) else DEFAULT_ALPHA.get(name, 0.0)),
            b=(betas[k] if k < len(betas) else DEFAULT_BETA.get(name, 0.0)): fn(x, a, b)
            for k, name in enumerate(names)
        ]
    alphas, betas = list(alphas), list(betas)
    bound = []
    for name in names:
        assert name in ACTIVATIONS, name
        if name in DEFAULT_ALPHA and not alphas:
            assert variant is not None or name not in NO_ONNX_DEFAULT, f"{name} needs an explicit alpha"
        if name in DEFAULT_BETA and not betas:
            assert variant is not None or name not in NO_ONNX_DEFAULT, f"{name} needs an explicit beta"
        alpha = alphas.pop(0) if name in DEFAULT_ALPHA and alphas else DEFAULT_ALPHA.get(name, 0.0)
        beta = betas.pop(0) if name in DEFAULT_BETA and betas else DEFAULT_BETA.get(name, 0.0)
        bound.append(lambda x, fn=ACTIVATIONS[name], a=alpha, b=beta: fn(x, a, b))
    assert not alphas and not betas, f"unused activation parameters {alphas} {betas}"
    return bound


def clipped(x, clip):
    return x if clip is None else np.clip(x, -clip, clip)


def lstm_step(x, h, c, w, r, b, p, acts, attrs):
    """One LSTM step: ONNX gate order i, o, f, c; peepholes p = [p_i, p_o, p_f]; acts = (f, g, h)."""
    f_act, g_act, h_act = acts
    clip = attrs.get("clip")
    hidden = h.shape[-1]
    gates = x @ w.T + h @ r.T + b[: 4 * hidden] + b[4 * hidden :]
    i, o, f, g = np.split(gates, 4, axis=-1)
    p_i, p_o, p_f = np.split(p, 3)
    i = f_act(clipped(i + p_i * c, clip))
    if attrs.get("input_forget", 0) and attrs.get("variant") != "forget_gate_kept":
        f = 1.0 - i
    else:
        f = f_act(clipped(f + p_f * c, clip))
    c_next = f * c + i * g_act(clipped(g, clip))
    o = f_act(clipped(o + p_o * c_next, clip))
    if attrs.get("variant") == "clip_cell":  # the reading ruled out: C_t clipped before h()
        return o * h_act(clipped(c_next, clip)), c_next
    return o * h_act(c_next), c_next


def gru_step(x, h, _c, w, r, b, _p, acts, attrs):
    """One GRU step: ONNX gate order z, r, h; acts = (f, g)."""
    f_act, g_act = acts
    clip = attrs.get("clip")
    w_z, w_r, w_h = np.split(w, 3)
    r_z, r_r, r_h = np.split(r, 3)
    wb_z, wb_r, wb_h, rb_z, rb_r, rb_h = np.split(b, 6)
    z = f_act(clipped(x @ w_z.T + h @ r_z.T + wb_z + rb_z, clip))
    reset = f_act(clipped(x @ w_r.T + h @ r_r.T + wb_r + rb_r, clip))
    if attrs.get("linear_before_reset", 0) and attrs.get("variant") == "clip_parts":
        # The reading ruled out: X W_h + Wb_h and H R_h + Rb_h clipped apart, before the reset gate's product.
        candidate = g_act(clipped(x @ w_h.T + wb_h, clip) + reset * clipped(h @ r_h.T + rb_h, clip))
    elif attrs.get("linear_before_reset", 0):
        candidate = g_act(clipped(x @ w_h.T + reset * (h @ r_h.T + rb_h) + wb_h, clip))
    else:
        candidate = g_act(clipped(x @ w_h.T + (reset * h) @ r_h.T + rb_h + wb_h, clip))
    return (1.0 - z) * candidate + z * h, None


def rnn_step(x, h, _c, w, r, b, _p, acts, attrs):
    """One RNN step; acts = (f,)."""
    (f_act,) = acts
    hidden = h.shape[-1]
    return f_act(clipped(x @ w.T + h @ r.T + b[:hidden] + b[hidden:], attrs.get("clip"))), None


STEPS = {"LSTM": lstm_step, "GRU": gru_step, "RNN": rnn_step}


def reference(op: str, attrs: dict, x, w, r, b, lens, h0, c0, p):
    """Y [T, D, B, H], Y_h [D, B, H] and Y_c by the ONNX spec, for layout 0, in float64.

    Steps at or past a sequence's length leave its state unchanged and its Y zero; the reverse direction of a
    sequence starts at its own last valid step.
    """
    steps, batch, _ = x.shape
    directions, _, hidden = r.shape
    per_direction = len(DEFAULT_ACTIVATIONS[op])
    names = attrs.get("activations", DEFAULT_ACTIVATIONS[op] * directions)
    acts = bind_activations(
        names, attrs.get("activation_alpha", []), attrs.get("activation_beta", []), attrs.get("variant")
    )
    y = np.zeros((steps, directions, batch, hidden))
    y_h = np.zeros((directions, batch, hidden))
    y_c = np.zeros((directions, batch, hidden))
    reverse_dirs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[attrs["direction"]]
    for d, reverse in enumerate(reverse_dirs):
        dir_acts = acts[d * per_direction : (d + 1) * per_direction]
        for n in range(batch):
            h, c = h0[d, n], c0[d, n]
            order = range(lens[n] - 1, -1, -1) if reverse else range(lens[n])
            for t in order:
                h, c_next = STEPS[op](x[t, n], h, c, w[d], r[d], b[d], p[d], dir_acts, attrs)
                c = c_next if c_next is not None else c
                y[t, d, n] = h
            y_h[d, n], y_c[d, n] = h, c
    return y, y_h, y_c


@dataclass
class Case:
    """One case: a single LSTM, GRU or RNN node and its inputs."""

    name: str
    op: str
    direction: str = "forward"
    attrs: dict = field(default_factory=dict)  # attributes beyond hidden_size and direction
    opset: int = 14
    steps: int = 3
    batch: int = 2
    features: int = 3
    hidden: int = 3
    seq_lens: list[int] | None = None
    bias: bool = True
    initial_h: bool = False
    initial_c: bool = False
    peepholes: bool = False
    outputs: tuple[str, ...] = ("Y", "Y_h", "Y_c")  # node outputs; "" leaves one out
    scale: float = 1.0  # X, W and initial_c are drawn from [-scale, scale]; the rest from [-1, 1]
    # Readings of the spec the case must tell apart from onnxruntime's (its outputs must differ by > 1e-2):
    # "unclipped" (no clip), "clip_cell" (C_t clipped before h() too), "forget_gate_kept" (input_forget ignored),
    # "alpha_per_function" (alpha / beta entry k belongs to function k), "clip_parts" (GRU, linear_before_reset:
    # X W_h + Wb_h and H R_h + Rb_h clipped apart rather than their sum).
    rules_out: tuple[str, ...] = ()
    note: str = ""  # what the case covers, for the README


ALL_OUT = ("Y", "Y_h", "Y_c")
CASES = [
    # GRU linear_before_reset = 1 in every direction, and = 0 bidirectional.
    Case("gru_linear_before_reset_forward", "GRU", attrs={"linear_before_reset": 1}, initial_h=True,
         note="`linear_before_reset = 1`, forward, B and initial_h"),
    Case("gru_linear_before_reset_reverse", "GRU", "reverse", {"linear_before_reset": 1}, initial_h=True,
         note="`linear_before_reset = 1`, reverse"),
    Case("gru_linear_before_reset_bidirectional_seq_lens", "GRU", "bidirectional", {"linear_before_reset": 1},
         steps=4, batch=3, seq_lens=[2, 4, 1], initial_h=True,
         note="`linear_before_reset = 1`, bidirectional, sequence_lens `[2, 4, 1]`, initial_h"),
    Case("gru_bidirectional_seq_lens_initial_h", "GRU", "bidirectional", {"linear_before_reset": 0},
         batch=3, seq_lens=[3, 1, 2], initial_h=True,
         note="`linear_before_reset = 0` (explicit), bidirectional, sequence_lens `[3, 1, 2]`, initial_h"),
    # clip, with X and W scaled up so that it bounds some pre-activations (checked below).
    Case("lstm_clip", "LSTM", attrs={"clip": 1.0}, scale=3.0, initial_h=True, initial_c=True,
         rules_out=("clip_cell",),
         note="`clip = 1`, forward, inputs scaled so the clip changes the result"),
    Case("lstm_clip_bidirectional_seq_lens", "LSTM", "bidirectional", {"clip": 0.5}, batch=3, seq_lens=[1, 3, 2],
         scale=2.0, note="`clip = 0.5`, bidirectional, sequence_lens `[1, 3, 2]`"),
    Case("gru_clip", "GRU", attrs={"clip": 1.0}, scale=3.0, initial_h=True,
         note="`clip = 1`, `linear_before_reset = 0`"),
    Case("gru_linear_before_reset_clip", "GRU", "bidirectional", {"clip": 0.8, "linear_before_reset": 1},
         scale=3.0, initial_h=True, rules_out=("clip_parts",),
         note="`clip = 0.8`, `linear_before_reset = 1`, bidirectional"),
    Case("rnn_clip", "RNN", "reverse", {"clip": 0.7}, scale=3.0, initial_h=True,
         note="`clip = 0.7`, reverse"),
    # activations, activation_alpha and activation_beta.
    Case("rnn_relu", "RNN", attrs={"activations": ["Relu"]}, initial_h=True, steps=4,
         note="Relu"),
    Case("rnn_activations_bidirectional", "RNN", "bidirectional",
         {"activations": ["LeakyRelu", "ThresholdedRelu"], "activation_alpha": [0.2, 0.3]}, initial_h=True, scale=2.0,
         note="LeakyRelu (alpha 0.2) forward, ThresholdedRelu (alpha 0.3) reverse"),
    Case("rnn_activations_defaults", "RNN", "bidirectional", {"activations": ["Elu", "LeakyRelu"]},
         scale=2.0, note="Elu (default alpha 1) forward, LeakyRelu (default alpha 0.01) reverse"),
    Case("lstm_activations_alpha_beta", "LSTM",
         attrs={"activations": ["HardSigmoid", "ScaledTanh", "Affine"], "activation_alpha": [0.3, 1.5, 0.8],
                "activation_beta": [0.6, 0.7, 0.1]}, initial_h=True, initial_c=True,
         note="HardSigmoid (0.3, 0.6), ScaledTanh (1.5, 0.7), Affine (0.8, 0.1): one alpha and beta each"),
    Case("lstm_activations_defaults", "LSTM", "reverse",
         attrs={"activations": ["HardSigmoid", "Elu", "Softsign"]}, initial_h=True, initial_c=True,
         note="HardSigmoid, Elu and Softsign with no alpha or beta: their defaults"),
    Case("lstm_activations_bidirectional", "LSTM", "bidirectional",
         attrs={"activations": ["Sigmoid", "Relu", "Tanh", "HardSigmoid", "LeakyRelu", "Elu"],
                "activation_alpha": [0.25, 0.1, 0.5], "activation_beta": [0.45]},
         batch=3, seq_lens=[3, 2, 1], initial_h=True, initial_c=True, rules_out=("alpha_per_function",),
         note="forward Sigmoid, Relu, Tanh; reverse HardSigmoid (0.25, 0.45), LeakyRelu (0.1), Elu (0.5); "
              "parameters consumed only by the functions that take them; sequence_lens `[3, 2, 1]`"),
    Case("gru_activations_bidirectional", "GRU", "bidirectional",
         attrs={"activations": ["Sigmoid", "ScaledTanh", "HardSigmoid", "Softsign"],
                "activation_alpha": [1.2, 0.15], "activation_beta": [0.8], "linear_before_reset": 1},
         opset=22, initial_h=True, rules_out=("alpha_per_function",),
         note="forward Sigmoid, ScaledTanh (1.2, 0.8); reverse HardSigmoid (alpha 0.15; the beta list has run "
              "out, so its default 0.5), Softsign; `linear_before_reset = 1`; opset 22"),
    Case("gru_activations_affine_softplus", "GRU", "reverse",
         attrs={"activations": ["Affine", "Softplus"], "activation_alpha": [0.4], "activation_beta": [0.5]},
         initial_h=True, note="reverse Affine (0.4, 0.5) as the gate function, Softplus as the candidate's"),
    # LSTM input_forget and peepholes.
    Case("lstm_input_forget", "LSTM", attrs={"input_forget": 1}, initial_h=True, initial_c=True,
         rules_out=("forget_gate_kept",),
         note="`input_forget = 1` (f = 1 - i), forward"),
    Case("lstm_input_forget_bidirectional", "LSTM", "bidirectional", {"input_forget": 1}, batch=3,
         seq_lens=[2, 3, 1], initial_h=True, initial_c=True,
         rules_out=("forget_gate_kept",), note="`input_forget = 1`, bidirectional, sequence_lens `[2, 3, 1]`"),
    Case("lstm_peepholes_bidirectional_seq_lens", "LSTM", "bidirectional", batch=3, seq_lens=[3, 1, 2],
         initial_h=True, initial_c=True, peepholes=True,
         note="peepholes P, bidirectional, sequence_lens `[3, 1, 2]`, initial_h and initial_c"),
    Case("lstm_peepholes_input_forget_clip", "LSTM", "reverse", {"input_forget": 1, "clip": 1.0}, scale=2.5,
         initial_h=True, initial_c=True, peepholes=True, rules_out=("clip_cell", "forget_gate_kept"),
         note="peepholes, `input_forget = 1` and `clip = 1` together, reverse"),
    # sequence_lens for each op and direction.
    Case("lstm_seq_lens_forward", "LSTM", steps=4, batch=3, seq_lens=[4, 1, 3],
         note="sequence_lens `[4, 1, 3]`, forward, no initial state"),
    Case("lstm_seq_lens_reverse", "LSTM", "reverse", steps=4, batch=3, seq_lens=[2, 4, 3], initial_h=True,
         initial_c=True, note="sequence_lens `[2, 4, 3]`, reverse, initial_h and initial_c"),
    Case("lstm_seq_lens_bidirectional", "LSTM", "bidirectional", steps=5, batch=3, seq_lens=[5, 2, 3],
         initial_h=True, note="sequence_lens `[5, 2, 3]`, bidirectional, initial_h without initial_c"),
    Case("gru_seq_lens_forward", "GRU", steps=4, batch=3, seq_lens=[3, 4, 1], initial_h=True,
         note="sequence_lens `[3, 4, 1]`, forward"),
    Case("gru_seq_lens_reverse", "GRU", "reverse", steps=4, batch=3, seq_lens=[1, 3, 4],
         note="sequence_lens `[1, 3, 4]`, reverse, no initial state"),
    Case("gru_seq_lens_bidirectional", "GRU", "bidirectional", steps=5, batch=3, seq_lens=[4, 5, 2],
         initial_h=True, note="sequence_lens `[4, 5, 2]`, bidirectional"),
    Case("rnn_seq_lens_forward", "RNN", steps=4, batch=3, seq_lens=[2, 1, 4],
         note="sequence_lens `[2, 1, 4]`, forward"),
    Case("rnn_seq_lens_reverse", "RNN", "reverse", steps=4, batch=3, seq_lens=[4, 2, 3], initial_h=True,
         note="sequence_lens `[4, 2, 3]`, reverse, initial_h"),
    Case("rnn_seq_lens_bidirectional", "RNN", "bidirectional", steps=5, batch=3, seq_lens=[3, 5, 1],
         initial_h=True, note="sequence_lens `[3, 5, 1]`, bidirectional"),
    # layout = 1 (batch first).
    Case("lstm_layout_batch_first_bidirectional", "LSTM", "bidirectional", {"layout": 1}, opset=22, steps=4,
         batch=3, seq_lens=[4, 2, 1], initial_h=True, initial_c=True, peepholes=True,
         note="`layout = 1`, bidirectional, sequence_lens `[4, 2, 1]`, initial_h, initial_c, P; opset 22"),
    Case("gru_layout_batch_first_bidirectional", "GRU", "bidirectional", {"layout": 1, "linear_before_reset": 1},
         steps=4, batch=3, seq_lens=[1, 4, 3], initial_h=True,
         note="`layout = 1`, bidirectional, `linear_before_reset = 1`, sequence_lens `[1, 4, 3]`, initial_h"),
    Case("rnn_layout_batch_first_reverse", "RNN", "reverse", {"layout": 1}, steps=4, batch=3,
         seq_lens=[3, 4, 2], initial_h=True, note="`layout = 1`, reverse, sequence_lens `[3, 4, 2]`, initial_h"),
    # Outputs left out.
    Case("lstm_only_y_h", "LSTM", "bidirectional", batch=3, seq_lens=[3, 1, 2], initial_h=True, initial_c=True,
         outputs=("", "Y_h"), note="node outputs `['', 'Y_h']`: only Y_h, bidirectional with sequence_lens"),
    Case("lstm_y_and_y_c", "LSTM", "reverse", initial_h=True, initial_c=True, outputs=("Y", "", "Y_c"),
         note="node outputs `['Y', '', 'Y_c']`: Y and Y_c, no Y_h"),
    Case("gru_only_y_h", "GRU", "reverse", {"linear_before_reset": 1}, batch=3, seq_lens=[2, 3, 1],
         initial_h=True, outputs=("", "Y_h"), note="node outputs `['', 'Y_h']`, reverse, sequence_lens"),
    Case("rnn_only_y", "RNN", "bidirectional", initial_h=True, outputs=("Y",),
         note="node outputs `['Y']`: only Y"),
    # No bias.
    Case("lstm_no_bias_initial_states", "LSTM", "bidirectional", bias=False, initial_h=True, initial_c=True,
         note="B left out (empty input name), initial_h and initial_c, bidirectional"),
    Case("gru_no_bias_initial_h", "GRU", "reverse", {"linear_before_reset": 1}, bias=False, initial_h=True,
         note="B left out, initial_h, reverse, `linear_before_reset = 1`"),
    Case("rnn_no_bias_seq_lens", "RNN", "forward", bias=False, batch=3, seq_lens=[3, 1, 2], initial_h=True,
         note="B left out, sequence_lens and initial_h"),
]


def make_inputs(case: Case) -> dict:
    """The graph inputs of a case, drawn from a generator seeded by the case's name."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    directions = 2 if case.direction == "bidirectional" else 1
    gates, hidden = GATES[case.op], case.hidden

    def uniform(*shape, scale=1.0):
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)

    def state(scale=1.0):
        s = uniform(directions, case.batch, hidden, scale=scale)
        return s.transpose(1, 0, 2).copy() if case.attrs.get("layout", 0) else s

    x = uniform(case.steps, case.batch, case.features, scale=case.scale)
    inputs = {
        "X": x.transpose(1, 0, 2).copy() if case.attrs.get("layout", 0) else x,
        "W": uniform(directions, gates * hidden, case.features, scale=case.scale),
        "R": uniform(directions, gates * hidden, hidden),
    }
    if case.bias:
        inputs["B"] = uniform(directions, 2 * gates * hidden)
    if case.seq_lens is not None:
        assert len(case.seq_lens) == case.batch and max(case.seq_lens) == case.steps
        inputs["sequence_lens"] = np.array(case.seq_lens, dtype=np.int32)
    if case.initial_h:
        inputs["initial_h"] = state()
    if case.initial_c:
        inputs["initial_c"] = state(case.scale)
    if case.peepholes:
        inputs["P"] = uniform(directions, 3 * hidden)
    return inputs


def make_node(case: Case, inputs: dict):
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    node_inputs = [k if k in inputs else "" for k in order]
    while node_inputs[-1] == "":
        node_inputs.pop()
    outputs = [o for o in case.outputs if case.op == "LSTM" or o != "Y_c"]
    while outputs[-1] == "":
        outputs.pop()
    return helper.make_node(
        case.op, node_inputs, outputs, hidden_size=case.hidden, direction=case.direction, **case.attrs
    )


def run_reference(case: Case, inputs: dict, attrs: dict) -> dict:
    """The reference's Y, Y_h and Y_c of a case, in the case's layout."""
    directions = 2 if case.direction == "bidirectional" else 1
    batch_first = case.attrs.get("layout", 0) == 1
    f64 = {k: v.astype(np.float64) for k, v in inputs.items()}
    if batch_first:
        for k in ("X", "initial_h", "initial_c"):
            if k in f64:
                f64[k] = f64[k].transpose(1, 0, 2)
    zeros = np.zeros((directions, case.batch, case.hidden))
    gates = GATES[case.op]
    y, y_h, y_c = reference(
        case.op,
        {"direction": case.direction, **attrs},
        f64["X"],
        f64["W"],
        f64["R"],
        f64.get("B", np.zeros((directions, 2 * gates * case.hidden))),
        case.seq_lens or [case.steps] * case.batch,
        f64.get("initial_h", zeros),
        f64.get("initial_c", zeros),
        f64.get("P", np.zeros((directions, 3 * case.hidden))),
    )
    if batch_first:
        y, y_h, y_c = y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
    return {"Y": y, "Y_h": y_h, "Y_c": y_c}


def value_info(name: str, array: np.ndarray):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)


def make_model(case: Case, node, inputs: dict, outputs: dict):
    graph = helper.make_graph(
        [node],
        case.name,
        [value_info(k, v) for k, v in inputs.items()],
        [value_info(k, v) for k, v in outputs.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", case.opset)], ir_version=IR_VERSION[case.opset]
    )
    model.producer_name = "recur tools/gen_onnx_ort_cases.py"
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnxruntime(model, inputs: dict, names: list[str]) -> dict:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, inputs)))


def batch_first_by_onnxruntime(case: Case, model, inputs: dict, names: list[str]) -> dict:
    """onnxruntime's outputs for a `layout = 1` model.

    onnxruntime's CPU kernels reject `layout = 1` ("Batchwise recurrent operations (layout == 1) are not
    supported"), so the node runs with `layout = 0` on X, initial_h and initial_c transposed to sequence first,
    and Y, Y_h and Y_c are transposed back: by the spec, `layout = 1` is only that transposition.
    """
    onnxruntime.set_default_logger_severity(4)  # the rejection is expected: keep it out of the log
    try:
        run_onnxruntime(model, inputs, names)
    except onnxruntime.capi.onnxruntime_pybind11_state.Fail as error:
        assert "layout == 1" in str(error), error
    else:
        raise SystemExit(f"{case.name}: onnxruntime now runs layout = 1; compare it directly")
    finally:
        onnxruntime.set_default_logger_severity(2)
    seq_first = {
        k: v.transpose(1, 0, 2).copy() if k in ("X", "initial_h", "initial_c") else v for k, v in inputs.items()
    }
    attrs = {**case.attrs, "layout": 0}
    node = helper.make_node(case.op, model.graph.node[0].input, model.graph.node[0].output,
                            hidden_size=case.hidden, direction=case.direction, **attrs)
    directions = 2 if case.direction == "bidirectional" else 1
    shapes = {"Y": (case.steps, directions, case.batch, case.hidden)}
    outputs = {k: np.zeros(shapes.get(k, (directions, case.batch, case.hidden)), np.float32) for k in names}
    found = run_onnxruntime(make_model(case, node, seq_first, outputs), seq_first, names)
    return {
        k: v.transpose(2, 0, 1, 3).copy() if k == "Y" else v.transpose(1, 0, 2).copy() for k, v in found.items()
    }


def build_case(case: Case):
    """The model, inputs and onnxruntime's outputs of a case, checked against the reference."""
    inputs = make_inputs(case)
    node = make_node(case, inputs)
    expected = run_reference(case, inputs, case.attrs)
    names = [o for o in node.output if o]
    # The graph's output shapes are the reference's; the values stored are onnxruntime's.
    model = make_model(case, node, inputs, {k: expected[k].astype(np.float32) for k in names})
    if case.attrs.get("layout", 0) == 1:
        found = batch_first_by_onnxruntime(case, model, inputs, names)
    else:
        found = run_onnxruntime(model, inputs, names)
    for name in names:
        got = found[name]
        assert got.dtype == np.float32 and got.shape == expected[name].shape, (case.name, name, got.shape)
        err = float(np.max(np.abs(expected[name] - got)))
        if err > TOLERANCE:
            raise SystemExit(f"{case.name}: {name} differs from the reference by {err}")

    rules_out = case.rules_out + (("unclipped",) if "clip" in case.attrs else ())
    for variant in rules_out:
        attrs = {**case.attrs, "variant": variant}
        if variant == "unclipped":
            del attrs["clip"]
        other = run_reference(case, inputs, attrs)
        change = max(float(np.max(np.abs(other[n] - found[n]))) for n in names)
        if change < 1e-2:
            raise SystemExit(f"{case.name}: does not tell {variant} apart (outputs differ by only {change})")
    return model, inputs, found


def check_zero_lengths() -> None:
    """onnxruntime's outputs for a sequence of length 0 (written as no case: the spec does not say what they are).

    Its Y is zero at every step, as expected, but its Y_h and Y_c are zero too, not initial_h and initial_c (which
    a state left unchanged by no steps would give). The other sequences of the batch are unaffected.
    """
    for op in GATES:
        for direction in ("forward", "reverse", "bidirectional"):
            case = Case(f"zero_length_{op}_{direction}", op, direction, batch=3, seq_lens=[3, 0, 2],
                        initial_h=True, initial_c=op == "LSTM")
            inputs = make_inputs(case)
            node = make_node(case, inputs)
            names = [o for o in node.output if o]
            expected = run_reference(case, inputs, case.attrs)
            model = make_model(case, node, inputs, {k: expected[k].astype(np.float32) for k in names})
            found = run_onnxruntime(model, inputs, names)
            for name in names:
                # Batch is the second-to-last axis of Y, Y_h and Y_c (layout 0).
                assert not found[name][..., 1, :].any(), (case.name, name)
                others = np.delete(found[name], 1, axis=-2) - np.delete(expected[name], 1, axis=-2)
                assert float(np.max(np.abs(others))) <= TOLERANCE, case.name
            assert expected["Y_h"][:, 1].any(), "the initial state should not be zero"


def write_case(folder: Path, model, inputs: dict, outputs: dict) -> None:
    data = folder / "test_data_set_0"
    data.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for i, (name, array) in enumerate(tensors.items()):
            (data / f"{kind}_{i}.pb").write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def main() -> None:
    if (onnx.__version__, onnxruntime.__version__) != ("1.22.0", "1.32.0"):
        raise SystemExit(
            f"expected onnx 1.22.0 and onnxruntime 1.32.0, found {onnx.__version__} and {onnxruntime.__version__}"
        )
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    # Every case folder is rewritten; the README beside them stays.
    for child in sorted(OUT.glob("*")) if OUT.exists() else []:
        if child.is_dir():
            shutil.rmtree(child)
    OUT.mkdir(parents=True, exist_ok=True)
    check_zero_lengths()
    for case in CASES:
        model, inputs, outputs = build_case(case)
        write_case(OUT / case.name, model, inputs, outputs)
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
