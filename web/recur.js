// The page's side of recur-web (crates/recur-web): bytes in through the module's input buffer, text out through
// its output buffer, every call answering whether it succeeded. The model file is `?model=FILE` (default
// charlm-int8.safetensors), fetched from beside the page.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const modelUrl = params.get("model") || "charlm-int8.safetensors";

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** The exported functions, with the buffers wrapped. */
class Recur {
  constructor(exports) {
    this.w = exports;
  }
  put(bytes) {
    const at = this.w.recur_input(bytes.length);
    new Uint8Array(this.w.memory.buffer, at, bytes.length).set(bytes);
  }
  output() {
    const bytes = new Uint8Array(this.w.memory.buffer, this.w.recur_output(), this.w.recur_output_len());
    return new TextDecoder().decode(bytes);
  }
  /** The output of a call that succeeded; the error's message thrown otherwise. */
  answer(ok) {
    const text = this.output();
    if (!ok) throw new Error(text);
    return text;
  }
  load(bytes) {
    this.put(bytes);
    return JSON.parse(this.answer(this.w.recur_load()));
  }
  start(prompt, seed, temperature, topK) {
    this.put(new TextEncoder().encode(prompt));
    this.answer(this.w.recur_start(BigInt(seed), temperature, topK));
  }
  next(n) {
    return this.answer(this.w.recur_next(n));
  }
}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

/** The length of `bytes` gzipped, as a server would send them. */
async function gzippedLength(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

let recur;
let running = false;

async function generate() {
  const prompt = $("prompt").value;
  const length = Math.max(1, parseInt($("length").value, 10) || 1);
  recur.start(prompt, parseInt($("seed").value, 10) || 0, parseFloat($("temperature").value) || 0,
              parseInt($("top-k").value, 10) || 0);
  $("output").querySelector(".prompt").textContent = prompt;
  const out = $("output").querySelector(".generated");
  out.textContent = "";
  running = true;
  $("generate").disabled = true;
  $("stop").disabled = false;
  setStatus("Generating…");
  let made = 0;
  let busy = 0;
  // A few characters a frame, so that the text streams and the page stays responsive.
  while (running && made < length) {
    const n = Math.min(8, length - made);
    const t = performance.now();
    out.textContent += recur.next(n);
    busy += performance.now() - t;
    made += n;
    $("per-char").textContent = `${(1000 * busy / made).toFixed(1)} µs (${made} characters)`;
    await new Promise(requestAnimationFrame);
  }
  running = false;
  $("generate").disabled = false;
  $("stop").disabled = true;
  setStatus(`Done: ${made} characters.`);
}

async function main() {
  const [wasm, model] = await Promise.all([fetchBytes("recur_web.wasm"), fetchBytes(modelUrl)]);
  const { instance } = await WebAssembly.instantiate(wasm, {});
  recur = new Recur(instance.exports);
  const info = recur.load(model);
  $("model").textContent = `${info.mode}, ${info.layers} × ${info.hidden} units, embedding ${info.embedding}, ` +
    `${info.vocabulary} characters, weights ${info.scheme}`;
  $("model-size").textContent = `${kib(model.length)} (${modelUrl})`;
  $("wasm-size").textContent = `${kib(wasm.length)}, ${kib(await gzippedLength(wasm))} gzipped (recur_web.wasm)`;
  $("generate").disabled = false;
  setStatus("Ready.");
}

$("generate").addEventListener("click", () => generate().catch((e) => {
  running = false;
  $("generate").disabled = false;
  $("stop").disabled = true;
  setStatus(e.message, true);
}));
$("stop").addEventListener("click", () => { running = false; });
main().catch((e) => setStatus(e.message, true));
