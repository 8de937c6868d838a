#!/usr/bin/env python3
"""Checks ONNX files exported by recur against recur's own outputs.

Usage: check_onnx_export.py DIR

DIR holds case folders in ONNX's node-test layout, as crates/recur-onnx/tests/export_ort.rs writes them:

    DIR/<case>/model.onnx
    DIR/<case>/test_data_set_N/input_K.pb    one serialized TensorProto per graph input, in the graph's order
    DIR/<case>/test_data_set_N/output_K.pb   recur's value of each graph output, in the graph's order

For every case, `onnx.checker.check_model(full_check=True)` must accept the model, and onnxruntime (CPU) must run
every data set (several batch sizes and lengths through the same file: its axes are dynamic) and match recur's
outputs to within 1e-5, with the same shapes. Prints one line per case; exits 1 naming every failure.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

TOLERANCE = 1e-5


def read_tensor(path):
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def check_case(folder):
    """The largest difference over the case's data sets; raises on any failure."""
    model = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    outputs = [o.name for o in model.graph.output]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    data_sets = sorted(folder.glob("test_data_set_*"))
    if not data_sets:
        raise RuntimeError("no test_data_set_N folder")
    worst = 0.0
    for data in data_sets:
        feed = {name: read_tensor(data / f"input_{k}.pb") for k, name in enumerate(inputs)}
        got = session.run(outputs, feed)
        for k, (name, value) in enumerate(zip(outputs, got)):
            expected = read_tensor(data / f"output_{k}.pb")
            if value.shape != expected.shape:
                raise RuntimeError(f"{data.name}: output `{name}` has shape {value.shape}, recur's {expected.shape}")
            difference = float(np.max(np.abs(value.astype(np.float64) - expected))) if value.size else 0.0
            if not difference <= TOLERANCE:
                raise RuntimeError(f"{data.name}: output `{name}` differs from recur's by {difference:.3g}")
            worst = max(worst, difference)
    return worst, len(data_sets)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    cases = sorted(p for p in root.iterdir() if p.is_dir())
    if not cases:
        sys.exit(f"error: no case folders in {root}")
    failures = []
    for folder in cases:
        try:
            worst, sets = check_case(folder)
            print(f"ok    {folder.name}: {sets} data sets, largest difference {worst:.2e}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the run fails
            print(f"FAIL  {folder.name}: {type(error).__name__}: {error}")
            failures.append(folder.name)
    print(f"{len(cases) - len(failures)} of {len(cases)} exported models pass onnx.checker and onnxruntime "
          f"(onnx {onnx.__version__}, onnxruntime {ort.__version__}) within {TOLERANCE}")
    if failures:
        sys.exit(f"error: {len(failures)} exported model(s) failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
