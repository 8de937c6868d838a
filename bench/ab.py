#!/usr/bin/env python3
"""Alternate `recur bench` runs of several binaries (or one binary under several environments) and print each
one's median per case, and the median of its per-round ratio to the first binary: before/after figures on a
machine whose speed drifts from second to second.

    python3 bench/ab.py ROUNDS CASE BIN[=VAR:VALUE,...] ...
    python3 bench/ab.py 6 "fwd B32" /tmp/recur-before target/release/recur
    python3 bench/ab.py 5 stream target/release/recur=RECUR_SIMD:avx2 target/release/recur

Every round runs each binary once (`recur bench --json --threads $T --seconds $S --case CASE`, T=2 and S=0.3
unless set), in the order given rotated by one place a round, so that each binary runs in every position equally
often (run an even number of rounds for two binaries); the median over the rounds of each binary's per-run medians
is printed. Needs only the standard library.
"""

import json
import os
import statistics
import subprocess
import sys


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, case, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    results: dict[str, dict[str, list[float]]] = {spec: {} for spec in specs}
    for r in range(rounds):
        # Each round starts one binary later than the round before: on an AMD EPYC (Zen 4, 2026-12) the binary run
        # second in a round measured 3–8% slower than the same binary run first, whichever it was.
        for spec in specs[r % len(specs) :] + specs[: r % len(specs)]:
            binary, _, settings = spec.partition("=")
            env = dict(os.environ)
            for setting in filter(None, settings.split(",")):
                name, _, value = setting.partition(":")
                env[name] = value
            command = [binary, "bench", "--json", "--threads", os.environ.get("T", "2")]
            command += ["--seconds", os.environ.get("S", "0.3"), "--case", case]
            out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
            for line in out.splitlines():
                row = json.loads(line)
                results[spec].setdefault(row["case"], []).append(row.get("ms", row.get("us")))
    for name in results[specs[0]]:
        first = results[specs[0]][name]
        cells = []
        for spec in specs:
            if name not in results[spec]:
                continue
            times = results[spec][name]
            # Each round's time over the first binary's in the same round: a drift of the machine's speed that
            # lasts longer than one round cancels.
            ratio = statistics.median(t / f for t, f in zip(times, first))
            cells.append(f"{spec}: {statistics.median(times):.3f} (×{ratio:.3f})")
        print(name, " | ".join(cells))


if __name__ == "__main__":
    main()
