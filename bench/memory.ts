// Idle memory: the resident set (VmRSS) of `labgate serve` a few seconds after it
// answers /health, with no request sent, for
//   one-provider — one OpenAI-compatible provider (a mock upstream on loopback), no embedded model;
//   one-provider-ts — the same run from the .ts sources, stripped by Node as they load
//                  (LABGATE_JS_DIR=off): what it cost before the stripped build;
//   default      — resources/labgate.yaml as `labgate serve` uses it with no --config
//                  (Ollama, llama.cpp, vLLM on their usual ports, the embedded engine over an
//                  empty models folder; no cloud keys in the environment);
// next to a bare `node -e` process for reference. labgate runs as `npm start` runs it:
// the stripped build brought up to date first (scripts/build-js.js), then
// `node bin/labgate.js serve`, which serves the built copies (bin/prestripped.js). Each
// labgate case runs in fresh processes (its own temp data and models folders); the
// median of the runs is reported.
// A separate, unmeasured start of each case with a module hook lists which heavy
// packages it loaded. See bench/README.md.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startMockUpstream } from "./lib/mock-upstream.ts";
import { fixed, table, verdict } from "./lib/table.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin", "labgate.js");
const BUILD_JS = join(ROOT, "scripts", "build-js.js");
const LOADED_HOOK = fileURLToPath(new URL("./lib/loaded-packages.ts", import.meta.url));

/** Idle RSS the one-provider configuration should stay under (MiB). */
export const GOAL_ONE_PROVIDER_MIB = 100;
/** Packages worth naming when a configuration loads them. */
export const HEAVY_PACKAGES = ["node-llama-cpp", "ollama", "systeminformation", "ipull"];

export type MemoryCase = "bare-node" | "one-provider" | "one-provider-ts" | "default";
export const MEMORY_CASES: MemoryCase[] = ["bare-node", "one-provider", "one-provider-ts", "default"];

export interface MemoryOptions {
  /** Fresh processes per case. */
  runs: number;
  /** Seconds of idling after /health first answers, before RSS is read. */
  idleS: number;
  cases: MemoryCase[];
  /** Also start each labgate case once with a module hook to list the heavy packages it loads. */
  listPackages: boolean;
  log: (line: string) => void;
}

export const DEFAULT_MEMORY_OPTIONS: MemoryOptions = {
  runs: 3,
  idleS: 5,
  cases: MEMORY_CASES,
  listPackages: true,
  log: (line) => console.error(line),
};

/** One reading of /proc/<pid>/status, in bytes. */
export interface RssSample {
  rss: number;
  /** Anonymous memory: the JS heap, malloc, wasm. */
  anon: number;
  /** File-backed pages: the node binary's code and data, shared libraries. */
  file: number;
}

export interface MemoryCaseResult {
  name: MemoryCase;
  description: string;
  samples: RssSample[];
  median: RssSample;
  /** Heavy packages (HEAVY_PACKAGES) the case loaded; undefined when not listed. */
  heavyLoaded?: string[];
  /** How many npm packages the case loaded in all. */
  packageCount?: number;
}

export interface MemoryReport {
  options: Omit<MemoryOptions, "log">;
  results: MemoryCaseResult[];
}

const DESCRIPTIONS: Record<MemoryCase, string> = {
  "bare-node": "bare node -e (reference)",
  "one-provider": "one openai-compatible provider, no embedded",
  "one-provider-ts": "the same from the .ts sources (Node strips them: amaro)",
  default: "default config (resources/labgate.yaml), empty models dir",
};

function readStatus(pid: number): RssSample {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") + kb("RssShmem") };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The environment of a labgate under test: no cloud keys (the default config would add those providers), no LABGATE_* overrides. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("LABGATE_") || k === "OPENAI_API_KEY" || k === "ANTHROPIC_API_KEY" || k === "NODE_OPTIONS") continue;
    env[k] = v;
  }
  return { ...env, LABGATE_LOG_LEVEL: "info", ...extra };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await gone;
  clearTimeout(timer);
}

/** Waits for "labgate listening on <url>" in the JSON log, then for /health to answer 200. */
async function waitReady(child: ChildProcess, timeoutMs = 30_000): Promise<string> {
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`labgate did not start within ${timeoutMs} ms:\n${output.slice(-2000)}`)), timeoutMs);
    const onData = (b: Buffer): void => {
      output += b.toString("utf8");
      const m = /"url":"(http:\/\/[^"]+)"/.exec(output);
      if (m) done(undefined, m[1]);
    };
    const onExit = (code: number | null): void => done(new Error(`labgate exited (code ${code}) before listening:\n${output.slice(-2000)}`));
    function done(err?: Error, u?: string): void {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(u!);
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
  // Keep draining the pipes so the child never blocks on a full one.
  child.stdout?.resume();
  child.stderr?.resume();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return url;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url}/health did not answer 200 within ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface Started {
  child: ChildProcess;
  cleanup(): Promise<void>;
}

interface CaseContext {
  upstream: string;
}

/** What `npm start` does before it serves: bring the stripped build (dist/js) up to date. */
function buildJs(): string {
  const r = spawnSync(process.execPath, [BUILD_JS], { cwd: ROOT, encoding: "utf8", env: childEnv() });
  if (r.status !== 0) throw new Error(`scripts/build-js.js failed (status ${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

async function startCase(name: MemoryCase, ctx: CaseContext, nodeArgs: string[] = [], env: Record<string, string> = {}): Promise<Started> {
  if (name === "one-provider-ts") return startCase("one-provider", ctx, nodeArgs, { ...env, LABGATE_JS_DIR: "off" });
  if (name === "bare-node") {
    const child = spawn(process.execPath, [...nodeArgs, "-e", "setInterval(() => {}, 1000)"], { stdio: ["ignore", "pipe", "pipe"], env: childEnv(env) });
    await sleep(500);
    return { child, cleanup: () => stop(child) };
  }
  const dir = mkdtempSync(join(tmpdir(), "labgate-bench-mem-"));
  const dataDir = join(dir, "data");
  const modelsDir = join(dir, "models");
  const args = [...nodeArgs, BIN, "serve", "--data-dir", dataDir, "--models-dir", modelsDir, "--port", "0"];
  if (name === "one-provider") {
    const config = join(dir, "labgate.yaml");
    writeFileSync(
      config,
      [
        "server: {host: 127.0.0.1, port: 4000}",
        "providers:",
        `  upstream: {type: openai-compatible, base_url: "${ctx.upstream}/v1"}`,
        "models:",
        '  "mock-model": {deployments: [{provider: upstream, model: mock-model}]}',
        "",
      ].join("\n"),
    );
    args.push("--config", config);
  }
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: childEnv(env), cwd: ROOT });
  const cleanup = async (): Promise<void> => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(child);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { child, cleanup };
}

function median(samples: RssSample[]): RssSample {
  const pick = (f: (s: RssSample) => number): number => {
    const v = samples.map(f).sort((a, b) => a - b);
    const mid = v.length >> 1;
    return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  return { rss: pick((s) => s.rss), anon: pick((s) => s.anon), file: pick((s) => s.file) };
}

/** Which packages a case loads: one start with the module hook preloaded (not measured). */
async function loadedPackages(name: MemoryCase, ctx: CaseContext, idleS: number): Promise<string[]> {
  const file = join(mkdtempSync(join(tmpdir(), "labgate-bench-pkgs-")), "packages.txt");
  const started = await startCase(name, ctx, ["--import", LOADED_HOOK], { LABGATE_BENCH_LOADED: file });
  try {
    await sleep(idleS * 1000);
    started.child.kill("SIGUSR2");
    for (let i = 0; i < 50 && !existsSync(file); i++) await sleep(100);
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  } finally {
    await started.cleanup();
    rmSync(join(file, ".."), { recursive: true, force: true });
  }
}

export async function benchMemory(partial: Partial<MemoryOptions> = {}): Promise<MemoryReport> {
  const opts: MemoryOptions = { ...DEFAULT_MEMORY_OPTIONS, ...partial };
  const upstream = await startMockUpstream();
  const ctx: CaseContext = { upstream: upstream.url };
  const results: MemoryCaseResult[] = [];
  try {
    opts.log(`memory bench: ${buildJs()}`);
    for (const name of opts.cases) {
      const samples: RssSample[] = [];
      for (let run = 0; run < opts.runs; run++) {
        opts.log(`memory bench: ${name} run ${run + 1}/${opts.runs}`);
        const started = await startCase(name, ctx);
        try {
          await sleep((name === "bare-node" ? Math.min(2, opts.idleS) : opts.idleS) * 1000);
          samples.push(readStatus(started.child.pid!));
        } finally {
          await started.cleanup();
        }
      }
      const result: MemoryCaseResult = { name, description: DESCRIPTIONS[name], samples, median: median(samples) };
      if (opts.listPackages && name !== "bare-node" && name !== "one-provider-ts") {
        opts.log(`memory bench: ${name}: listing loaded packages (unmeasured start)`);
        const packages = await loadedPackages(name, ctx, Math.min(3, opts.idleS));
        result.packageCount = packages.length;
        result.heavyLoaded = HEAVY_PACKAGES.filter((p) => packages.includes(p));
      }
      results.push(result);
    }
  } finally {
    await upstream.close();
  }
  return { options: { ...opts, log: undefined } as unknown as Omit<MemoryOptions, "log">, results };
}

const toMib = (bytes: number): number => bytes / 1024 / 1024;

export function oneProviderMet(report: MemoryReport): boolean | undefined {
  const one = report.results.find((r) => r.name === "one-provider");
  return one ? toMib(one.median.rss) < GOAL_ONE_PROVIDER_MIB : undefined;
}

export function formatMemoryReport(report: MemoryReport): string {
  const o = report.options;
  const bare = report.results.find((r) => r.name === "bare-node");
  const out: string[] = [];
  out.push(
    `Idle RSS (VmRSS from /proc) ${o.idleS} s after /health first answers, no request sent; median of ${o.runs} fresh process(es) per case, ` +
      `each with its own temp data dir and empty models dir, no cloud keys in the environment. ` +
      `anon: JS heap, malloc, wasm; file: the node binary's pages and shared libraries.`,
  );
  out.push("");
  out.push(
    table(
      ["case", "RSS MiB", "min–max MiB", "anon MiB", "file MiB", "over bare node MiB", "heavy packages loaded", "npm packages"],
      report.results.map((r) => {
        const rss = r.samples.map((s) => toMib(s.rss));
        return [
          r.description,
          fixed(toMib(r.median.rss), 1),
          `${fixed(Math.min(...rss), 1)}–${fixed(Math.max(...rss), 1)}`,
          fixed(toMib(r.median.anon), 1),
          fixed(toMib(r.median.file), 1),
          r.name === "bare-node" || !bare ? "–" : fixed(toMib(r.median.rss - bare.median.rss), 1),
          r.heavyLoaded === undefined ? "–" : r.heavyLoaded.length ? r.heavyLoaded.join(", ") : "none",
          r.packageCount === undefined ? "–" : String(r.packageCount),
        ];
      }),
    ),
  );
  const one = report.results.find((r) => r.name === "one-provider");
  if (one) {
    out.push("");
    out.push(
      table(
        ["goal", "measured", "target", "result"],
        [["idle RSS, one openai-compatible provider, no embedded", `${fixed(toMib(one.median.rss), 1)} MiB`, `< ${GOAL_ONE_PROVIDER_MIB} MiB`, verdict(oneProviderMet(report)!)]],
      ),
    );
  }
  return out.join("\n");
}

// Standalone: node bench/memory.ts
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const report = await benchMemory();
  console.log(formatMemoryReport(report));
}
