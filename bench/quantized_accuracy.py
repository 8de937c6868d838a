#!/usr/bin/env python3
"""The task metric of models trained by `recur train`, before and after `recur quantize`, as a Markdown table.

Each case trains one model with the task's defaults (and the given cell), quantizes it to every scheme and scores
every file with `recur eval`. Needs only the `recur` binary (no torch):

    cargo build --release -p recur-cli
    python3 bench/quantized_accuracy.py --recur target/release/recur --out /tmp/quantized-accuracy
"""

import argparse
import json
import os
import subprocess
import sys

SCHEMES = ["bf16", "f16", "int8", "int8-tensor"]

# (task, extra train arguments, the metric to report, lower is better)
CASES = [
    ("charlm", ["--model", "lstm"], "eval_bpc", True),
    ("charlm", ["--model", "gru", "--hidden", "128", "--steps", "1000"], "eval_bpc", True),
    ("mackey-glass", ["--model", "gru"], "eval_mse", True),
    ("mackey-glass", ["--model", "lstm"], "eval_mse", True),
    ("mackey-glass", ["--model", "rnn"], "eval_mse", True),
    ("tagging", ["--model", "gru", "--bidirectional"], "eval_accuracy", False),
    ("reber", ["--model", "lstm"], "eval_strings_correct", False),
]


def run(args):
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recur", default="target/release/recur")
    p.add_argument("--out", required=True, help="directory for the runs and quantized files")
    p.add_argument("--threads", type=int, default=None, help="passed to recur train")
    p.add_argument("--only", default=None, help="run only the cases of this task")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for i, (task, extra, metric, lower) in enumerate(CASES):
        if a.only and task != a.only:
            continue
        name = f"{task}-{extra[1]}"
        run_dir = os.path.join(a.out, f"{i}-{name}")
        args = [a.recur, "train", "--task", task, *extra, "--out", run_dir, "--quiet", "--json"]
        if a.threads:
            args += ["--threads", str(a.threads)]
        if not os.path.exists(os.path.join(run_dir, "model.safetensors")):
            run(args)
        model = os.path.join(run_dir, "model.safetensors")
        scores = {"f32": last_json(run([a.recur, "eval", "--model", model, "--json"]))[metric]}
        sizes = {"f32": os.path.getsize(model)}
        for scheme in SCHEMES:
            out = os.path.join(run_dir, f"model-{scheme}.safetensors")
            run([a.recur, "quantize", model, "-o", out, "--to", scheme])
            scores[scheme] = last_json(run([a.recur, "eval", "--model", out, "--json"]))[metric]
            sizes[scheme] = os.path.getsize(out)
        rows.append((task, " ".join(extra), metric, scores, sizes))
        print(f"{name}: {scores}", file=sys.stderr)

    print("| task | model | metric | f32 | " + " | ".join(SCHEMES) + " |")
    print("|---|---|---|---|" + "---|" * len(SCHEMES))
    for task, extra, metric, scores, sizes in rows:
        f = scores["f32"]
        cells = []
        for s in SCHEMES:
            change = 100.0 * (scores[s] - f) / abs(f) if f else 0.0
            cells.append(f"{scores[s]:.5g} ({change:+.2f}%)")
        print(f"| `{task}` | `{extra}` | `{metric}` | {f:.5g} | " + " | ".join(cells) + " |")
    print()
    print("| task | model | " + " | ".join(["f32"] + SCHEMES) + " |")
    print("|---|---|" + "---|" * (1 + len(SCHEMES)))
    for task, extra, _, _, sizes in rows:
        print(f"| `{task}` | `{extra}` | " + " | ".join(f"{sizes[s] / 1024:.0f} KiB" for s in ["f32"] + SCHEMES) + " |")


if __name__ == "__main__":
    main()
