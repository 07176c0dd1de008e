// Analytics on a 1,000,000-row request log (BENCH_ONLY=analytics):
//   1. builds the log through the real RequestLog (batches of 500 in one transaction each,
//      the hourly rollups kept in the same transaction) over the last 7 days, and measures
//      what the rollups add to each batch;
//   2. times the five /admin/analytics queries through the worker thread (its own read-only
//      connection), median of several runs (round trip from the caller), for the default range
//      (24 h by hour), 7 days by hour and 7 days by day, against the 200 ms target;
//   3. runs labgate (its own process, on that database) under autocannon load, first alone
//      and then while a client asks the analytics routes one after another, and compares the
//      throughput and the gateway's event-loop delay.
// `node bench/analytics.ts` runs it alone; `node bench/analytics.ts --serve <upstream> <dataDir>`
// is the gateway process it starts.
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { AnalyticsClient } from "../gateway/store/analytics-client.ts";
import { ANALYTICS_QUERIES, type AnalyticsParams, type AnalyticsQuery } from "../gateway/store/analytics.ts";
import { openDatabase } from "../gateway/store/db.ts";
import { RequestLog, type RequestLogRow } from "../gateway/store/request-log.ts";
import { HOUR_MS, RollupWriter } from "../gateway/store/rollup.ts";
import { BENCH_MODEL, labgateConfigYaml } from "./lib/labgate-target.ts";
import { cpuSnapshot, cpuUsage, waitForQuiet, type CpuUsage } from "./lib/cpu.ts";
import { loadRun, requestBody, type LoadResult } from "./lib/load.ts";
import { startServer } from "./lib/spawn.ts";
import { fixed, int, mib, table, verdict } from "./lib/table.ts";
import { seededRandom as rng } from "../test/fixtures/random.ts";

/** Milliseconds each analytics query may take. */
export const GOAL_QUERY_MS = 200;
/** Gateway throughput while analytics queries run, over its throughput alone. */
export const GOAL_LOAD_RATIO = 0.9;

export interface AnalyticsBenchOptions {
  rows: number;
  days: number;
  batch: number;
  /** Runs per query and range (the median is reported). */
  runs: number;
  /** Seconds of load per phase (alone, with queries). */
  loadS: number;
  warmupS: number;
  connections: number;
  log: (line: string) => void;
}

export const DEFAULT_ANALYTICS_OPTIONS: AnalyticsBenchOptions = {
  rows: 1_000_000,
  days: 7,
  batch: 500,
  runs: 7,
  loadS: 8,
  warmupS: 3,
  connections: 50,
  log: (line) => console.error(line),
};

export interface QueryTiming {
  range: string;
  query: AnalyticsQuery;
  /** Time inside the worker (SQLite + shaping), median and max of the runs. */
  medianMs: number;
  maxMs: number;
  /** Round trip from the caller (posting to the worker, structured clone of the answer). */
  roundTripMedianMs: number;
  series: number;
  points: number;
}

export interface LoadPhase {
  name: string;
  load: LoadResult;
  /** The gateway process's event-loop delay during the phase (ms). */
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  /** Analytics requests answered over HTTP during the phase, and their latency. */
  queries: number;
  queryP50Ms?: number;
  queryMaxMs?: number;
  /** CPU during the measured run: the gateway process (its analytics worker included), and what other programs on the machine used. */
  cpu?: CpuUsage;
}

export interface AnalyticsReport {
  options: Omit<AnalyticsBenchOptions, "log">;
  build: { seconds: number; rowsPerS: number; batchMs: number; rollupMs: number; rollupShare: number; dbBytes: number; rollupRows: number; ttfbRows: number };
  timings: QueryTiming[];
  phases: LoadPhase[];
}

// A lab: two local servers, one cloud overflow on two tiers; 8 model groups, 25 keys.
const PROVIDERS = [
  { name: "ollama", tier: "local", share: 0.45, ttfb: 40 },
  { name: "llama-cpp", tier: "local", share: 0.3, ttfb: 25 },
  { name: "vllm", tier: "local", share: 0.15, ttfb: 60 },
  { name: "openai", tier: "premium", share: 0.1, ttfb: 350 },
];
const MODELS = ["llama3.1:8b", "qwen3:8b", "qwen3:32b", "gemma3:12b", "mistral:7b", "phi4", "deepseek-r1:14b", "gpt-4o-mini"];
const TENANTS = Array.from({ length: 25 }, (_, i) => `team-${i}`);
const ERRORS = ["server_error", "timeout", "rate_limited", "cancelled"];

function* generateRows(n: number, from: number, to: number): Generator<RequestLogRow> {
  const r = rng(42);
  const step = (to - from) / n;
  for (let i = 0; i < n; i++) {
    const x = r();
    let acc = 0;
    let p = PROVIDERS[PROVIDERS.length - 1]!;
    for (const q of PROVIDERS) {
      acc += q.share;
      if (x < acc) {
        p = q;
        break;
      }
    }
    const model = p.name === "openai" ? "gpt-4o-mini" : MODELS[Math.floor(r() * (MODELS.length - 1))]!;
    const fell = r() < 0.04;
    const first = fell ? PROVIDERS[Math.floor(r() * 3)]!.name : p.name;
    const failed = r() < 0.03;
    const errorClass = failed ? ERRORS[Math.floor(r() * ERRORS.length)]! : null;
    // Log-normal around the provider's typical TTFB.
    const g = Math.sqrt(-2 * Math.log(r() || 1e-9)) * Math.cos(2 * Math.PI * r());
    const ttfb = p.ttfb * Math.exp(0.6 * g);
    const prompt = failed ? null : 50 + Math.floor(r() * 1500);
    const completion = failed ? null : Math.floor(r() * 600);
    yield {
      id: `b${i.toString(36).padStart(8, "0")}`,
      ts: Math.floor(from + i * step),
      tenant: TENANTS[Math.floor(r() * r() * TENANTS.length)]!,
      operation: "chat",
      public_model: model,
      provider: p.name,
      upstream_model: model,
      fallback_depth: 0,
      is_overflow: p.tier === "premium",
      panic: false,
      stream: r() < 0.7,
      status: failed ? 502 : 200,
      error_class: errorClass,
      prompt_tokens: prompt,
      completion_tokens: completion,
      cost_usd: p.tier === "premium" && prompt !== null ? (prompt * 0.15 + completion! * 0.6) / 1e6 : 0,
      ttfb_ms: errorClass === "timeout" ? null : ttfb,
      total_ms: ttfb + 200,
      overhead_ms: 0.05,
      attempts: fell
        ? [
            { attempt: 1, provider: first, deployment: `${model}#1`, error_class: "server_error", ms: 5 },
            { attempt: 2, provider: p.name, deployment: `${model}#0`, error_class: errorClass, ms: ttfb + 200 },
          ]
        : [{ attempt: 1, provider: p.name, deployment: `${model}#0`, error_class: errorClass, ms: ttfb + 200 }],
      tier: p.tier,
    };
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

/** Writes the rows through RequestLog, batch by batch; times the batches and, on a second database, the rollup part alone. */
export function buildLog(file: string, opts: AnalyticsBenchOptions, now: number): AnalyticsReport["build"] {
  const db = openDatabase(file);
  const log = new RequestLog(db, { batchSize: Number.MAX_SAFE_INTEGER, flushIntervalMs: 3_600_000 });
  // The rollup part alone, on a scratch database, for the same batches.
  const scratchFile = file.replace(/labgate\.db$/, "rollup-only.db");
  const scratch = openDatabase(scratchFile);
  const rollupOnly = new RollupWriter(scratch);
  const addInTx = scratch.transaction((rows: RequestLogRow[]) => rollupOnly.add(rows));
  let batchMs = 0;
  let rollupMs = 0;
  let batches = 0;
  let pending: RequestLogRow[] = [];
  const started = performance.now();
  const flush = (): void => {
    for (const r of pending) log.append(r);
    const t0 = performance.now();
    log.flush();
    const t1 = performance.now();
    addInTx(pending);
    rollupMs += performance.now() - t1;
    batchMs += t1 - t0;
    batches++;
    pending = [];
  };
  let i = 0;
  for (const row of generateRows(opts.rows, now - opts.days * 24 * HOUR_MS, now)) {
    pending.push(row);
    if (pending.length >= opts.batch) flush();
    if (++i % 200_000 === 0) opts.log(`analytics bench: ${i} rows written`);
  }
  if (pending.length > 0) flush();
  const seconds = (performance.now() - started) / 1000;
  const rollupRows = db.prepare("SELECT count(*) FROM request_rollup").pluck().get() as number;
  const ttfbRows = db.prepare("SELECT count(*) FROM request_rollup_ttfb").pluck().get() as number;
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  scratch.close();
  rmSync(scratchFile, { force: true });
  rmSync(scratchFile + "-wal", { force: true });
  rmSync(scratchFile + "-shm", { force: true });
  return {
    seconds,
    rowsPerS: opts.rows / seconds,
    batchMs: batchMs / batches,
    rollupMs: rollupMs / batches,
    rollupShare: rollupMs / batchMs,
    dbBytes: statSync(file).size,
    rollupRows,
    ttfbRows,
  };
}

function ranges(now: number, days: number): { name: string; params: AnalyticsParams }[] {
  return [
    { name: "24 h by hour (default)", params: { from: now - 24 * HOUR_MS, to: now, bucket: "hour" } },
    { name: `${days} d by hour`, params: { from: now - days * 24 * HOUR_MS, to: now, bucket: "hour" } },
    { name: `${days} d by day`, params: { from: now - days * 24 * HOUR_MS, to: now, bucket: "day" } },
  ];
}

async function timeQueries(file: string, opts: AnalyticsBenchOptions, now: number): Promise<QueryTiming[]> {
  const db = openDatabase(file);
  const client = new AnalyticsClient(db);
  const out: QueryTiming[] = [];
  try {
    for (const range of ranges(now, opts.days)) {
      for (const query of ANALYTICS_QUERIES) {
        const inWorker: number[] = [];
        const roundTrip: number[] = [];
        let answer: { series: { points: unknown[] }[] } | undefined;
        for (let i = 0; i < opts.runs + 1; i++) {
          const before = client.workerMs;
          const t0 = performance.now();
          answer = (await client.query(query, range.params)) as { series: { points: unknown[] }[] };
          // The first run warms the worker (module load, page cache): not counted.
          if (i === 0) continue;
          roundTrip.push(performance.now() - t0);
          inWorker.push(client.workerMs - before);
        }
        out.push({
          range: range.name,
          query,
          medianMs: median(inWorker),
          maxMs: Math.max(...inWorker),
          roundTripMedianMs: median(roundTrip),
          series: answer!.series.length,
          points: answer!.series.reduce((a, s) => a + s.points.length, 0),
        });
        opts.log(`analytics bench: ${range.name} ${query}: ${median(roundTrip).toFixed(1)} ms`);
      }
    }
  } finally {
    await client.close();
    db.close();
  }
  return out;
}

type ServeMsg = { type: "ready"; url: string } | { type: "eld"; p50: number; p99: number; max: number } | { type: "error"; message: string };

async function startGatewayProcess(upstream: string, dataDir: string): Promise<{ url: string; child: ChildProcess; eld(reset?: boolean): Promise<{ p50: number; p99: number; max: number }>; close(): Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", upstream, dataDir], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const next = <T extends ServeMsg["type"]>(type: T): Promise<Extract<ServeMsg, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway process: no ${type} in 60 s`)), 60_000);
      const on = (m: ServeMsg): void => {
        if (m.type === "error") {
          clearTimeout(timer);
          child.off("message", on);
          reject(new Error(m.message));
        } else if (m.type === type) {
          clearTimeout(timer);
          child.off("message", on);
          resolve(m as Extract<ServeMsg, { type: T }>);
        }
      };
      child.on("message", on);
    });
  const ready = await next("ready");
  return {
    url: ready.url,
    child,
    async eld(reset = false) {
      const p = next("eld");
      child.send({ type: "eld", reset });
      return p;
    },
    async close() {
      const exited = new Promise((r) => child.once("exit", r));
      child.send({ type: "close" });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

async function loadPhases(dataDir: string, opts: AnalyticsBenchOptions, now: number): Promise<LoadPhase[]> {
  const mock = await startServer("mock");
  let gw: Awaited<ReturnType<typeof startGatewayProcess>> | undefined;
  try {
    gw = await startGatewayProcess(mock.url, dataDir);
    const body = requestBody("json", BENCH_MODEL);
    const phases: LoadPhase[] = [];
    const paths = ranges(now, opts.days).flatMap((r) =>
      ANALYTICS_QUERIES.map((q) => `/admin/analytics/${q}?from=${r.params.from}&to=${r.params.to}&bucket=${r.params.bucket}`),
    );
    // Warm the gateway (JIT) and its analytics worker first.
    for (const p of paths) await (await fetch(gw.url + p)).arrayBuffer();
    // A dashboard page: its five charts (the default range) asked together, every 2 s.
    const dashboard = ANALYTICS_QUERIES.map((q) => `/admin/analytics/${q}`);
    const modes = ["alone", "dashboard", "back-to-back"] as const;
    let quietBudgetMs = 40_000;
    for (const mode of [...modes, ...modes]) {
      let stop = false;
      const latencies: number[] = [];
      let loop: Promise<void> | undefined;
      const ask = async (path: string): Promise<void> => {
        const t0 = performance.now();
        const res = await fetch(gw!.url + path);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`analytics route answered ${res.status}`);
        latencies.push(performance.now() - t0);
      };
      const pids = [process.pid, mock.pid, gw.child.pid!];
      // Other work on a shared machine disturbs everything: wait a little for it to calm down.
      const quiet = await waitForQuiet(pids, { thresholdPct: 15, maxWaitMs: Math.min(10_000, quietBudgetMs) });
      quietBudgetMs = Math.max(0, quietBudgetMs - quiet.waitedMs);
      let cpuA: ReturnType<typeof cpuSnapshot> | undefined;
      let cpu: CpuUsage | undefined;
      const load = await loadRun(gw.url, body, {
        connections: opts.connections,
        warmupS: phases.length === 0 ? opts.warmupS : 1,
        durationS: opts.loadS,
        beforeMeasure: async () => {
          await gw!.eld(true);
          cpuA = cpuSnapshot(pids);
          if (mode === "back-to-back") {
            loop = (async () => {
              for (let i = 0; !stop; i++) await ask(paths[i % paths.length]!);
            })();
          } else if (mode === "dashboard") {
            loop = (async () => {
              while (!stop) {
                const t0 = performance.now();
                await Promise.all(dashboard.map(ask));
                const wait = 2000 - (performance.now() - t0);
                for (let w = 0; w < wait && !stop; w += 50) await new Promise((r) => setTimeout(r, 50));
              }
            })();
          }
        },
        afterMeasure: async () => {
          if (cpuA) cpu = cpuUsage(cpuA, cpuSnapshot(pids), gw!.child.pid);
          stop = true;
          await loop;
        },
      });
      const eld = await gw.eld();
      if (load.errors > 0 || load.non2xx > 0) throw new Error(`load: ${load.errors} errors, ${load.non2xx} non-2xx`);
      const name = mode === "alone" ? "alone" : mode === "dashboard" ? "dashboard: 5 charts every 2 s" : "queries back to back (all ranges)";
      phases.push({
        name,
        load,
        eldP50Ms: eld.p50,
        eldP99Ms: eld.p99,
        eldMaxMs: eld.max,
        queries: latencies.length,
        ...(latencies.length > 0 ? { queryP50Ms: median(latencies), queryMaxMs: Math.max(...latencies) } : {}),
        ...(cpu ? { cpu } : {}),
      });
      opts.log(`analytics bench: load, ${name}: ${load.rps.toFixed(0)} req/s, ${latencies.length} queries`);
    }
    return phases;
  } finally {
    await gw?.close();
    await mock.close();
  }
}

export async function benchAnalytics(partial: Partial<AnalyticsBenchOptions> = {}): Promise<AnalyticsReport> {
  const opts: AnalyticsBenchOptions = { ...DEFAULT_ANALYTICS_OPTIONS, ...partial };
  const dataDir = mkdtempSync(join(tmpdir(), "labgate-bench-analytics-"));
  try {
    const file = join(dataDir, "labgate.db");
    const now = Date.now();
    opts.log(`analytics bench: writing ${opts.rows} rows to ${file}`);
    const build = buildLog(file, opts, now);
    const timings = await timeQueries(file, opts, now);
    const phases = await loadPhases(dataDir, opts, now);
    const { log: _log, ...rest } = opts;
    return { options: rest, build, timings, phases };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function formatAnalyticsReport(r: AnalyticsReport): string {
  const b = r.build;
  const lines: string[] = [];
  lines.push(
    `${int(r.options.rows)} rows over ${r.options.days} days written through RequestLog in ${fixed(b.seconds)} s (${int(b.rowsPerS)} rows/s), ` +
      `file ${mib(b.dbBytes)}; rollups: ${int(b.rollupRows)} rows + ${int(b.ttfbRows)} TTFB bins`,
  );
  lines.push(
    `per ${r.options.batch}-row batch: ${fixed(b.batchMs, 2)} ms in all, of which the rollups ${fixed(b.rollupMs, 2)} ms (${fixed(b.rollupShare * 100)} %); the request path is unchanged`,
  );
  lines.push("");
  lines.push(
    table(
      ["range", "query", "median ms", "max ms", "round trip ms", "series", "points", `median < ${GOAL_QUERY_MS} ms`],
      r.timings.map((t) => [t.range, t.query, fixed(t.medianMs, 1), fixed(t.maxMs, 1), fixed(t.roundTripMedianMs, 1), t.series, t.points, verdict(t.roundTripMedianMs < GOAL_QUERY_MS)]),
    ),
  );
  lines.push("");
  lines.push(
    table(
      ["gateway (own process)", "req/s @" + r.options.connections, "p50 ms", "p99 ms", "loop delay p50/p99/max ms", "analytics answered", "their p50/max ms", "CPU gw/other %"],
      r.phases.map((p) => [
        p.name,
        int(p.load.rps),
        p.load.p50Ms,
        p.load.p99Ms,
        `${fixed(p.eldP50Ms, 1)} / ${fixed(p.eldP99Ms, 1)} / ${fixed(p.eldMaxMs, 1)}`,
        p.queries,
        p.queryP50Ms !== undefined ? `${fixed(p.queryP50Ms, 1)} / ${fixed(p.queryMaxMs!, 1)}` : "-",
        p.cpu ? `${fixed(p.cpu.sutPct, 0)} / ${fixed(p.cpu.foreignPct, 0)}${p.cpu.foreignPct > 15 ? " NOISY" : ""}` : "-",
      ]),
    ),
  );
  const rps = (ps: LoadPhase[]): number => ps.reduce((a, p) => a + p.load.ok, 0) / ps.reduce((a, p) => a + p.load.durationS, 0);
  const alone = r.phases.filter((p) => p.name === "alone");
  if (alone.length > 0) {
    lines.push("");
    for (const name of new Set(r.phases.map((p) => p.name).filter((n) => n !== "alone"))) {
      const ratio = rps(r.phases.filter((p) => p.name === name)) / rps(alone);
      const goal = name.startsWith("dashboard") ? ` (target >= ${GOAL_LOAD_RATIO}: ${verdict(ratio >= GOAL_LOAD_RATIO)})` : " (worst case: a second core's worth of queries on 2 cores)";
      lines.push(`throughput, ${name} / alone: ${fixed(ratio, 2)}${goal}`);
    }
  }
  return lines.join("\n");
}

/** The gateway process of the load phases: labgate on the bench's database, its event-loop delay on request. */
async function serveChild(upstream: string, dataDir: string): Promise<void> {
  const { buildGateway } = await import("../gateway/app.ts");
  const { parseConfigText } = await import("../gateway/config/load.ts");
  const parsed = parseConfigText(labgateConfigYaml(upstream), "bench.yaml");
  if (!parsed.ok) throw new Error("bench config rejected");
  const gateway = await buildGateway({ config: parsed.config, dataDir, modelsDir: join(dataDir, "models"), env: {}, logLevel: "silent", healthIntervalMs: 0 });
  const url = await gateway.listen("127.0.0.1", 0);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  process.on("disconnect", () => process.exit(0));
  process.on("message", (m: { type: string; reset?: boolean }) => {
    if (m.type === "eld") {
      process.send!({ type: "eld", p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 });
      if (m.reset) h.reset();
    } else if (m.type === "close") {
      void gateway.close().then(() => process.exit(0));
    }
  });
  process.send!({ type: "ready", url });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === "--serve") {
    serveChild(process.argv[3]!, process.argv[4]!).catch((err: unknown) => {
      process.send?.({ type: "error", message: String((err as Error)?.stack ?? err) });
      process.exit(1);
    });
  } else {
    const quick = process.env.BENCH_QUICK === "1";
    const report = await benchAnalytics(quick ? { rows: 200_000, runs: 3, loadS: 4, warmupS: 1 } : {});
    console.log(formatAnalyticsReport(report));
  }
}
