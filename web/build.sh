#!/usr/bin/env bash
# Builds recur-web for WebAssembly into web/recur_web.wasm, beside the page, and prints its size.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null
cargo build -q -p recur-web --lib --target wasm32-unknown-unknown --profile wasm
target="$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
cp "$target/wasm32-unknown-unknown/wasm/recur_web.wasm" web/recur_web.wasm
echo "web/recur_web.wasm: $(wc -c < web/recur_web.wasm) bytes, $(gzip -9c web/recur_web.wasm | wc -c) gzipped"
