"""Drives a running `recur serve` through NVIDIA's `tritonclient.http`, as an existing Triton client would.

Usage: python tools/serve_tritonclient.py HOST:PORT CASES.json

CASES.json (written by crates/recur-serve/tests/tritonclient.rs) names the model, its input and output widths, and
streams, each with its sequence id (an integer or a string), its chunk lengths, its inputs (T x I, flat) and the
outputs recur gives natively (T x O, flat). The streams are interleaved: round k sends chunk k of every stream at
once (requests of different sequences in flight together), then waits for all of them. Even streams send and receive
tensors in the binary tensor extension, odd ones as JSON. Every output must be within 1e-6 of the native one.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient


def main(url, cases_path):
    with open(cases_path) as f:
        cases = json.load(f)
    model, width, out_width = cases["model"], cases["input"], cases["output"]
    client = httpclient.InferenceServerClient(url=url, concurrency=len(cases["streams"]))
    assert client.is_server_live() and client.is_server_ready(), "server not live and ready"
    assert client.is_model_ready(model), f"model {model} not ready"
    meta = client.get_model_metadata(model)
    assert meta["inputs"][0]["name"] == "INPUT" and meta["inputs"][0]["shape"] == [-1, width], meta
    assert meta["outputs"][0]["shape"] == [-1, out_width], meta
    assert "sequence" in client.get_server_metadata()["extensions"]

    streams = cases["streams"]
    got = [[] for _ in streams]
    offsets = [0 for _ in streams]
    rounds = max(len(s["chunks"]) for s in streams)
    for k in range(rounds):
        pending = []
        for n, stream in enumerate(streams):
            chunks = stream["chunks"]
            if k >= len(chunks):
                continue
            steps, start = chunks[k], offsets[n]
            x = np.array(stream["inputs"][start * width:(start + steps) * width], dtype=np.float32).reshape(steps, width)
            binary = n % 2 == 0
            tensor = httpclient.InferInput("INPUT", [steps, width], "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            output = httpclient.InferRequestedOutput("OUTPUT", binary_data=binary)
            request = client.async_infer(
                model,
                [tensor],
                outputs=[output],
                sequence_id=stream["id"],
                sequence_start=k == 0,
                sequence_end=k == len(chunks) - 1,
            )
            pending.append((n, steps, request))
            offsets[n] += steps
        for n, steps, request in pending:
            result = request.get_result()
            y = result.as_numpy("OUTPUT")
            assert y.shape == (steps, out_width), (n, y.shape)
            got[n].extend(y.reshape(-1).tolist())
            step = result.get_response()["parameters"]["sequence_step"]
            assert step == offsets[n], (n, step, offsets[n])
    worst = 0.0
    for n, stream in enumerate(streams):
        want = np.array(stream["expected"], dtype=np.float64)
        have = np.array(got[n], dtype=np.float64)
        assert have.shape == want.shape, (n, have.shape, want.shape)
        worst = max(worst, float(np.max(np.abs(have - want))))
    requests = sum(len(s["chunks"]) for s in streams)
    print(f"tritonclient: {len(streams)} interleaved sequences, {requests} requests, max |served - native| = {worst:.2e}")
    assert worst <= 1e-6, f"served outputs differ from native ones by {worst}"
    # An error the protocol defines: a step for a sequence that was never started.
    tensor = httpclient.InferInput("INPUT", [1, width], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, width), dtype=np.float32), binary_data=False)
    try:
        client.infer(model, [tensor], sequence_id=987654321)
    except httpclient.InferenceServerException as e:
        assert "never started" in str(e), e
    else:
        raise AssertionError("a step of an unknown sequence was accepted")
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
