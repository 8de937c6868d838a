"""Load on `recur serve` from wrk: steps per second, latency and the batch sizes formed, for several numbers of
concurrent streams of two LSTMs (I32 H64 L1 and I128 H256 L2), one step a request and chunks of 50.

    python bench/serve_load.py [--recur target/release/recur] [--seconds 10] [--streams 1,100,1000,10000]
        [--models "I32 H64 L1,I128 H256 L2"] [--chunks 1,50] [--tensors json,binary]

Needs `wrk` (Debian's package) and nothing from PyPI. Writes the two models (random weights, PyTorch's names) to
a temporary directory, starts `recur serve` on loopback for each case, runs
`wrk -t T -c S -d D --latency -s bench/serve_load.lua URL -- STEPS WIDTH N C` against it (each connection drives its
own streams in turn; each stream lives N requests, from sequence_start to sequence_end), and prints a Markdown
table: requests (and steps) a second and the server's CPU time a request, from the server's own count of answered
requests and its CPU time between 1 s into the run and 1 s before its end; wrk's latency percentiles; the mean batch
from the server's /metrics; wrk's error counts. The server and wrk share the machine's cores: the figures are those
of both on one machine.
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


def start_server(recur, model, port, max_batch, idle_timeout_s=60):
    server = subprocess.Popen(
        [str(recur), "serve", str(model), "--name", "lstm", "--listen", f"127.0.0.1:{port}", "--max-batch", str(max_batch),
         "--idle-timeout-s", str(idle_timeout_s)],
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
        # The rates are the server's own counts over the run's middle (from 1 s in to 1 s before its end), so that
        # neither the first connections nor the requests cut off at the end count, nor what wrk counts that the
        # server did not answer (a stream whose answer wrk lost leaves its connection to the script's health checks).
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        first = server_counts(port, server.pid)
        time.sleep(seconds - 2)
        last = server_counts(port, server.pid)
        out, _ = wrk.communicate()
        if wrk.returncode != 0:
            sys.exit(f"wrk failed:\n{out}")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    finally:
        server.kill()
        server.wait()
    elapsed = last["time"] - first["time"]
    requests = (last["requests"] - first["requests"]) / elapsed
    cpu = last["cpu"] - first["cpu"]
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
        "cpu_per_request": cpu / (last["requests"] - first["requests"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recur", type=Path, default=REPO / "target" / "release" / "recur")
    parser.add_argument("--seconds", type=int, default=10, help="of each case's run (at least 3)")
    parser.add_argument("--streams", default="1,100,1000,10000")
    parser.add_argument("--port", type=int, default=18431)
    parser.add_argument("--models", default=",".join(MODELS), help="of: " + ", ".join(MODELS))
    parser.add_argument("--chunks", default="1,50", help="steps a request")
    parser.add_argument("--tensors", default="json,binary")
    parser.add_argument("--parked", type=int, default=0,
                        help="rather than load, the resident bytes a parked stream costs, over this many streams")
    parser.add_argument("--wave", type=int, default=1000, help="with --parked: streams live at a time (fewer than --parked)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    streams = [int(s) for s in args.streams.split(",")]
    if args.parked:
        with tempfile.TemporaryDirectory() as tmp:
            for label in args.models.split(","):
                width, hidden, layers = MODELS[label]
                model = Path(tmp) / "lstm.safetensors"
                write_lstm(model, width, hidden, layers)
                state = 4 * 2 * hidden * layers + 64
                per_stream = parked_memory(args.recur, model, width, args.parked, args.wave, args.port)
                print(f"lstm {label}: {args.parked} parked streams, {args.wave} live at a time, the first {args.wave} "
                      "aside: "
                      f"{per_stream:,.0f} resident bytes a stream ({state} bytes of state)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {os.cpu_count()} cores; "
              f"wrk and recur serve on the same machine, {args.seconds} s a case")
        print()
        print("| model | streams | steps a request | tensors | steps/s | requests/s | p50 | p99 | mean batch | server CPU a request | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label in args.models.split(","):
            width, hidden, layers = MODELS[label]
            model = Path(tmp) / f"lstm {label}.safetensors".replace(" ", "_")
            write_lstm(model, width, hidden, layers)
            cases = [(int(c), t == "binary") for c in args.chunks.split(",") for t in args.tensors.split(",")]
            for steps, binary in cases:
                for count in streams:
                    r = run_case(args.recur, model, width, count, steps, args.seconds, args.port, binary)
                    errors = f"{r['errors']}" + (f" ({r['socket_errors']})" if r["socket_errors"] else "")
                    tensors = "binary" if binary else "JSON"
                    print(f"| lstm {label} | {count} | {steps} | {tensors} | {r['steps_per_s']:,.0f} | "
                          f"{r['requests_per_s']:,.0f} | {r['p50'] * 1e3:.2f} ms | {r['p99'] * 1e3:.2f} ms | "
                          f"{r['mean_batch']:.1f} | {r['cpu_per_request'] * 1e6:.1f} µs | {errors} |", flush=True)


def parked_memory(recur, model, width, streams, wave, port):
    """Resident bytes a parked stream costs: `streams` streams are started with one step each, over one
    connection, `wave` at a time, and parked (the server's idle timeout is 0.2 s) before the next wave starts. The
    server's resident size is read after the first wave is parked and after the last: the first wave also pays for
    what any server that has served `wave` live streams holds (buffers, tables, the allocator's reserve)."""
    import http.client

    server = start_server(recur, model, port, max_batch=256, idle_timeout_s=0.2)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        values = [round(math.sin(i * 0.37), 4) for i in range(width)]

        def step(sequence):
            body = json.dumps({
                "parameters": {"sequence_id": sequence, "sequence_start": True},
                "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, width], "data": values}],
            })
            connection.request("POST", "/v2/models/lstm/infer", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"the server answered {response.status}")

        before = None
        for first in range(1, streams + 1, wave):  # (sequence 0 means none)
            for sequence in range(first, min(first + wave, streams + 1)):
                step(sequence)
            for _ in range(100):
                time.sleep(0.1)
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                if metric(metrics, 'recur_streams{state="live"}') == 0:
                    break
            if before is None:
                time.sleep(0.5)
                before = resident_bytes(server.pid)
        time.sleep(0.5)
        grown = resident_bytes(server.pid) - before
    finally:
        server.kill()
        server.wait()
    return grown / (streams - wave)


def server_counts(port, pid):
    """The server's answered requests, its CPU seconds, and the time they were read at."""
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    ok = metric(metrics, 'recur_requests_total{outcome="ok"}')
    return {"requests": ok, "cpu": cpu_seconds(pid), "time": time.monotonic()}


def resident_bytes(pid):
    """Process `pid`'s resident size (VmRSS), in bytes."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid):
    """The user and system CPU time process `pid` has used, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
