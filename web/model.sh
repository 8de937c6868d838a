#!/usr/bin/env bash
# Trains the page's character model and quantizes it to int8: web/charlm-int8.safetensors (a two-layer GRU of 128
# units on the built-in stories; about two minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="$(mktemp -d)"
cargo run -q --release -p recur-cli -- train --task charlm --model gru --hidden 128 --steps 1000 --out "$runs/charlm"
cargo run -q --release -p recur-cli -- quantize "$runs/charlm" -o web/charlm-int8.safetensors --to int8
rm -rf "$runs"
