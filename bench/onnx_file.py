"""`bench/compare.py --onnx FILE`: one ONNX file timed in ONNX Runtime and in recur, side by side.

recur imports the file (`recur bench --onnx FILE --json`), describes which graph inputs are the sequence and the
states, and times the whole sequence and one streaming step. ONNX Runtime runs the same file on the same inputs
(x[k] = sin(0.37 k) over the flattened shape, or token ids k*7 mod vocab); its streaming step is the file run on
one step with the state outputs fed back as the next step's initial states, which needs the graph to have state
inputs and outputs (`h0`/`h_n`, and `c0`/`c_n` for an LSTM). recur's step is `StreamState::step` on the imported
stack; a bidirectional model has none.
"""

import json
import subprocess

import numpy as np


def recur_bench(recur, path, batch, steps, seconds):
    """recur's description of the file, and its times by case name."""
    command = [str(recur), "bench", "--onnx", str(path), "--batch", str(batch), "--steps", str(steps)]
    command += ["--seconds", str(seconds), "--threads", "2", "--json"]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"recur bench --onnx failed: {out.stderr.strip()}")
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return lines[0], {line["case"]: line for line in lines[1:]}


def graph_input_types(session):
    """numpy dtypes of the graph's inputs, by name."""
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
    return {i.name: types.get(i.type, np.float32) for i in session.get_inputs()}


def inputs_for(describe, types, batch, steps):
    """Feeds for one run over `steps` steps, with zero states when the graph takes them."""
    shape = (batch, steps) if describe["batch_first"] else (steps, batch)
    name = describe["input"]
    if describe["vocab"]:
        ids = (np.arange(batch * steps) * 7 % describe["vocab"]).reshape(shape)
        feeds = {name: ids.astype(types[name])}
    else:
        n = batch * steps * describe["input_size"]
        feeds = {name: np.sin(0.37 * np.arange(n, dtype=np.float32)).reshape(*shape, describe["input_size"])}
    state = (describe["states"], batch, describe["hidden_size"])
    for key in ("initial_h", "initial_c"):
        if describe[key]:
            feeds[describe[key]] = np.zeros(state, dtype=np.float32)
    if describe["sequence_lens"]:
        lens = describe["sequence_lens"]
        feeds[lens] = np.full(batch, steps, dtype=types[lens])
    return feeds


def ort_times(session, describe, batch, steps, seconds, median_time):
    """ONNX Runtime's whole-sequence time (s) and per-step time (s, or None without state inputs and outputs)."""
    types = graph_input_types(session)
    feeds = inputs_for(describe, types, batch, steps)
    whole = median_time(lambda: session.run(None, feeds), seconds)
    h, c = describe["initial_h"], describe["initial_c"]
    if describe["bidirectional"] or not (h and describe["h_n"]) or (describe["c_n"] and not c):
        return whole, None
    names = [o.name for o in session.get_outputs()]
    step_feeds = inputs_for(describe, types, batch, 1)
    h_at, c_at = names.index(describe["h_n"]), names.index(describe["c_n"]) if describe["c_n"] else None

    def step():
        out = session.run(None, step_feeds)
        step_feeds[h] = out[h_at]
        if c_at is not None:
            step_feeds[c] = out[c_at]

    return whole, median_time(step, seconds)


def compare(path, recur, batch, steps, seconds, median_time, ort_session, cpu):
    """Prints the side-by-side table for one file."""
    describe, recur_cases = recur_bench(recur, path, batch, steps, seconds)
    describe["bidirectional"] = f"onnx per-step B{batch}" not in recur_cases
    whole, step = ort_times(ort_session(path), describe, batch, steps, seconds, median_time)
    rows = [(f"whole sequence B{batch} T{steps}", whole * 1e3, recur_cases[f"onnx whole B{batch} T{steps}"]["ms"], "ms")]
    recur_step = recur_cases.get(f"onnx per-step B{batch}")
    if recur_step:
        rows.append((f"streaming step B{batch}", step * 1e6 if step else None, recur_step["us"], "µs"))
    print(f"{path} on {cpu}, 2 threads")
    print("| | ONNX Runtime | recur | recur ÷ ONNX Runtime |")
    print("|---|---|---|---|")
    for name, ort_value, recur_value, unit in rows:
        ort_text = f"{ort_value:.3f} {unit}" if ort_value else "— (no state inputs)"
        ratio = f"{recur_value / ort_value:.2f}" if ort_value else "—"
        print(f"| {name} | {ort_text} | {recur_value:.3f} {unit} | {ratio} |")
