// `npm run bench`: every benchmark in one run, on loopback, printed as tables.
//   1. routing decision micro-benchmark (bench/route-decision.ts)
//   2. gateway: direct mock vs bare pass-through vs labgate, non-streaming and streaming (bench/gateway.ts)
//   3. idle memory of `labgate serve`: one provider vs the default config vs bare node (bench/memory.ts)
//   4. embedded engine (bench/embedded.ts, when present)
//   5. analytics on a 1,000,000-row request log, and the gateway serving while it runs (bench/analytics.ts)
//   6. the batch queue: a 10,000-item batch (items/s, CPU per item) and interactive TTFB beside a batch (bench/batch.ts)
// Environment knobs (all optional):
//   BENCH_QUICK=1          short runs (1 s warm-up, 4 s load, 2 s one-connection) for a smoke test
//   BENCH_DURATION=<s>     measured seconds at 50 connections (default 10)
//   BENCH_ROUNDS=<n>       split the measured time into n rounds, targets taking turns (default 4)
//   BENCH_LAYOUT=pinned|shared   CPU layout of the gateway bench (default pinned, see bench/README.md)
//   BENCH_PROFILE=<dir>    run labgate with --cpu-prof, profile written to <dir>
//   BENCH_ONLY=route,gateway,memory,embedded,analytics,batch   run a subset
//   BENCH_TARGETS=direct,bare,labgate   BENCH_MODES=json,stream   subsets of the gateway bench
//   BENCH_JSON=<file>      also write the raw results as JSON
import { existsSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MODES, TARGETS, benchGateway, formatGatewayReport, summarize, type GatewayBenchOptions, type GatewayReport } from "./gateway.ts";
import { profileSummary } from "./lib/profile.ts";
import { benchMemory, formatMemoryReport, type MemoryReport } from "./memory.ts";
import { benchAnalytics, formatAnalyticsReport, type AnalyticsReport } from "./analytics.ts";
import { benchBatch, formatBatchReport, type BatchReport } from "./batch.ts";
import { table } from "./lib/table.ts";
import { benchRouteDecision, formatRouteDecisionReport, type RouteDecisionReport } from "./route-decision.ts";

interface EmbeddedRow {
  name: string;
  value: number;
  unit: string;
}

const env = process.env;

const only = new Set((env.BENCH_ONLY ?? "route,gateway,memory,embedded,analytics,batch").split(",").map((s) => s.trim()));
const quick = env.BENCH_QUICK === "1";
const started = performance.now();
let failed = false;

function section(title: string): void {
  console.log("");
  console.log(`### ${title}`);
  console.log("");
}

const cpu = cpus();
console.log(`labgate bench — node ${process.version}, ${cpu.length} CPU (${cpu[0]?.model.trim() ?? "?"}), ${new Date().toISOString()}`);

const raw: { route?: RouteDecisionReport; gateway?: GatewayReport; memory?: MemoryReport; embedded?: EmbeddedRow[]; analytics?: AnalyticsReport; batch?: BatchReport } = {};

if (only.has("route")) {
  section("Routing decision (50 deployments, one group)");
  try {
    raw.route = await benchRouteDecision();
    console.log(formatRouteDecisionReport(raw.route));
  } catch (err) {
    failed = true;
    console.log(`route-decision bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

if (only.has("gateway")) {
  section("Gateway on loopback: direct mock vs bare pass-through vs labgate");
  const opts: Partial<GatewayBenchOptions> = {
    layout: env.BENCH_LAYOUT === "shared" ? "shared" : "pinned",
    profileDir: env.BENCH_PROFILE || undefined,
  };
  if (quick) Object.assign(opts, { warmupS: 1, durationS: 4, seqWarmupMs: 300, seqMs: 2000, quietBudgetMs: 5000 });
  if (env.BENCH_ROUNDS) opts.rounds = Math.max(1, Math.min(10, Number(env.BENCH_ROUNDS) || 4));
  if (env.BENCH_TARGETS) opts.targets = TARGETS.filter((t) => env.BENCH_TARGETS!.split(",").includes(t));
  if (env.BENCH_MODES) opts.modes = MODES.filter((m) => env.BENCH_MODES!.split(",").includes(m));
  if (env.BENCH_DURATION) opts.durationS = Math.max(1, Math.min(60, Number(env.BENCH_DURATION) || 10));
  try {
    raw.gateway = await benchGateway(opts);
    console.log(formatGatewayReport(raw.gateway));
    for (const mode of raw.gateway.options.modes) {
      const s = summarize(raw.gateway, mode);
      if (s && (!s.clean || !s.logOk)) failed = true;
    }
    for (const r of raw.gateway.results) {
      if (!r.profileFile || !existsSync(r.profileFile)) continue;
      console.log("");
      console.log(`CPU profile of ${r.target}, ${r.mode}, measured ${raw.gateway.options.connections}-connection run:`);
      console.log(profileSummary(r.profileFile, 20, { requests: r.profileRequests }));
    }
  } catch (err) {
    failed = true;
    console.log(`gateway bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

if (only.has("memory")) {
  section("Idle memory: labgate serve, one provider vs the default config, next to bare node");
  try {
    raw.memory = await benchMemory(quick ? { runs: 1, idleS: 3 } : {});
    console.log(formatMemoryReport(raw.memory));
  } catch (err) {
    failed = true;
    console.log(`memory bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

if (only.has("embedded")) {
  const file = fileURLToPath(new URL("./embedded.ts", import.meta.url));
  section("Embedded engine");
  if (!existsSync(file)) {
    console.log("(skipped: bench/embedded.ts is not there)");
  } else {
    try {
      const mod = (await import(pathToFileURL(file).href)) as { benchEmbedded?: () => Promise<EmbeddedRow[]> };
      if (typeof mod.benchEmbedded !== "function") throw new Error("bench/embedded.ts does not export benchEmbedded()");
      raw.embedded = await mod.benchEmbedded();
      console.log(table(["measure", "value", "unit"], raw.embedded.map((r) => [r.name, Number.isInteger(r.value) ? r.value : Number(r.value.toFixed(3)), r.unit])));
    } catch (err) {
      failed = true;
      console.log(`embedded bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
}

if (only.has("analytics")) {
  section("Analytics on a 1,000,000-row request log, and the gateway serving meanwhile");
  try {
    raw.analytics = await benchAnalytics(quick ? { rows: 200_000, runs: 3, loadS: 4, warmupS: 1 } : {});
    console.log(formatAnalyticsReport(raw.analytics));
  } catch (err) {
    failed = true;
    console.log(`analytics bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

if (only.has("batch")) {
  section("Batch queue: a 10,000-item batch, and interactive TTFB beside a running batch");
  try {
    raw.batch = await benchBatch(quick ? { items: 2000, backgroundItems: 6000, interactive: 150 } : {});
    console.log(formatBatchReport(raw.batch));
  } catch (err) {
    failed = true;
    console.log(`batch bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

if (env.BENCH_JSON) writeFileSync(env.BENCH_JSON, JSON.stringify(raw, null, 2));
console.log("");
console.log(`bench finished in ${((performance.now() - started) / 1000).toFixed(0)} s${failed ? " — SOME BENCHMARKS FAILED (see above)" : ""}`);
process.exit(failed ? 1 : 0);
