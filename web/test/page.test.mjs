// Loads recur's web page (web/, served by the same one-line server as in docs/web.md) in headless Chromium, types
// a prompt and a seed, generates greedily, and checks that the page's text equals what `recur generate` prints
// natively for the same model, prompt and seed. Saves a screenshot beside the log (web/test/out/page.png).
//
//   RECUR=target/debug/recur node web/test/page.test.mjs      (after web/build.sh and `npm ci` in web/test)

import { spawn, execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, "..");
const recur = process.env.RECUR || path.resolve(web, "../target/debug/recur");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const model = "charlm-int8.safetensors";
const cases = [
  { prompt: "Once upon a time", seed: 0, length: 300 },
  { prompt: "The fox", seed: 7, length: 120 },
];

/** A free port on loopback. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** `recur generate`'s text for a case, at temperature 0, without its final newline. */
function native({ prompt, seed, length }) {
  const args = ["generate", "--model", path.join(web, model), "--prime", prompt, "--length", String(length),
                "--temperature", "0", "--seed", String(seed)];
  return execFileSync(recur, args, { encoding: "utf8" }).replace(/\n$/, "");
}

async function waitForServer(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no server at ${url}`);
}

const port = await freePort();
const server = spawn("python3", ["-m", "http.server", "-b", "127.0.0.1", "-d", web, String(port)], { stdio: "ignore" });
let browser;
let failed = 0;
try {
  const url = `http://127.0.0.1:${port}/`;
  await waitForServer(url);
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector("#status:text('Ready.')", { timeout: 30000 });
  for (const c of cases) {
    await page.fill("#prompt", c.prompt);
    await page.fill("#seed", String(c.seed));
    await page.fill("#temperature", "0");
    await page.fill("#length", String(c.length));
    await page.click("#generate");
    await page.waitForSelector("#status:text('Done')", { timeout: 60000 });
    const shown = (await page.textContent("#output .prompt")) + (await page.textContent("#output .generated"));
    const expected = native(c);
    const same = shown === expected;
    failed += same ? 0 : 1;
    console.log(`${same ? "ok" : "FAILED"}: prompt ${JSON.stringify(c.prompt)}, seed ${c.seed}, ${c.length} characters`);
    if (!same) console.log(`  page:   ${JSON.stringify(shown)}\n  recur generate: ${JSON.stringify(expected)}`);
  }
  for (const id of ["model", "model-size", "wasm-size", "per-char"]) {
    console.log(`${id}: ${await page.textContent(`#${id}`)}`);
  }
  if (errors.length) {
    failed += 1;
    console.log(`FAILED: errors on the page: ${errors.join("; ")}`);
  }
  const out = path.join(here, "out");
  mkdirSync(out, { recursive: true });
  await page.screenshot({ path: path.join(out, "page.png"), fullPage: true });
  console.log(`screenshot: ${path.join(out, "page.png")}`);
} finally {
  await browser?.close();
  server.kill();
}
process.exit(failed ? 1 : 0);
