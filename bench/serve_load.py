"""Load on `recur serve` from wrk: steps per second, latency and the batch sizes formed, for several numbers of
concurrent streams of two LSTMs (I32 H64 L1 and I128 H256 L2), one step a request and chunks of 50.

    python bench/serve_load.py [--recur target/release/recur] [--seconds 10] [--streams 1,100,1000,10000]

Needs `wrk` (Debian's package) and nothing from PyPI. Writes the two models (random weights, PyTorch's names) to
a temporary directory, starts `recur serve` on loopback for each case, runs
`wrk -t T -c S -d D --latency -s bench/serve_load.lua URL -- STEPS WIDTH N C` against it (each connection drives its
own streams in turn; each stream lives N requests, from sequence_start to sequence_end), reads wrk's requests per
second and latency percentiles and the server's /metrics (the mean batch size), and prints a Markdown table.
The server and wrk share the machine's cores: the figures are those of both on one machine.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = {"I32 H64 L1": (32, 64, 1), "I128 H256 L2": (128, 256, 2)}


def write_lstm(path, input_size, hidden, layers, seed=1):
    """An nn.LSTM's state_dict as safetensors (F32), uniform in +-1/sqrt(hidden), without numpy."""
    rng = random.Random(seed)
    bound = 1 / math.sqrt(hidden)
    tensors = {}
    for layer in range(layers):
        width = input_size if layer == 0 else hidden
        for name, shape in [
            (f"weight_ih_l{layer}", (4 * hidden, width)),
            (f"weight_hh_l{layer}", (4 * hidden, hidden)),
            (f"bias_ih_l{layer}", (4 * hidden,)),
            (f"bias_hh_l{layer}", (4 * hidden,)),
        ]:
            count = math.prod(shape)
            tensors[name] = (shape, struct.pack(f"<{count}f", *(rng.uniform(-bound, bound) for _ in range(count))))
    header, offset, blobs = {}, 0, []
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def start_server(recur, model, port, max_batch):
    server = subprocess.Popen(
        [str(recur), "serve", str(model), "--name", "lstm", "--listen", f"127.0.0.1:{port}", "--max-batch", str(max_batch),
         "--idle-timeout-s", "60"],
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("recur serve did not start")


def metric(text, name):
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def seconds_of(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def run_case(recur, model, width, streams, steps, seconds, port, binary):
    threads = 1 if streams == 1 else 2
    connections = streams
    server = start_server(recur, model, port, max_batch=256)
    try:
        command = [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
            "-s", str(REPO / "bench" / "serve_load.lua"), f"http://127.0.0.1:{port}/v2/models/lstm/infer",
            "--", str(steps), str(width), "1000", str(connections // threads),
        ] + (["binary"] if binary else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    finally:
        server.kill()
        server.wait()
    requests = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if "99" not in latency:
        sys.exit(f"no latency distribution in wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    batches = metric(metrics, "recur_batch_size_count")
    mean_batch = metric(metrics, "recur_batch_size_sum") / batches if batches else 0.0
    return {
        "steps_per_s": requests * steps,
        "requests_per_s": requests,
        "p50": seconds_of(latency["50"]),
        "p99": seconds_of(latency["99"]),
        "mean_batch": mean_batch,
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recur", type=Path, default=REPO / "target" / "release" / "recur")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--streams", default="1,100,1000,10000")
    parser.add_argument("--port", type=int, default=18431)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    streams = [int(s) for s in args.streams.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {os.cpu_count()} cores; "
              f"wrk and recur serve on the same machine, {args.seconds} s a case")
        print()
        print("| model | streams | steps a request | tensors | steps/s | requests/s | p50 | p99 | mean batch | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for label, (width, hidden, layers) in MODELS.items():
            model = Path(tmp) / f"lstm {label}.safetensors".replace(" ", "_")
            write_lstm(model, width, hidden, layers)
            for steps, binary in [(1, False), (1, True), (50, False), (50, True)]:
                for count in streams:
                    r = run_case(args.recur, model, width, count, steps, args.seconds, args.port, binary)
                    errors = f"{r['errors']}" + (f" ({r['socket_errors']})" if r["socket_errors"] else "")
                    tensors = "binary" if binary else "JSON"
                    print(f"| lstm {label} | {count} | {steps} | {tensors} | {r['steps_per_s']:,.0f} | "
                          f"{r['requests_per_s']:,.0f} | {r['p50'] * 1e3:.2f} ms | {r['p99'] * 1e3:.2f} ms | "
                          f"{r['mean_batch']:.1f} | {errors} |", flush=True)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
