// Runs a WebAssembly program built for wasm32-wasip1 under Node's WASI, with the arguments after it and the file
// system visible: the runner of `cargo test --target wasm32-wasip1`, which checks the SIMD128 kernels (docs/web.md).
// cargo runs it from the package's directory, so give its absolute path:
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/tools/wasi-run.mjs" \
//       cargo test -p recur --lib --target wasm32-wasip1 -- kernels::quant
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [program, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [program, ...args], env: process.env, preopens: { "/": "/" } });
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
