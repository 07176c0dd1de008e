// The readiness gate over generated request logs in a real SQLite file (written through
// the real RequestLog), with the upstream history a gateway leaves in the data folder:
// one window where every criterion passes, and for each criterion one where only it fails.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../gateway/config/load.ts";
import { openDatabase } from "../../gateway/store/db.ts";
import { BatchStore, type BatchRow, type BatchStatus } from "../../gateway/store/batches.ts";
import { RequestLog, type RequestLogRow } from "../../gateway/store/request-log.ts";
import { gateCommand } from "../../gateway/telemetry/gate-command.ts";
import { evaluateGate, formatValue, parseWindow, type GateReport } from "../../gateway/telemetry/gate.ts";
import type { UpstreamProviderHistory, UpstreamSample } from "../../gateway/telemetry/upstream-metrics.ts";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CONFIG = (extra = "") => `
providers:
  a: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}
  b: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}
  c: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}
  v: {type: vllm, base_url: "http://127.0.0.1:9"}
models:
  chat:
    deployments:
      - {provider: a, model: small, weight: 1, tier: local}
      - {provider: b, model: small, weight: 1, tier: standard, price: {input_per_1m: 5, output_per_1m: 10}}
  big:
    deployments: [{provider: c, model: large, tier: premium}]
  served:
    deployments: [{provider: v, model: m}]
budgets:
  tiers:
    standard: {max_usd_per_1k_tokens: 0.01}
    premium: {max_usd_per_1k_tokens: 0.05}
${extra}`;

let seq = 0;
function row(ts: number, provider: string, over: Partial<RequestLogRow> = {}): RequestLogRow {
  const model = provider === "c" ? "large" : "small";
  return {
    id: `r${String(++seq).padStart(8, "0")}`,
    ts,
    tenant: "team-x",
    operation: "chat",
    public_model: provider === "c" ? "big" : "chat",
    provider,
    upstream_model: model,
    fallback_depth: 0,
    is_overflow: false,
    panic: false,
    stream: false,
    status: 200,
    error_class: null,
    prompt_tokens: 100,
    completion_tokens: 50,
    cost_usd: provider === "b" ? 0.001 : provider === "c" ? 0.005 : null,
    ttfb_ms: 80,
    total_ms: 300,
    overhead_ms: 0.5 + (seq % 40) / 10,
    attempts: [{ attempt: 1, provider, deployment: `${provider}#0`, error_class: null, ms: 290 }],
    ...over,
  };
}
const failed = (status: number, error_class: string): Partial<RequestLogRow> => ({ status, error_class, prompt_tokens: null, completion_tokens: null, cost_usd: null, ttfb_ms: null });
const twoAttempts = (provider: string): Partial<RequestLogRow> => ({
  attempts: [
    { attempt: 1, provider: "a", deployment: "chat#0", error_class: "server_error", ms: 20 },
    { attempt: 2, provider, deployment: "chat#1", error_class: null, ms: 290 },
  ],
});

/**
 * 2,100 requests over the last 25 minutes: chat 500 on a and 500 on b (weights 1:1), big
 * 1,100 on c; 10 errors (a: three 429 and one 502, b and c: three 429 each) plus 3
 * cancelled; 40 fallbacks of which 39 answered; overhead 0.5-4.4 ms; 2% anonymous.
 * Before the window, 300 rows that would fail everything.
 */
function baseRows(now: number): RequestLogRow[] {
  const rows: RequestLogRow[] = [];
  const start = now - 25 * 60_000;
  const plan = [...Array(500).fill("a"), ...Array(500).fill("b"), ...Array(1100).fill("c")] as string[];
  plan.forEach((p, i) => rows.push(row(start + Math.floor((i * 25 * 60_000) / plan.length), p, i % 50 === 7 ? { tenant: "anonymous" } : {})));
  const errorsAt = (p: string, n: number, status = 429, cls = "rate_limited") => {
    const targets = rows.filter((r) => r.provider === p && r.status === 200 && r.attempts.length === 1 && r.tenant !== "anonymous");
    for (let k = 0; k < n; k++) Object.assign(targets[10 + k * 7]!, failed(status, cls));
  };
  errorsAt("a", 3);
  errorsAt("b", 3);
  errorsAt("c", 3);
  // 40 fallbacks (a failed, then b answered), spread over b's rows; one of them ended 502 on b.
  const bRows = rows.filter((r) => r.provider === "b" && r.status === 200);
  for (let k = 0; k < 40; k++) Object.assign(bRows[100 + k * 5]!, twoAttempts("b"));
  Object.assign(bRows[100]!, failed(502, "server_error"));
  // Cancelled requests: not errors, not in availability's denominator.
  for (let k = 0; k < 3; k++) Object.assign(rows[k * 300 + 1]!, failed(499, "cancelled"));
  // Before the window: all failures, all anonymous, slow.
  for (let k = 0; k < 300; k++) rows.push(row(now - 40 * 60_000 + k, "a", { ...failed(503, "server_error"), tenant: "anonymous", overhead_ms: 900 }));
  return rows;
}

/** vLLM scrapes every 10 s over the window: prefix-cache hits +90 per +100 queries, waiting 0..9. */
function history(now: number, opts: { hitsPerStep?: number; waiting?: (i: number) => number } = {}): UpstreamProviderHistory[] {
  const samples: UpstreamSample[] = [];
  for (let i = 0; i <= 150; i++) {
    samples.push({
      ts: now - 25 * 60_000 + i * 10_000,
      running: 4,
      waiting: opts.waiting ? opts.waiting(i) : i % 10,
      kvCacheUsage: 0.5,
      prefixCacheHits: 5000 + i * (opts.hitsPerStep ?? 90),
      prefixCacheQueries: 6000 + i * 100,
    });
  }
  // An old scrape before the window must not count.
  samples.unshift({ ts: now - 50 * 60_000, running: 0, waiting: 900, kvCacheUsage: 0, prefixCacheHits: 0, prefixCacheQueries: 4000 });
  return [{ provider: "v", type: "vllm", samples }];
}

interface Scenario {
  rows?: (rows: RequestLogRow[], now: number) => void;
  history?: (now: number) => UpstreamProviderHistory[];
  config?: string;
  /** Batches in the database: [status, when it reached it (ms)] each. */
  batches?: (now: number) => [BatchStatus, number][];
}

/** A batch row that reached `status` at `atMs` (its *_at column for that status); still running when in_progress. */
function batchRow(i: number, status: BatchStatus, atMs: number): BatchRow {
  const at = Math.floor(atMs / 1000);
  const column = { completed: "completed_at", failed: "failed_at", expired: "expired_at", cancelled: "cancelled_at" }[status as string];
  return {
    id: `batch_${String(i).padStart(24, "0")}`, tenant: "t", endpoint: "/v1/chat/completions", input_file_id: "file-000000000000000000000000", completion_window: "24h",
    window_s: 86400, profile: null, priority: 0, status, metadata: null, options: "{}", ending: null, errors: null, output_file_id: null, error_file_id: null,
    created_at: at - 60, in_progress_at: at - 60, expires_at: at + 86400, finalizing_at: null, completed_at: null, failed_at: null, expired_at: null,
    cancelling_at: null, cancelled_at: null, prompt_tokens: 0, completion_tokens: 0, request_total: 1, request_completed: 1, request_failed: 0, purged: 1,
    ...(column ? { [column]: at } : {}),
  };
}

/** A data folder with labgate.db (through RequestLog), upstream-metrics.json and labgate.yaml. */
function dataDir(s: Scenario = {}): { dir: string; configFile: string; now: number } {
  const dir = mkdtempSync(join(tmpdir(), "labgate-gate-"));
  dirs.push(dir);
  const now = Date.now();
  const rows = baseRows(now);
  s.rows?.(rows, now);
  const db = openDatabase(join(dir, "labgate.db"));
  const log = new RequestLog(db, { batchSize: 100_000 });
  for (const r of rows) log.append(r);
  log.flush();
  const batches = new BatchStore(db);
  (s.batches?.(now) ?? []).forEach(([status, at], i) => batches.insertBatch(batchRow(i, status, at)));
  db.close();
  writeFileSync(join(dir, "upstream-metrics.json"), JSON.stringify({ written_at: now, providers: (s.history ?? history)(now) }));
  const configFile = join(dir, "labgate.yaml");
  writeFileSync(configFile, s.config ?? CONFIG());
  return { dir, configFile, now };
}

async function runGate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await gateCommand(args, {}, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

async function gate(s: Scenario = {}): Promise<{ code: number; out: string; report: GateReport; lines: Map<string, string> }> {
  const { dir, configFile } = dataDir(s);
  const table = await runGate(["--data-dir", dir, "--config", configFile]);
  expect(table.err).toBe("");
  const json = await runGate(["--data-dir", dir, "--config", configFile, "--json"]);
  expect(json.code).toBe(table.code);
  const report = JSON.parse(json.out) as GateReport;
  const lines = new Map<string, string>();
  for (const c of report.criteria) {
    const line = table.out.split("\n").find((l) => l.includes(`  ${c.title}  `));
    expect(line, c.title).toBeDefined();
    lines.set(c.id, line!);
  }
  return { code: table.code, out: table.out, report, lines };
}

const ALL = [
  "availability",
  "error_rate",
  "fallback_success",
  "routing_p95",
  "provider_error_share",
  "provider_traffic_share",
  "weight_share",
  "cost_per_1k_tokens",
  "attribution",
  "kv_cache_hit_rate",
  "queue_depth_p95",
  "batch_success",
];

describe("labgate gate over the request log", () => {
  it("passes a healthy window: every criterion PASS with its value and threshold (batches: NO DATA), exit 0", async () => {
    const { code, out, report, lines } = await gate();
    expect(report.criteria.map((c) => c.id)).toEqual(ALL);
    const verdicts = Object.fromEntries(report.criteria.map((c) => [c.id, c.verdict]));
    expect(verdicts).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, "PASS"])), batch_success: "NO DATA" });
    expect(code).toBe(0);
    expect(report.verdict).toBe("PASS");
    const by = Object.fromEntries(report.criteria.map((c) => [c.id, c]));
    // 2,100 rows less 3 cancelled; one 502 (a fallback that failed). The rows before the window do not count.
    expect(by.availability!.value).toBeCloseTo(1 - 1 / 2097, 12);
    expect(lines.get("availability")).toMatch(/^PASS\s+availability\s+99\.952%\s+>= 99\.9%$/);
    expect(by.error_rate!.value).toBeCloseTo(10 / 2100, 12);
    expect(lines.get("error_rate")).toMatch(/^PASS\s+error rate\s+0\.476%\s+<= 1%$/);
    expect(by.fallback_success!.value).toBeCloseTo(39 / 40, 12);
    expect(lines.get("routing_p95")).toMatch(/^PASS\s+routing p95 \(labgate overhead\)\s+4\.\d+ ms\s+<= 150 ms$/);
    expect(by.provider_error_share).toMatchObject({ subject: "b" });
    expect(by.provider_error_share!.value).toBeCloseTo(4 / 10, 12); // b: three 429 and the 502
    expect(by.provider_traffic_share).toMatchObject({ subject: "c" });
    expect(by.provider_traffic_share!.value).toBeCloseTo(1100 / 2100, 12);
    expect(by.weight_share!.value).toBe(0);
    expect(by.cost_per_1k_tokens!.items!.map((i) => [i.subject, i.value, i.threshold])).toEqual(
      expect.arrayContaining([
        ["standard", expect.closeTo(0.001 / 0.15, 12), 0.01],
        ["premium", expect.closeTo(0.005 / 0.15, 12), 0.05],
      ]),
    );
    expect(by.attribution!.value).toBeCloseTo(1 - 42 / 2100, 12);
    expect(by.kv_cache_hit_rate!.value).toBeCloseTo(0.9, 12);
    expect(lines.get("kv_cache_hit_rate")).toMatch(/^PASS\s+vLLM KV-cache hit rate\s+90%\s+>= 80%$/);
    expect(by.queue_depth_p95).toMatchObject({ value: 9, subject: "v" });
    expect(lines.get("batch_success")).toMatch(/^NO DATA\s+batch success\s+-\s+>= 95%\s+no batches/);
    expect(out.trimEnd().split("\n").at(-1)).toBe("PASS: 0 of 12 criteria failed, 1 without data");
  });

  const only: [string, Scenario][] = [
    [
      "availability",
      // Five of the 429s become 502s: availability 99.71%, the error count unchanged.
      { rows: (rows) => rows.filter((r) => r.status === 429).slice(0, 5).forEach((r) => Object.assign(r, failed(502, "server_error"))) },
    ],
    [
      "error_rate",
      // 30 more 429s, ten per provider: 40 of 2,100.
      {
        rows: (rows, now) => {
          for (const p of ["a", "b", "c"]) rows.filter((r) => r.provider === p && r.status === 200 && r.ts > now - 30 * 60_000 && r.attempts.length === 1).slice(200, 210).forEach((r) => Object.assign(r, failed(429, "rate_limited")));
        },
      },
    ],
    [
      "fallback_success",
      // Six fallbacks end in a 429 (two per provider): 33 of 40 answered.
      {
        rows: (rows) => {
          const fb = rows.filter((r) => r.attempts.length > 1 && r.status === 200);
          fb.slice(0, 6).forEach((r, k) => Object.assign(r, { provider: ["a", "c", "c", "a", "a", "c"][k] }, failed(429, "rate_limited")));
        },
      },
    ],
    ["routing_p95", { rows: (rows) => rows.forEach((r, i) => i % 10 === 0 && (r.overhead_ms = 200)) }],
    ["provider_error_share", { rows: (rows) => rows.filter((r) => r.error_class && r.status !== 499).forEach((r) => (r.provider = "c")) }],
    [
      "provider_traffic_share",
      {
        rows: (rows, now) => {
          for (let k = 0; k < 8000; k++) rows.push(row(now - 20 * 60_000 + k, "c"));
        },
      },
    ],
    [
      "weight_share",
      // 100 of b's answered requests went to a: 600 / 400 against weights 1:1.
      { rows: (rows) => rows.filter((r) => r.provider === "b" && r.status === 200 && r.attempts.length === 1).slice(0, 100).forEach((r) => Object.assign(r, { provider: "a", cost_usd: null })) },
    ],
    ["cost_per_1k_tokens", { rows: (rows) => rows.filter((r) => r.provider === "b" && r.cost_usd).forEach((r) => (r.cost_usd = 0.003)) }],
    ["attribution", { rows: (rows) => rows.forEach((r, i) => i % 10 === 3 && (r.tenant = "anonymous")) }],
    ["kv_cache_hit_rate", { history: (now) => history(now, { hitsPerStep: 50 }) }],
    ["queue_depth_p95", { history: (now) => history(now, { waiting: (i) => (i % 10 === 0 ? 5 : 150) }) }],
  ];

  it.each(only)("fails on %s alone: its line FAIL, every other line not, exit 1", async (id, scenario) => {
    const { code, out, report, lines } = await gate(scenario);
    const failedIds = report.criteria.filter((c) => c.verdict === "FAIL").map((c) => c.id);
    expect(failedIds, out).toEqual([id]);
    expect(lines.get(id)).toMatch(/^FAIL  /);
    for (const [other, line] of lines) if (other !== id) expect(line, out).not.toMatch(/^FAIL/);
    expect(code).toBe(1);
    expect(report.verdict).toBe("FAIL");
    expect(out.trimEnd().split("\n").at(-1)).toMatch(/^FAIL: 1 of 12 criteria failed/);
  });

  it("batch success over the batch queue's rows: batches that ended in the window, completed ones the success; before the window or still running not counted", async () => {
    const min = 60_000;
    const outside = (now: number): [BatchStatus, number][] => [
      ["failed", now - 2 * 60 * min],
      ["cancelled", now - 31 * min],
      ["in_progress", now - 5 * min],
    ];
    const ok = await gate({ batches: (now) => [...Array.from({ length: 19 }, (_, i): [BatchStatus, number] => ["completed", now - (i + 1) * min]), ["expired", now - 3 * min], ...outside(now)] });
    expect(ok.report.criteria.find((c) => c.id === "batch_success")).toMatchObject({ verdict: "PASS", value: 19 / 20 });
    expect(ok.lines.get("batch_success")).toMatch(/^PASS\s+batch success\s+95%\s+>= 95%$/);
    expect(ok.code).toBe(0);

    const bad = await gate({ batches: (now) => [...Array.from({ length: 18 }, (_, i): [BatchStatus, number] => ["completed", now - (i + 1) * min]), ["failed", now - 2 * min], ["cancelled", now - 4 * min], ...outside(now)] });
    expect(bad.report.criteria.filter((c) => c.verdict === "FAIL").map((c) => c.id)).toEqual(["batch_success"]);
    expect(bad.lines.get("batch_success")).toMatch(/^FAIL\s+batch success\s+90%\s+>= 95%$/);
    expect(bad.code).toBe(1);
  });

  it("a provider in gate.maintenance may carry the traffic; thresholds come from gate.thresholds", async () => {
    const heavy: Scenario["rows"] = (rows, now) => {
      for (let k = 0; k < 8000; k++) rows.push(row(now - 20 * 60_000 + k, "c"));
    };
    const exempt = await gate({ rows: heavy, config: CONFIG("gate: {maintenance: [c]}") });
    expect(exempt.lines.get("provider_traffic_share"), exempt.out).toMatch(/^PASS .*in maintenance: c$/);
    expect(exempt.code).toBe(0);
    const strict = await gate({ config: CONFIG("gate: {thresholds: {availability: 0.99999, routing_p95_ms: 2}}") });
    expect(strict.lines.get("availability")).toMatch(/^FAIL\s+availability\s+99\.952%\s+>= 99\.999%$/);
    expect(strict.lines.get("routing_p95")).toMatch(/^FAIL .*<= 2 ms$/);
    expect(strict.code).toBe(1);
  });

  it("NO DATA is not a failure: an empty window, no vLLM provider, no budgets", async () => {
    const { dir } = dataDir({ rows: (rows) => rows.splice(0, rows.length), history: () => [] });
    const config = join(dir, "plain.yaml");
    writeFileSync(config, "providers:\n  a: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}\n");
    const r = await runGate(["--data-dir", dir, "--config", config, "--json"]);
    const report = JSON.parse(r.out) as GateReport;
    expect(report.criteria.every((c) => c.verdict === "NO DATA")).toBe(true);
    expect(report.criteria.find((c) => c.id === "kv_cache_hit_rate")!.detail).toBe("no vLLM provider");
    expect(report.criteria.find((c) => c.id === "cost_per_1k_tokens")!.detail).toMatch(/no budgets/);
    expect(r.code).toBe(0);
  });

  it("--window picks the rows: a 10-minute window sees only its own", async () => {
    const { dir, configFile, now } = dataDir();
    const parsed = parseConfigText(CONFIG(), "t.yaml");
    if (!parsed.ok) throw new Error("config");
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(join(dir, "labgate.db"), { readonly: true });
    const inTen = (db.prepare("SELECT COUNT(*) AS n FROM request_log WHERE ts >= ? AND ts <= ?").get(now - 600_000, now + 1000) as { n: number }).n;
    const report = evaluateGate({ config: parsed.config, windowMs: 600_000, db, now: now + 1000 });
    db.close();
    expect(inTen).toBeGreaterThan(0);
    expect(inTen).toBeLessThan(2100);
    const r = await runGate(["--data-dir", dir, "--config", configFile, "--window", "10m", "--json"]);
    expect((JSON.parse(r.out) as GateReport).window).toBe("10m");
    expect(report.criteria.find((c) => c.id === "attribution")!.value).not.toBeNull();
  });

  it("counts a vLLM restart (counters back to zero) as Prometheus does, and reads an in-memory history (GET /admin/gate)", async () => {
    const { dir, now } = dataDir();
    const parsed = parseConfigText(CONFIG(), "t.yaml");
    if (!parsed.ok) throw new Error("config");
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(join(dir, "labgate.db"), { readonly: true });
    const s = (ts: number, hits: number, queries: number): UpstreamSample => ({ ts, running: 1, waiting: 1, kvCacheUsage: 0.1, prefixCacheHits: hits, prefixCacheQueries: queries });
    // 1000 -> 1800 of 1000 -> 2000 queries, a restart, then 0 -> 100 of 0 -> 1000: 900 hits in 2000 queries.
    const samples = [s(now - 60_000, 1000, 1000), s(now - 50_000, 1800, 2000), s(now - 40_000, 0, 0), s(now - 30_000, 100, 1000)];
    const report = evaluateGate({ config: parsed.config, windowMs: 1_800_000, db, now, upstream: { history: (since) => [{ provider: "v", type: "vllm", samples: samples.filter((x) => x.ts >= since) }] } });
    db.close();
    const kv = report.criteria.find((c) => c.id === "kv_cache_hit_rate")!;
    expect(kv.value).toBeCloseTo(900 / 2000, 12);
    expect(kv.verdict).toBe("FAIL");
  });

  it("says what is wrong with its arguments (exit 2)", async () => {
    expect((await runGate(["--window", "soon"])).err).toMatch(/--window must be a duration/);
    expect((await runGate(["--window", "soon"])).code).toBe(2);
    expect((await runGate(["--bogus"])).code).toBe(2);
    const { dir } = dataDir();
    const missing = await runGate(["--data-dir", join(dir, "nowhere"), "--config", join(dir, "labgate.yaml")]);
    expect(missing).toMatchObject({ code: 2 });
    expect(missing.err).toMatch(/no request log at/);
    expect(parseWindow("30m")).toBe(1_800_000);
    expect(parseWindow("1.5h")).toBe(5_400_000);
    expect(parseWindow("0s")).toBeUndefined();
    expect(formatValue(0.9995, "percent")).toBe("99.95%");
    expect(formatValue(0.999995, "percent")).toBe("99.999%");
  });

  it("`node bin/labgate.js gate` exits 1 when a criterion fails (a deployment script stops on it)", async () => {
    const { dir, configFile } = dataDir({ rows: (rows) => rows.forEach((r, i) => i % 10 === 3 && (r.tenant = "anonymous")) });
    const run = promisify(execFile);
    const err = await run(process.execPath, [join(ROOT, "bin/labgate.js"), "gate", "--data-dir", dir, "--config", configFile], { cwd: ROOT, env: { PATH: process.env.PATH ?? "" } }).then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toMatch(/^FAIL\s+attribution\s+88%\s+>= 95%$/m);
    expect(err?.stdout).toMatch(/^PASS\s+availability /m);
  }, 30_000);
});
