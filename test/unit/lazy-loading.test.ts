// What building a gateway loads and registers process-wide:
// - a config without an embedded (or Ollama) provider never loads the embedded
//   engine, node-llama-cpp or the Ollama client; one with them does;
// - building gateways does not register prom-client's process-wide observers (GC
//   PerformanceObserver, event-loop delay monitor) unless asked (`labgate serve` asks).
// - `labgate serve` run from the stripped build (npm run build:js) never loads Node's
//   TypeScript stripper, and gives back its startup memory once idle.
// All are about the whole process, so they run in a fresh Node process that records
// every module it loads (module.registerHooks) and counts those observers.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapter, loadAdapterModules } from "../../gateway/providers/factory.ts";
import { LazyAdapter } from "../../gateway/providers/lazy-adapter.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Runs in the child: phases of gateway building, each followed by a snapshot of what was loaded and registered. */
const CHILD = String.raw`
import { registerHooks } from "node:module";
import perfHooks from "node:perf_hooks";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const loaded = new Set();
registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context); } });

// Process-wide observers, counted where prom-client (and anyone else) creates them.
const counts = { gcObservers: 0, loopMonitors: 0 };
const observe = perfHooks.PerformanceObserver.prototype.observe;
perfHooks.PerformanceObserver.prototype.observe = function (options) {
  if (JSON.stringify(options ?? {}).includes('"gc"')) counts.gcObservers++;
  return observe.call(this, options);
};
const monitor = perfHooks.monitorEventLoopDelay;
perfHooks.monitorEventLoopDelay = function (...args) {
  counts.loopMonitors++;
  return monitor.apply(this, args);
};

const root = process.env.LABGATE_ROOT;
const { buildGateway } = await import(root + "/gateway/app.ts");
const { parseConfigText } = await import(root + "/gateway/config/load.ts");

async function build(yaml, extra = {}) {
  const parsed = parseConfigText(yaml, "test.yaml");
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const dataDir = mkdtempSync(join(tmpdir(), "labgate-lazy-"));
  const gateway = await buildGateway({
    config: parsed.config, dataDir, modelsDir: join(dataDir, "models"), env: {}, logLevel: "silent",
    healthIntervalMs: 0, serverDiscovery: false, gpu: false, ...extra,
  });
  await gateway.listen("127.0.0.1", 0);
  const close = gateway.close.bind(gateway);
  gateway.close = async () => { await close(); rmSync(dataDir, { recursive: true, force: true }); };
  return gateway;
}
const snapshot = () => ({ urls: [...loaded], ...counts });

const out = {};
const onlyOpenAI = [
  "providers:",
  '  upstream: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}',
  "models:",
  '  m: {deployments: [{provider: upstream, model: m}]}',
].join("\n");
const a = await build(onlyOpenAI);
const b = await build(onlyOpenAI);
out.twoPlain = snapshot();
const metricsPlain = await a.app.inject({ method: "GET", url: "/metrics" });
out.plainHasProcessMetrics = metricsPlain.body.includes("labgate_process_");
await a.close();
await b.close();

const served = await build(onlyOpenAI, { defaultMetrics: true });
out.withDefaultMetrics = snapshot();
const metricsServed = await served.app.inject({ method: "GET", url: "/metrics" });
out.servedHasProcessMetrics = metricsServed.body.includes("labgate_process_");
await served.close();

const heavy = await build([
  "providers:",
  "  embedded: {type: embedded, threads: 1, gpu: false}",
  '  ollama: {type: ollama, base_url: "http://127.0.0.1:9"}',
  "models: {}",
].join("\n"));
out.withHeavy = snapshot();
await heavy.close();

// A file, not stdout: the module lists are large and process.exit() would cut a pipe short.
writeFileSync(process.env.LABGATE_RESULT, JSON.stringify(out));
process.exit(0);
`;

interface Snapshot {
  urls: string[];
  gcObservers: number;
  loopMonitors: number;
}
interface ChildResult {
  twoPlain: Snapshot;
  plainHasProcessMetrics: boolean;
  withDefaultMetrics: Snapshot;
  servedHasProcessMetrics: boolean;
  withHeavy: Snapshot;
}

/** Module URLs of the heavy parts a configuration may not need. */
function heavyModules(urls: string[]): { nodeLlamaCpp: string[]; native: string[]; embeddedAdapter: string[]; ollama: string[] } {
  return {
    nodeLlamaCpp: urls.filter((u) => u.includes("/node_modules/node-llama-cpp/")),
    native: urls.filter((u) => u.startsWith(`file://${ROOT}native/`)),
    embeddedAdapter: urls.filter((u) => u.includes("/gateway/providers/embedded/")),
    ollama: urls.filter((u) => u.includes("/node_modules/ollama/") || u.includes("/gateway/providers/ollama/")),
  };
}

let result: ChildResult;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "labgate-lazy-result-"));
  const file = join(dir, "result.json");
  try {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], {
      cwd: ROOT,
      env: { ...process.env, LABGATE_ROOT: ROOT.replace(/\/$/, ""), LABGATE_RESULT: file, NODE_OPTIONS: "" },
      encoding: "utf8",
      timeout: 60_000,
    });
    if (r.status !== 0 || !existsSync(file)) throw new Error(`child failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    result = JSON.parse(readFileSync(file, "utf8")) as ChildResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);

describe("what a configuration loads", () => {
  it("a gateway with only an OpenAI-compatible provider loads neither the embedded engine, node-llama-cpp nor the Ollama client", () => {
    const h = heavyModules(result.twoPlain.urls);
    expect(h.nodeLlamaCpp).toEqual([]);
    expect(h.native).toEqual([]);
    expect(h.embeddedAdapter).toEqual([]);
    expect(h.ollama).toEqual([]);
    // The hook saw the gateway itself, so the empty lists above mean something.
    expect(result.twoPlain.urls.some((u) => u.endsWith("/gateway/providers/openai-compatible/adapter.ts"))).toBe(true);
  });

  it("a gateway with embedded and Ollama providers loads them (the check above can see them)", () => {
    const h = heavyModules(result.withHeavy.urls);
    expect(h.nodeLlamaCpp.length).toBeGreaterThan(0);
    expect(h.embeddedAdapter.length).toBeGreaterThan(0);
    expect(h.ollama.some((u) => u.includes("/node_modules/ollama/"))).toBe(true);
  });
});

describe("process-wide metrics collectors", () => {
  it("building two gateways registers no GC observer or event-loop monitor, and /metrics has no process series", () => {
    expect(result.twoPlain.gcObservers).toBe(0);
    expect(result.twoPlain.loopMonitors).toBe(0);
    expect(result.plainHasProcessMetrics).toBe(false);
  });

  it("a gateway built with defaultMetrics (as labgate serve does) registers one set and exports labgate_process_*", () => {
    expect(result.withDefaultMetrics.gcObservers).toBe(1);
    expect(result.withDefaultMetrics.loopMonitors).toBe(1);
    expect(result.servedHasProcessMetrics).toBe(true);
    // Gateways built afterwards without it add none.
    expect(result.withHeavy.gcObservers).toBe(1);
    expect(result.withHeavy.loopMonitors).toBe(1);
  });
});

describe("heavy adapters", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "labgate-lazy-unit-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a configured type whose module the gateway imported gets its real adapter", async () => {
    const modules = await loadAdapterModules(["ollama", "openai"]);
    expect(modules.ollama).toBeDefined();
    expect(modules.embedded).toBeUndefined();
    const a = createAdapter({ name: "o", config: { type: "ollama", base_url: "http://127.0.0.1:9" }, secrets: {}, defaultModelsDir: dir, modules });
    expect(a).not.toBeInstanceOf(LazyAdapter);
    expect(a.type).toBe("ollama");
    await a.close();
  });

  it("a type appearing later gets a LazyAdapter that imports its module once and then delegates", async () => {
    const modules = await loadAdapterModules(["openai"]);
    const a = createAdapter({ name: "later", config: { type: "ollama", base_url: "http://127.0.0.1:9" }, secrets: {}, defaultModelsDir: dir, modules });
    expect(a).toBeInstanceOf(LazyAdapter);
    const lazy = a as LazyAdapter;
    expect(lazy.name).toBe("later");
    expect(lazy.type).toBe("ollama");
    const real = await lazy.ready;
    expect(lazy.adapter).toBe(real);
    expect(real).not.toBeInstanceOf(LazyAdapter);
    // The module is now the gateway's: the next provider of that type gets the real adapter at once.
    expect(modules.ollama).toBeDefined();
    const next = createAdapter({ name: "next", config: { type: "ollama", base_url: "http://127.0.0.1:9" }, secrets: {}, defaultModelsDir: dir, modules });
    expect(next).not.toBeInstanceOf(LazyAdapter);
    // Calls go to the real adapter: a dead upstream is an unhealthy provider, not a throw.
    const h = await lazy.health(AbortSignal.timeout(5000));
    expect(h.ok).toBe(false);
    await lazy.close();
    await next.close();
  });

  it("a module that could not be imported leaves its providers unavailable (createAdapter throws, the gateway catches)", () => {
    const modules = { failed: { embedded: "Cannot find package 'node-llama-cpp'" } };
    expect(() => createAdapter({ name: "e", config: { type: "embedded" }, secrets: {}, defaultModelsDir: dir, modules })).toThrow(/embedded adapter could not be loaded: Cannot find package/);
  });
});

describe("labgate serve at idle", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "labgate-lazy-serve-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("from the stripped build, one openai-compatible provider: Node's TypeScript stripper is never loaded, and the idle gateway is compacted once", async () => {
    const jsDir = join(dir, "js");
    const built = spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.js"), jsDir], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(built.status, built.stderr).toBe(0);
    const config = join(dir, "labgate.yaml");
    writeFileSync(
      config,
      ["providers:", '  upstream: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}', "models:", "  m: {deployments: [{provider: upstream, model: m}]}", ""].join("\n"),
    );
    // Says on exit whether the stripper was loaded (moduleLoadList names Node's internal modules).
    const probe = `data:text/javascript,process.on("exit",()=>process.stderr.write("\\nstripper-loaded="+process.moduleLoadList.some((m)=>m.includes("amaro"))+"\\n"))`;
    const args = ["--import", probe, join(ROOT, "bin", "labgate.js"), "serve", "--config", config, "--data-dir", join(dir, "data"), "--models-dir", join(dir, "models"), "--port", "0"];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, LABGATE_JS_DIR: jsDir, LABGATE_LOG_LEVEL: "debug", NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (b: Buffer) => (output += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (output += b.toString("utf8")));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      // Bounded wait for the compaction that follows the start (2 s of quiet after listening).
      for (let i = 0; i < 600 && !output.includes("idle: memory compacted") && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      const line = output.split("\n").find((l) => l.includes("idle: memory compacted"));
      expect(line, output.slice(-3000)).toBeDefined();
      const entry = JSON.parse(line!) as { rss_mb_before: number; rss_mb_after: number };
      expect(entry.rss_mb_before).toBeGreaterThan(0);
      expect(entry.rss_mb_after).toBeGreaterThan(0);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
    expect(output).toMatch(/stripper-loaded=false/);
    expect(output.match(/idle: memory compacted/g)).toHaveLength(1);
  }, 90_000);
});
