"""Side by side: recur against PyTorch and ONNX Runtime on `recur bench`'s cases.

Run from anywhere (the venv lives outside the repo; see bench/requirements.txt):

    ~/.cache/recur-venv/bin/python bench/compare.py                 # every case
    ~/.cache/recur-venv/bin/python bench/compare.py --case stream   # cases whose name contains "stream"
    ~/.cache/recur-venv/bin/python bench/compare.py --case int8     # the int8 cases and their f32 forms
    ~/.cache/recur-venv/bin/python bench/compare.py --markdown --json-out /tmp/compare.json
    ~/.cache/recur-venv/bin/python bench/compare.py --onnx model.onnx --batch 1 --steps 100   # one ONNX file

In one run, on one machine, one case at a time and never two engines at once, it times:

* PyTorch: 2 threads, the module in eval mode under `torch.no_grad()` for inference; for training, the module in
  train mode, `mean(output**2).backward()` and one `torch.optim.Adam` step (then `zero_grad`); for streaming, the
  module called on a `(1, 1, I)` input with the state of the previous step. The `mha` cases run
  `nn.MultiheadAttention(E, H, batch_first=True)` as self-attention, `mha(x, x, x, need_weights=False)`.
* The `seq2seq` case: one teacher-forced training step of the `reverse` task's encoder-decoder (recur's
  `recur::seq2seq::Seq2Seq`; here `Seq2Seq` below, written as tools/gen_attention_fixtures.py writes it to match
  recur's numbers: embeddings, a packed GRU encoder, a packed GRU decoder started from the encoder's final state,
  additive attention over the encoder's outputs masked by the source lengths, `combine` with tanh, `output`), the
  mean cross-entropy over the real target tokens (`ignore_index=-100`), backward, one Adam step, `zero_grad`. Both
  engines train on the same shapes: 64 sources, sequence k of `1 + (7k mod 20)` letters (every length from 1 to 20,
  656 letters in all; recur bench's `seq2seq_lengths`), targets one longer (the letters reversed, then EOS), the
  decoder reading BOS and the reversed letters. The letters themselves are drawn separately in each engine (they do
  not change the work).
* ONNX Runtime (the recurrent inference cases only): the same PyTorch modules exported to ONNX (fixed shapes), run on
  the CPU execution provider with 2 intra-op threads; for streaming, a one-step model `(x, h[, c]) -> (y, h[, c])`
  whose state outputs are fed back as the next step's inputs. The attention and encoder-decoder cases are not run
  in ONNX Runtime.
* The quantized cases (names ending in int8 or bf16; `--case int8` or `--case bf16` also selects the f32 form of
  each, whose row then stands beside it): recur's weights stored in int8 or bf16, beside each peer's own quantized
  path on the same layer, threads, input and timing (stream cases feed the states back per step). PyTorch:
  `torch.ao.quantization.quantize_dynamic` with dtype=torch.qint8 for int8 and dtype=torch.float16 for bf16
  (PyTorch has no bf16 dynamic path for LSTM or GRU on the CPU; the table marks those times "(f16)"). ONNX Runtime:
  `onnxruntime.quantization.quantize_dynamic` (QInt8 weights) of the f32 export for int8, used only if no f32
  LSTM/GRU/RNN operator remains (LSTM becomes DynamicQuantizeLSTM; GRU stays f32, so its int8 cells are — with a
  note); no bf16 (ONNX Runtime has no bf16 CPU kernel for these operators). A second table gives each engine's f32
  and quantized file sizes and the max |quantized - f32| of each engine's outputs.
* the machine's f32 GEMM peak: a 2048x2048 by 2048x2048 product (torch and numpy, 2 threads; the faster counts).
* recur: `recur bench --json --threads 2 --seconds S --case NAME`, one process per case.

Timing copies `recur bench` (crates/recur-cli/src/commands/bench.rs): two warm-up runs, then repetitions until at
least `--seconds` have passed and at least 5 were made; the median (the upper one of an even count) is reported. A
stream step is timed in runs of about 1000 stream-steps and reported per step of one stream, in microseconds (a
`B256` case steps 256 streams at once, its states fed back, and divides by 256). GFLOP/s use recur's formula:
per layer and direction, 2 * B * T * gates * H * (I_layer + H) (gates: LSTM 4, GRU 3, RNN 1), and 3x that for a
training step (backward is about twice the forward's products). Self-attention: 2 * B * T * (4 E^2 + 2 T E) (the
packed input projection, the scores, the weighted sum, the output projection). The encoder-decoder: the GRUs'
products over the real (unpadded) steps, and over all B * T_padded target rows the attention (query and key
projections, v's dot with the T x S tanh vectors, the weighted sum), `combine` and `output`; see `seq2seq_flops`.

Peak memory of the training cases (unless `--no-memory`): each engine runs the case in a child process under
/usr/bin/time, and the child's peak resident set (GNU time's %M, the kernel's ru_maxrss) minus that of a baseline
child that only starts up is reported. PyTorch's baseline imports torch and numpy, sets the threads and runs one tiny
op; recur's runs `recur bench --threads 2` with a case filter that matches nothing, so it exits after building its
thread pool. PyTorch's training path first touches well over 100 MiB of code and runtime state, so its child also
runs the same layer at B1 T2 I2 H2 first and reports its peak so far (VmHWM); the peak above that is given too. See
README.md for the limits of this.

The table: case, the three engines' medians (with `--rounds N`, each engine's median over N rounds that alternate
the engines, which damps a shared machine's drift), recur's time divided by the faster peer's (below 1: recur is faster),
and recur's GFLOP/s with its fraction of the GEMM peak.
"""

import os

# Thread counts for every BLAS / OpenMP runtime the peers might load; must be set before numpy or torch load them.
THREADS = 2
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
PAD, BOS, EOS = 0, 1, 2  # the special tokens of recur_tasks' TokenVocab; the letters a-j are 3..12
LETTERS = 10
MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
STREAM_BATCH = 1000  # stream-steps per timed repetition of a stream case, as in recur bench
SERVED_STREAMS = 256  # streams of the batched stream cases, as in recur bench
GEMM_N = 2048
GNU_TIME = "/usr/bin/time"  # measures a child's peak memory (Debian/Ubuntu package `time`)
NO_CASE = "(memory baseline: no case)"  # a --case filter no recur case name contains
QUANTIZED = ("int8", "bf16")  # recur bench's quantized forms, as its case names end


# ---------------------------------------------------------------------------------------------------------------
# The cases: exactly those of `recur bench`, with the same names and shapes.


@dataclass(frozen=True)
class Case:
    """One named benchmark case, as `recur bench` defines it."""

    name: str
    kind: str  # "lstm", "gru" or "rnn" (tanh); "mha"; "seq2seq" (a GRU encoder-decoder with additive attention)
    input_size: int  # mha: E; seq2seq: the embedding size
    hidden: int  # mha: E
    layers: int
    bidirectional: bool
    batch_first: bool
    batch: int
    steps: int  # seq2seq: the longest source
    work: str  # "fwd", "train" or "stream"
    heads: int = 0  # mha only
    vocab: int = 0  # seq2seq only: source and target tokens
    scheme: str = ""  # how recur stores the weights: "" (f32), "int8" or "bf16" (inference cases only)

    @property
    def directions(self):
        return 2 if self.bidirectional else 1


def all_cases():
    """The cases of `recur bench`, in its order."""
    cases = []
    for kind in ("lstm", "gru", "rnn"):
        for bi in (False, True):
            label = f"{kind}-bi" if bi else kind
            for work in ("fwd", "train"):
                name = f"{label} {work} B32 T50 I128 H256 L2"
                cases.append(Case(name, kind, 128, 256, 2, bi, True, 32, 50, work))
    for scheme in QUANTIZED:  # the quantized forms of the whole-sequence LSTM case: inference only
        name = f"lstm fwd B32 T50 I128 H256 L2 {scheme}"
        cases.append(Case(name, "lstm", 128, 256, 2, False, True, 32, 50, "fwd", scheme=scheme))
    for kind in ("lstm", "gru"):
        for i, h, layers in ((32, 64, 1), (64, 128, 2), (128, 256, 2)):
            for scheme in ("", *QUANTIZED):
                name = f"{kind} stream B1 I{i} H{h} L{layers} per-step" + (f" {scheme}" if scheme else "")
                cases.append(Case(name, kind, i, h, layers, False, False, 1, 1, "stream", scheme=scheme))
        for i, h, layers in ((32, 64, 1), (128, 256, 2)):  # many streams stepped together, timed per stream-step
            name = f"{kind} stream B{SERVED_STREAMS} I{i} H{h} L{layers} per-stream-step"
            cases.append(Case(name, kind, i, h, layers, False, False, SERVED_STREAMS, 1, "stream"))
    cases.append(Case("lstm fwd B64 T200 I256 H512 L1", "lstm", 256, 512, 1, False, True, 64, 200, "fwd"))
    for work in ("fwd", "train"):
        cases.append(Case(f"mha {work} B32 T50 E256 H8", "mha", 256, 256, 1, False, True, 32, 50, work, heads=8))
    vocab = 3 + LETTERS
    cases.append(Case("seq2seq train B64 S20 H128 additive", "seq2seq", 64, 128, 1, False, True, 64, 20, "train",
                      vocab=vocab))
    return cases


def selected_cases(text):
    """The cases whose name contains `text`, and the f32 form of each quantized one among them (its row then stands
    beside theirs), in recur bench's order."""
    cases = all_cases()
    names = {c.name for c in cases if text in c.name}
    names |= {c.name.removesuffix(f" {c.scheme}") for c in cases if c.scheme and c.name in names}
    return [c for c in cases if c.name in names]


def runs_in_onnx(case):
    """Whether ONNX Runtime runs the case: the recurrent layers' inference only, in f32 or int8 (it has no bf16 CPU
    kernel for its LSTM, GRU or RNN operators)."""
    return case.kind in GATES and case.work != "train" and case.scheme != "bf16"


def forward_flops(case):
    """Multiply-adds x2 of one forward pass: the input and recurrent products of every layer and direction."""
    if case.kind == "mha":
        e, t = case.input_size, case.steps
        return 2.0 * case.batch * t * (4.0 * e * e + 2.0 * t * e)
    if case.kind == "seq2seq":
        return seq2seq_flops(case)
    rows = case.batch * case.steps
    total = 0.0
    for layer in range(case.layers):
        layer_input = case.input_size if layer == 0 else case.directions * case.hidden
        total += case.directions * 2.0 * rows * GATES[case.kind] * case.hidden * (layer_input + case.hidden)
    return total


def seq2seq_lengths(case):
    """recur bench's source lengths: sequence k has 1 + (7k mod S) letters."""
    return [1 + (7 * k) % case.steps for k in range(case.batch)]


def seq2seq_flops(case):
    """recur bench's count for the GRU encoder-decoder with additive attention (A = H units): the GRUs over the
    real steps, the attention, `combine` and `output` over every padded target row."""
    e, h, v, b = case.input_size, case.hidden, case.vocab, case.batch
    lengths = seq2seq_lengths(case)
    s, t = max(lengths), max(lengths) + 1
    gru = 2.0 * 3 * h * (e + h)
    flops = gru * sum(lengths) + gru * sum(n + 1 for n in lengths) + 2.0 * b * t * h * v
    return flops + 2.0 * b * (t + s) * h * h + 2.0 * b * t * s * h + 2.0 * b * t * s * h + 2.0 * b * t * 2 * h * h


def case_flops(case):
    """FLOPs of one timed unit (a forward, a training step, or one step of one stream), as recur bench counts
    them."""
    if case.work == "stream":
        return forward_flops(case) / case.batch
    return 3.0 * forward_flops(case) if case.work == "train" else forward_flops(case)


def case_input(case):
    """recur bench's input: x[k] = sin(0.37 k) over the flattened (B, T, I), or (B, I) for one step of B streams
    (time-major (1, B, I) here)."""
    if case.work == "stream":
        shape = (1, case.batch, case.input_size)
    else:
        shape = (case.batch, case.steps, case.input_size)
    values = np.sin(np.arange(math.prod(shape), dtype=np.float32) * np.float32(0.37))
    return values.reshape(shape).astype(np.float32)


def make_module(case):
    """The PyTorch layer of a case, PyTorch's default initialisation from seed 0."""
    torch.manual_seed(0)
    if case.kind == "mha":
        return torch.nn.MultiheadAttention(case.input_size, case.heads, batch_first=True)
    if case.kind == "seq2seq":
        return Seq2Seq(case.vocab, case.vocab, case.input_size, case.hidden)
    return MODULES[case.kind](
        case.input_size,
        case.hidden,
        num_layers=case.layers,
        batch_first=case.batch_first,
        bidirectional=case.bidirectional,
    )


class Additive(torch.nn.Module):
    """Bahdanau's score, e_ij = v^T tanh(W_q q_i + W_k k_j), as recur's `Score::Additive`."""

    def __init__(self, dq, dk, a):
        super().__init__()
        self.query_proj = torch.nn.Linear(dq, a, bias=False)
        self.key_proj = torch.nn.Linear(dk, a, bias=False)
        self.energy = torch.nn.Linear(a, 1, bias=False)

    def scores(self, q, k):
        hidden = torch.tanh(self.query_proj(q)[:, :, None, :] + self.key_proj(k)[:, None, :, :])
        return self.energy(hidden).squeeze(-1)


class Seq2Seq(torch.nn.Module):
    """recur's `Seq2Seq` with a one-layer unidirectional GRU encoder and decoder and additive attention, as
    tools/gen_attention_fixtures.py writes it (there checked against recur's numbers)."""

    def __init__(self, src_vocab, tgt_vocab, emb, hidden):
        super().__init__()
        self.source_embedding = torch.nn.Embedding(src_vocab, emb)
        self.target_embedding = torch.nn.Embedding(tgt_vocab, emb)
        self.encoder = torch.nn.GRU(emb, hidden, 1, batch_first=True)
        self.decoder = torch.nn.GRU(emb, hidden, 1, batch_first=True)
        self.attention = Additive(hidden, hidden, hidden)
        self.combine = torch.nn.Linear(2 * hidden, hidden)
        self.output = torch.nn.Linear(hidden, tgt_vocab)

    def forward(self, src, src_len, dec_in, tgt_len):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        packed = pack_padded_sequence(self.source_embedding(src), src_len, batch_first=True, enforce_sorted=False)
        enc, state = self.encoder(packed)
        enc, _ = pad_packed_sequence(enc, batch_first=True, total_length=src.shape[1])
        packed = pack_padded_sequence(self.target_embedding(dec_in), tgt_len, batch_first=True, enforce_sorted=False)
        dec, _ = self.decoder(packed, state)  # one layer, one direction: the bridge is the identity
        dec, _ = pad_packed_sequence(dec, batch_first=True, total_length=dec_in.shape[1])
        e = self.attention.scores(dec, enc)
        pad = torch.arange(src.shape[1])[None, None, :] >= src_len[:, None, None]
        w = torch.softmax(e.masked_fill(pad, float("-inf")), dim=-1)
        h = torch.tanh(self.combine(torch.cat([w @ enc, dec], dim=-1)))
        return self.output(h)


def reverse_batch(case):
    """A batch of the reverse task with recur bench's source lengths and letters drawn from numpy's seed 0:
    (source, source_lengths, decoder_input, target_lengths, targets) as torch tensors, padded batch-first."""
    lengths = seq2seq_lengths(case)
    s, t = max(lengths), max(lengths) + 1
    rng = np.random.default_rng(0)
    source = np.full((case.batch, s), PAD, dtype=np.int64)
    decoder_input = np.full((case.batch, t), PAD, dtype=np.int64)
    targets = np.full((case.batch, t), -100, dtype=np.int64)
    for b, n in enumerate(lengths):
        letters = 3 + rng.integers(0, min(LETTERS, case.vocab - 3), n)
        source[b, :n] = letters
        decoder_input[b, 0] = BOS
        decoder_input[b, 1 : n + 1] = letters[::-1]
        targets[b, :n] = letters[::-1]
        targets[b, n] = EOS
    as_tensor = torch.from_numpy
    return (
        as_tensor(source),
        torch.tensor(lengths),
        as_tensor(decoder_input),
        torch.tensor([n + 1 for n in lengths]),
        as_tensor(targets),
    )


def zero_state(case):
    """The zero initial state of a stream case: (h,) or (h, c), each (L, B, H)."""
    shape = (case.layers, case.batch, case.hidden)
    count = 2 if case.kind == "lstm" else 1
    return tuple(np.zeros(shape, dtype=np.float32) for _ in range(count))


# ---------------------------------------------------------------------------------------------------------------
# Timing.


def median_time(run, budget):
    """Seconds of `run()`, as recur bench measures: 2 warm-ups, then >= 5 runs and >= `budget` s; the median."""
    run()
    run()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def time_case(case, step, budget):
    """Seconds per timed unit: `step()` once, or per step of one stream for a stream case (timed in runs of about
    STREAM_BATCH stream-steps, as recur bench does)."""
    if case.work != "stream":
        return median_time(step, budget)
    steps = -(-STREAM_BATCH // case.batch)

    def run():
        for _ in range(steps):
            step()

    return median_time(run, budget) / (steps * case.batch)


# ---------------------------------------------------------------------------------------------------------------
# PyTorch.


def torch_step(case):
    """A closure doing one timed unit of `case` in PyTorch."""
    module = make_module(case)
    if case.kind == "seq2seq":
        return seq2seq_step(case, module)
    x = torch.from_numpy(case_input(case))
    if case.kind == "mha":
        return mha_step(case, module, x)
    if case.scheme:
        module = torch_quantized(module.eval(), case.scheme)
    if case.work == "fwd":
        module.eval()

        def forward():
            with torch.no_grad():
                module(x)

        return forward
    if case.work == "train":
        module.train()
        adam = torch.optim.Adam(module.parameters(), lr=1e-3)

        def train():
            output, _ = module(x)
            output.pow(2).mean().backward()
            adam.step()
            adam.zero_grad()

        return train
    module.eval()
    hidden = tuple(torch.from_numpy(s) for s in zero_state(case))
    state = [hidden if case.kind == "lstm" else hidden[0]]  # nn.LSTM takes (h, c), nn.GRU h

    def stream_step():
        with torch.no_grad():
            _, state[0] = module(x, state[0])

    return stream_step


def mha_step(case, mha, x):
    """One timed unit of an attention case: inference, or a training step on mean(output**2)."""
    if case.work == "fwd":
        mha.eval()

        def forward():
            with torch.no_grad():
                mha(x, x, x, need_weights=False)

        return forward
    mha.train()
    adam = torch.optim.Adam(mha.parameters(), lr=1e-3)

    def train():
        output, _ = mha(x, x, x, need_weights=False)
        output.pow(2).mean().backward()
        adam.step()
        adam.zero_grad()

    return train


def seq2seq_step(case, model):
    """One teacher-forced training step of the encoder-decoder on the case's fixed batch."""
    source, source_lengths, decoder_input, target_lengths, targets = reverse_batch(case)
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train():
        logits = model(source, source_lengths, decoder_input, target_lengths)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, case.vocab), targets.reshape(-1))
        loss.backward()
        adam.step()
        adam.zero_grad()

    return train


def time_torch(case, budget):
    """Median seconds of one unit of `case` in PyTorch."""
    return time_case(case, torch_step(case), budget)


# PyTorch's dynamic quantization of the quantized cases: int8 weights for int8; for bf16, float16 weights, since
# PyTorch has no bf16 dynamic path for its LSTM and GRU on the CPU.
TORCH_DTYPES = {"int8": torch.qint8, "bf16": torch.float16}


def torch_quantized(layer, scheme):
    """A copy of an LSTM or GRU layer under `torch.ao.quantization.quantize_dynamic`: int8 weights (one scale per
    tensor) with activations quantized per tensor on the fly, or float16 weights (see TORCH_DTYPES)."""
    holder = torch.nn.Module()
    holder.layer = layer  # quantize_dynamic replaces a model's submodules, never the model itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(
            holder, {torch.nn.LSTM, torch.nn.GRU}, dtype=TORCH_DTYPES[scheme]
        ).layer
    if type(quantized) is type(layer):
        raise RuntimeError(f"quantize_dynamic left {type(layer).__name__} unquantized")
    return quantized


def output_tensors(output):
    """A layer's output and final state(s) as one list: [y, h] or [y, h, c]."""
    y, state = output
    return [y, *(state if isinstance(state, tuple) else (state,))]


def max_abs_diff(want, got):
    """Largest absolute difference over pairs of arrays."""
    return max(float(np.abs(np.asarray(g, np.float32) - np.asarray(w, np.float32)).max()) for w, g in zip(want, got))


def torch_quantized_facts(case, workdir):
    """PyTorch's quantized layer against its f32 layer: the largest |quantized - f32| of the output and final
    states on the case's timing input (from a zero state), and the sizes of both state_dicts saved by torch.save."""
    layer = make_module(case).eval()
    quantized = torch_quantized(layer, case.scheme)
    x = torch.from_numpy(case_input(case))
    with torch.no_grad():
        want, got = output_tensors(layer(x)), output_tensors(quantized(x))
    sizes = []
    for name, module in (("f32", layer), ("quantized", quantized)):
        path = Path(workdir) / f"torch-{name}.pt"
        torch.save(module.state_dict(), path)
        sizes.append(path.stat().st_size)
    return {
        "torch_quantized_max_abs_diff": max_abs_diff([t.numpy() for t in want], [t.numpy() for t in got]),
        "torch_f32_bytes": sizes[0],
        "torch_quantized_bytes": sizes[1],
    }


# ---------------------------------------------------------------------------------------------------------------
# ONNX Runtime.


class WholeSequence(torch.nn.Module):
    """Exports a layer's whole-sequence forward: x -> (output, h_n[, c_n]) from a zero state."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        output, state = self.layer(x)
        return (output, *state) if isinstance(state, tuple) else (output, state)


class OneStep(torch.nn.Module):
    """Exports one stream step: (x, h[, c]) -> (y, h[, c])."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, *state):
        if len(state) == 2:
            y, (h, c) = self.layer(x, (state[0], state[1]))
            return y, h, c
        y, h = self.layer(x, state[0])
        return y, h


def onnx_names(case):
    """Input and output names of a case's exported model."""
    states = ["h", "c"] if case.kind == "lstm" else ["h"]
    if case.work == "stream":
        return ["x", *states], ["y", *(s + "_out" for s in states)]
    return ["x"], ["y", *(s + "_n" for s in states)]


def export_onnx(case, path, exporter):
    """Exports the case's PyTorch layer (eval mode, fixed shapes) to `path`; returns the wrapped module."""
    layer = make_module(case).eval()
    wrapper = OneStep(layer) if case.work == "stream" else WholeSequence(layer)
    args = [torch.from_numpy(case_input(case))]
    if case.work == "stream":
        args += [torch.from_numpy(s) for s in zero_state(case)]
    inputs, outputs = onnx_names(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(args),
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamo=(exporter == "dynamo"),
            verbose=False,
        )
    return wrapper


def ort_session(path):
    """An ONNX Runtime session on the CPU provider with 2 intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_export(case, session, wrapper):
    """Largest absolute difference between ONNX Runtime's and PyTorch's outputs on the case's input."""
    inputs, _ = onnx_names(case)
    arrays = [case_input(case)] + (list(zero_state(case)) if case.work == "stream" else [])
    got = session.run(None, dict(zip(inputs, arrays)))
    with torch.no_grad():
        want = wrapper(*(torch.from_numpy(a) for a in arrays))
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))


def ort_step(case, session):
    """A closure doing one timed unit of `case` in ONNX Runtime."""
    x = case_input(case)
    if case.work == "fwd":
        return lambda: session.run(None, {"x": x})
    names, _ = onnx_names(case)
    feed = dict(zip(names, (x, *zero_state(case))))
    state_names = names[1:]

    def stream_step():
        outputs = session.run(None, feed)
        for name, value in zip(state_names, outputs[1:]):
            feed[name] = value

    return stream_step


def time_onnx(case, budget, workdir, exporter):
    """(median seconds, facts) of one unit of an inference case in ONNX Runtime. The facts of an f32 case: the
    max |ORT - PyTorch| of the export; of an int8 case, see quantize_onnx."""
    path = Path(workdir) / (case.name.replace(" ", "_") + ".onnx")
    wrapper = export_onnx(case, path, exporter)
    if case.scheme:
        path, facts = quantize_onnx(case, path)
        session = ort_session(path)
    else:
        session = ort_session(path)
        facts = {"onnx_max_abs_diff": check_export(case, session, wrapper)}
    seconds = time_case(case, ort_step(case, session), budget)
    del session  # its threads must not spin while the next engine runs
    return seconds, facts


class Unquantized(Exception):
    """ONNX Runtime's quantizer left the recurrent operators in f32: timing the file would time f32."""


RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def quantize_onnx(case, path):
    """ONNX Runtime's dynamic int8 quantization (`quantize_dynamic`, QInt8 weights) of the exported f32 model at
    `path`. Returns the quantized file's path and its facts: the operator types, both files' sizes, and the largest
    |quantized - f32| of ONNX Runtime's outputs on the case's timing input. Raises Unquantized if an f32 recurrent
    operator remains (ONNX Runtime quantizes LSTM into DynamicQuantizeLSTM, but has no quantized GRU or RNN)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_suffix(".int8.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # its advice to run pre-processing first (for convolutions)
    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    ops = sorted({node.op_type for node in onnx.load(str(quantized)).graph.node})
    left = [op for op in ops if op in RECURRENT_OPS]
    if left:
        raise Unquantized(f"quantize_dynamic left {', '.join(left)} in f32 (no quantized {left[0]} operator)")
    inputs, _ = onnx_names(case)
    feed = dict(zip(inputs, [case_input(case)] + (list(zero_state(case)) if case.work == "stream" else [])))
    want = ort_session(path).run(None, feed)
    got = ort_session(quantized).run(None, feed)
    return quantized, {
        "onnx_ops": ops,
        "onnx_quantized_max_abs_diff": max_abs_diff(want, got),
        "onnx_f32_bytes": path.stat().st_size,
        "onnx_quantized_bytes": quantized.stat().st_size,
    }


# ---------------------------------------------------------------------------------------------------------------
# recur.


def build_recur():
    """Builds the release `recur` binary and returns its path."""
    subprocess.run(["cargo", "build", "--release", "-p", "recur-cli"], cwd=REPO, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / "recur"


def recur_command(recur, case_filter, seconds):
    """The `recur bench` command line for one case filter."""
    return [str(recur), "bench", "--json", "--threads", str(THREADS), "--seconds", str(seconds), "--case", case_filter]


def time_recur(recur, case, seconds):
    """recur bench's (median seconds, GFLOP/s) for exactly this case."""
    out = subprocess.run(recur_command(recur, case.name, seconds), check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        row = json.loads(line)
        if row["case"] == case.name:
            value = row["us"] * 1e-6 if "us" in row else row["ms"] * 1e-3
            return value, row.get("gflops")
    raise RuntimeError(f"recur bench printed no line for {case.name!r}: {out.stdout!r}")


def write_safetensors(tensors, path):
    """Writes named f32 tensors as a safetensors file (an 8-byte header length, a JSON header, the raw data)."""
    header, data, offset = {}, [], 0
    for name, tensor in tensors.items():
        raw = tensor.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(data))


def read_safetensors(path):
    """The f32 tensors of a safetensors file, as numpy arrays by name."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    data = raw[8 + size :]
    return {
        name: np.frombuffer(data[t["data_offsets"][0] : t["data_offsets"][1]], dtype="<f4").reshape(t["shape"])
        for name, t in header.items()
        if name != "__metadata__"
    }


def recur_quantized_facts(recur, case, workdir):
    """recur's quantized file against its f32 file: the case's PyTorch layer saved as a layer file and `recur quantize
    --to SCHEME` of it; both sizes, and the largest |quantized - f32| of `recur forward`'s output and final states
    on the case's timing input from a zero state (sequence-first, as the files' configuration says; a stream case
    as a stream)."""
    work = Path(workdir)
    f32, quantized = work / "recur-f32.safetensors", work / f"recur-{case.scheme}.safetensors"
    write_safetensors(make_module(case).state_dict(), f32)
    command = [str(recur), "quantize", str(f32), "--output", str(quantized), "--to", case.scheme]
    subprocess.run(command, check=True, capture_output=True, text=True)
    x = work / "recur-input.npy"
    np.save(x, np.ascontiguousarray(case_input(case).transpose(1, 0, 2)))  # (B, T, I) -> (T, B, I)
    outputs = []
    for model in (f32, quantized):
        out = work / "recur-output.safetensors"
        command = [str(recur), "forward", "--model", str(model), "--input", str(x), "--output", str(out)]
        subprocess.run(command + (["--stream"] if case.work == "stream" else []), check=True, capture_output=True)
        tensors = read_safetensors(out)
        outputs.append([tensors[name] for name in sorted(tensors)])
    return {
        "recur_f32_bytes": f32.stat().st_size,
        "recur_quantized_bytes": quantized.stat().st_size,
        "recur_quantized_max_abs_diff": max_abs_diff(*outputs),
    }


def recur_version(recur):
    """The commit recur was built from (with '-dirty' if the worktree has changes)."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
        return rev.stdout.strip() or "unknown"
    except OSError:
        return f"unknown ({recur})"


# ---------------------------------------------------------------------------------------------------------------
# The GEMM peak.


def gemm_peak(budget):
    """GFLOP/s of a 2048^3 f32 product, with torch and with numpy (2 threads each)."""
    flops = 2.0 * GEMM_N**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    c = np.empty_like(a)
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.empty(GEMM_N, GEMM_N)
    return {
        "torch": flops / median_time(lambda: torch.mm(ta, tb, out=tc), budget) / 1e9,
        "numpy": flops / median_time(lambda: np.matmul(a, b, out=c), budget) / 1e9,
    }


# ---------------------------------------------------------------------------------------------------------------
# Peak memory, in child processes.


def child_max_rss(command):
    """Peak resident set of a command in MiB, its exit code and its output, the peak as GNU time reports it (%M).

    Not os.wait4 on a direct child: Linux keeps the high-water mark of the memory a process had before exec, and a
    child forked from this process (which holds torch) starts with this process's memory.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        timed = [GNU_TIME, "-f", "%M", "-o", report.name, *map(str, command)]
        done = subprocess.run(timed, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return int(report.read().split()[-1]) / 1024.0, done.returncode, done.stdout


def high_water_mib():
    """This process's peak resident set so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def tiny(case):
    """The case's layer (kind, layers, directions) at sizes too small to matter: B1 T2 I2 H2 (attention: one
    head)."""
    return replace(case, name=case.name + " (tiny)", input_size=2, hidden=2, batch=1, steps=2, heads=min(case.heads, 1))


def torch_child(case_name, seconds):
    """Child-process body: start up; given a case name, run a tiny version of its training, print the peak resident
    set so far (the start-up plus the code and runtime state the training path touches, in MiB), then run the case
    for `seconds`."""
    torch.set_num_threads(THREADS)
    torch.ones(4).sum()
    if case_name:
        case = next(c for c in all_cases() if c.name == case_name)
        median_time(torch_step(tiny(case)), 0.0)
        print(json.dumps({"warm_mib": high_water_mib()}), flush=True)
        median_time(torch_step(case), seconds)


def memory(case, recur, seconds, baselines):
    """Peak resident memory of the case in PyTorch and in recur (child processes), in MiB: above start-up and, for
    PyTorch, also above a tiny run of the same training path in the same process."""
    me = [sys.executable, str(Path(__file__).resolve())]
    torch_rss, torch_rc, torch_out = child_max_rss(me + ["--child", case.name, "--seconds", str(seconds)])
    recur_rss, recur_rc, _ = child_max_rss(recur_command(recur, case.name, seconds))
    if torch_rc != 0 or recur_rc != 0:
        raise RuntimeError(f"memory children of {case.name!r} exited with {torch_rc}, {recur_rc}")
    warm = json.loads(torch_out.splitlines()[0])["warm_mib"]
    return {
        "torch_mib": torch_rss - baselines["torch"],
        "torch_above_warm_mib": torch_rss - warm,
        "recur_mib": recur_rss - baselines["recur"],
        "torch_total_mib": torch_rss,
        "torch_warm_mib": warm,
        "recur_total_mib": recur_rss,
    }


def memory_baselines(recur):
    """Peak resident set, in MiB, of PyTorch's and recur's start-up alone."""
    torch_rss, _, _ = child_max_rss([sys.executable, str(Path(__file__).resolve()), "--child", ""])
    recur_rss, recur_rc, _ = child_max_rss(recur_command(recur, NO_CASE, 0.1))
    if recur_rc == 0:
        raise RuntimeError("the recur baseline was expected to match no case and exit with an error")
    return {"torch": torch_rss, "recur": recur_rss}


# ---------------------------------------------------------------------------------------------------------------
# The machine.


def cpu_model():
    """The CPU's model name, from lscpu (or /proc/cpuinfo)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(recur):
    """Date, CPU and versions, for the table's header."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # only the cases ONNX Runtime runs need it; they report its absence
        ort_version = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "numpy": np.__version__,
        "recur": recur_version(recur),
    }


# ---------------------------------------------------------------------------------------------------------------
# The run and the table.


def pause():
    """Lets the previous engine's worker threads go idle before the next one starts."""
    time.sleep(0.2)


def measure_case(case, args, recur, workdir):
    """Times one case in every engine, one after the other, `--rounds` times over; returns its result row with
    each engine's median over the rounds (and every round's time, under `rounds`)."""
    row = {"case": case.name, "unit": "us" if case.work == "stream" else "ms", "flops": case_flops(case)}
    rounds = {"torch": [], "onnx": [], "recur": []}
    if case.scheme:
        row["scheme"] = case.scheme
        row.update(torch_quantized_facts(case, workdir))
        row.update(recur_quantized_facts(recur, case, workdir))
        if not runs_in_onnx(case):
            row["onnx_note"] = "no bf16 CPU kernel for its LSTM, GRU or RNN operators"
    for _ in range(args.rounds):
        rounds["torch"].append(time_torch(case, args.seconds))
        pause()
        if runs_in_onnx(case) and "onnx_error" not in row and "onnx_note" not in row:
            try:
                seconds, facts = time_onnx(case, args.seconds, workdir, args.exporter)
                row.update(facts)
                rounds["onnx"].append(seconds)
            except Unquantized as note:  # reported beside the table, not timed
                row["onnx_note"] = str(note)
            except Exception as error:  # an export or runtime failure is reported, not fatal
                row["onnx_error"] = f"{type(error).__name__}: {error}"
            pause()
        seconds, rate = time_recur(recur, case, args.seconds)
        check_flops(case.name, row["flops"], rate * 1e9 * seconds)
        rounds["recur"].append(seconds)
    for engine, times in rounds.items():
        if times:
            row[f"{engine}_s"] = statistics.median(times)
            row[f"{engine}_gflops"] = row["flops"] / row[f"{engine}_s"] / 1e9
    row["rounds"] = {engine: times for engine, times in rounds.items() if times}
    if case.scheme:
        diffs = (row.get(f"{e}_quantized_max_abs_diff") for e in ("recur", "torch", "onnx"))
        print("  max |quantized - f32|: recur %s, PyTorch %s, ONNX Runtime %s" % tuple(map(format_diff, diffs)),
              file=sys.stderr, flush=True)
    return row


def check_flops(name, flops, implied):
    """Warns if recur's GFLOP/s imply another FLOP count than this script's formula (beyond its rounding)."""
    if abs(implied / flops - 1) > 0.02:
        print(f"warning: recur counts {implied:.4g} FLOPs for {name}, this script {flops:.4g}", file=sys.stderr)


def fastest_peer(row):
    """The faster of PyTorch's and ONNX Runtime's times."""
    return min(t for t in (row.get("torch_s"), row.get("onnx_s")) if t is not None)


def format_time(seconds, unit):
    """A time in the case's unit (ms or µs), three significant figures."""
    if seconds is None:
        return "—"
    value = seconds * (1e6 if unit == "us" else 1e3)
    text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"{text} {'µs' if unit == 'us' else 'ms'}"


def format_ratio(ratio):
    """recur's time over the faster peer's: two decimals, or one significant figure below 0.01."""
    return f"{ratio:.2f}" if ratio >= 0.01 else f"{ratio:.1g}"


def format_diff(value):
    """A max |Δ| in two significant figures, or — when not measured."""
    return "—" if value is None else f"{value:.1e}"


def format_bytes(size):
    """A file size in KiB, three significant figures."""
    kib = size / 1024
    return f"{kib:.3g} KiB" if kib < 1000 else f"{kib:.0f} KiB"


def table_rows(results, peak):
    """The table's header and cells, as strings. A bf16 row's PyTorch time is marked (f16): its float16 dynamic
    quantization stands in."""
    header = ["case", "PyTorch", "ONNX Runtime", "recur", "recur ÷ fastest", "recur GFLOP/s (of peak)"]
    rows = []
    for r in results:
        unit = r["unit"]
        gflops = r["recur_gflops"]
        rows.append(
            [
                r["case"],
                format_time(r["torch_s"], unit) + (" (f16)" if r.get("scheme") == "bf16" else ""),
                format_time(r.get("onnx_s"), unit),
                format_time(r["recur_s"], unit),
                format_ratio(r["recur_s"] / fastest_peer(r)),
                f"{gflops:.1f} ({100 * gflops / peak:.0f}%)",
            ]
        )
    return header, rows


def memory_rows(results):
    """The memory table's header and cells."""
    header = ["case", "PyTorch above start-up", "PyTorch above a tiny run", "recur above start-up"]
    rows = [
        [r["case"], *(f"{r['memory'][k]:.0f} MiB" for k in ("torch_mib", "torch_above_warm_mib", "recur_mib"))]
        for r in results
        if "memory" in r
    ]
    return header, rows


def quantized_rows(results):
    """The quantized cases' table: each engine's f32 and quantized file sizes (recur: safetensors; PyTorch: the
    state_dict saved by torch.save; ONNX Runtime: the .onnx file) and each engine's max |quantized - f32|."""
    header = [
        "case",
        "recur file f32 → quantized",
        "PyTorch state_dict f32 → quantized",
        "ONNX Runtime .onnx f32 → quantized",
        "max abs Δ recur",
        "max abs Δ PyTorch",
        "max abs Δ ONNX Runtime",
    ]

    def sizes(r, engine):
        f32, quantized = r.get(f"{engine}_f32_bytes"), r.get(f"{engine}_quantized_bytes")
        if f32 is None or quantized is None:
            return "—"
        return f"{format_bytes(f32)} → {format_bytes(quantized)} ({100 * quantized / f32:.0f}%)"

    rows = [
        [
            r["case"],
            *(sizes(r, engine) for engine in ("recur", "torch", "onnx")),
            *(format_diff(r.get(f"{engine}_quantized_max_abs_diff")) for engine in ("recur", "torch", "onnx")),
        ]
        for r in results
        if "scheme" in r
    ]
    return header, rows


QUANTIZED_NOTE = """\
Quantized rows: recur's weight matrices stored in int8 (symmetric, one scale per output row; activations quantized
per row on the fly) or bf16. PyTorch: `torch.ao.quantization.quantize_dynamic` of the same layer, dtype=torch.qint8
for int8 (symmetric, one scale per tensor; activations quantized per tensor on the fly) and dtype=torch.float16 for
bf16, marked (f16): PyTorch has no bf16 dynamic path for LSTM or GRU on the CPU. ONNX Runtime (int8 only):
`onnxruntime.quantization.quantize_dynamic(weight_type=QuantType.QInt8)` of the f32 export (LSTM becomes
DynamicQuantizeLSTM); it has no quantized GRU, and no bf16 CPU kernel for LSTM or GRU, so those cells are —. File
sizes: recur's layer safetensors before and after `recur quantize`; PyTorch's state_dict saved by torch.save (its
float16 layer's file is as large as the f32 one); ONNX Runtime's .onnx before and after its quantize_dynamic. Max abs
Δ: the largest |quantized - f32| of each engine's output and final states against its own f32 model's, on the timed
input from a zero state (recur: `recur forward` of both files)."""


def render(header, rows, markdown):
    """A table as Markdown or as aligned plain text."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):  # the first column left-aligned, the numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def rounds_note(rounds):
    """How many alternating rounds each median is over, when more than one."""
    return f" over {rounds} alternating rounds" if rounds > 1 else ""


def report(summary, markdown):
    """Prints the header line, the speed table, the memory table and any ONNX failure."""
    env, peak = summary["environment"], summary["gemm_peak_gflops"]
    print(
        f"{env['date']}, {env['cpu']}, {env['threads']} threads; PyTorch {env['torch']}, ONNX Runtime "
        f"{env['onnxruntime']}, recur {env['recur']}; f32 GEMM peak (2048³) {max(peak.values()):.1f} GFLOP/s; "
        f"medians{rounds_note(summary.get('rounds', 1))}.\n"
    )
    print(render(*table_rows(summary["results"], max(peak.values())), markdown), flush=True)
    header, rows = memory_rows(summary["results"])
    if rows:
        print()
        print(render(header, rows, markdown))
    header, rows = quantized_rows(summary["results"])
    if rows:
        print()
        print(render(header, rows, markdown))
        print()
        print(QUANTIZED_NOTE)
        for r in summary["results"]:
            if "onnx_note" in r:
                print(f"* ONNX Runtime, {r['case']}: {r['onnx_note']}.")
    for r in summary["results"]:
        if "onnx_error" in r:
            print(f"\nONNX Runtime failed on {r['case']}: {r['onnx_error']}", file=sys.stderr)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recur", type=Path, help="the recur binary (default: build it with cargo)")
    parser.add_argument("--case", default="", help="only the cases whose name contains this")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of timing per case and engine")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time each case this many times in every engine, alternating, and report each engine's median (a "
        "shared machine's speed drifts from minute to minute: 3 rounds damp it)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json-out", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs of the training cases")
    parser.add_argument(
        "--exporter",
        choices=["torchscript", "dynamo"],
        default="torchscript",
        help="torch.onnx.export's exporter (default torchscript: it maps all three layers to ONNX's fused "
        "RNN/LSTM/GRU operators; dynamo unrolls nn.RNN into per-step operators)",
    )
    parser.add_argument(
        "--onnx",
        type=Path,
        help="instead of the cases: time this ONNX file in ONNX Runtime and in recur (imported), whole sequence and "
        "per streaming step (see bench/onnx_file.py)",
    )
    parser.add_argument("--batch", type=int, default=1, help="with --onnx: sequences in the batch")
    parser.add_argument("--steps", type=int, default=100, help="with --onnx: steps of the whole-sequence run")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: a memory-measurement child process
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and math.isfinite(args.seconds)):
        parser.error(f"--seconds must be a positive number, found {args.seconds}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child is not None:
        return torch_child(args.child, args.seconds)
    if args.onnx is not None:
        import onnx_file

        recur = args.recur or build_recur()
        onnx_file.compare(args.onnx, recur, args.batch, args.steps, args.seconds, median_time, ort_session, cpu_model())
        return
    torch.set_num_threads(THREADS)
    cases = selected_cases(args.case)
    if not cases:
        sys.exit(f"no case name contains {args.case!r}")
    if not args.no_memory and any(c.work == "train" for c in cases) and not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory; install it or pass --no-memory")
    recur = args.recur or build_recur()
    summary = {
        "environment": environment(recur),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "exporter": args.exporter,
    }
    summary["gemm_peak_gflops"] = gemm_peak(args.seconds)
    results = []
    with tempfile.TemporaryDirectory(prefix="recur-compare-") as workdir:
        for case in cases:
            print(f"… {case.name}", file=sys.stderr, flush=True)
            results.append(measure_case(case, args, recur, workdir))
    train = [r for r, c in zip(results, cases) if c.work == "train"]
    if train and not args.no_memory:
        baselines = memory_baselines(recur)
        summary["memory_baselines_mib"] = baselines
        for row, case in ((r, c) for r, c in zip(results, cases) if c.work == "train"):
            print(f"… memory: {case.name}", file=sys.stderr, flush=True)
            row["memory"] = memory(case, recur, args.seconds, baselines)
    summary["results"] = results
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
    report(summary, args.markdown)


if __name__ == "__main__":
    main()
