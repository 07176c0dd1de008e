// Gateway throughput and latency on loopback, non-streaming and streaming, for
// three targets in one run:
//   direct  — the fast mock upstream called directly (the floor)
//   bare    — fastify + undici pass-through to the mock (the practical ceiling for a Node gateway)
//   labgate — the full labgate path (auth hook, validation, routing, breaker,
//             metrics, request log to a temp SQLite file) to the same mock
// Every server runs in its own process; see bench/README.md for the CPU layout.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_MODEL } from "./lib/labgate-target.ts";
import { loadRun, mergeLoad, mergeSequential, requestBody, sequentialRun, verifyAnswer, type LoadResult, type Mode, type SequentialResult } from "./lib/load.ts";
import { cpuSnapshot, cpuUsage, waitForQuiet, type CpuUsage } from "./lib/cpu.ts";
import { canPin, pinProcess, startServer, type ServerHandle } from "./lib/spawn.ts";
import { fixed, int, mib, table, verdict } from "./lib/table.ts";

export type TargetName = "direct" | "bare" | "labgate";
export const TARGETS: TargetName[] = ["direct", "bare", "labgate"];
export const MODES: Mode[] = ["json", "stream"];

/** labgate rps at 50 connections over bare's. */
export const GOAL_RPS_RATIO = 0.7;
/** µs labgate may add to the p50 at one connection, over calling the upstream directly. */
export const GOAL_ADDED_US = 400;
/** Above this much CPU (% of one core) used by processes outside the bench during a run, the run is flagged as noisy. */
export const NOISY_FOREIGN_PCT = 15;

export interface GatewayBenchOptions {
  connections: number;
  warmupS: number;
  durationS: number;
  seqWarmupMs: number;
  seqMs: number;
  seqMaxCount: number;
  /** "pinned": the server under test alone on CPU 1, load generator + mock on CPU 0; "shared": no pinning. */
  layout: "pinned" | "shared";
  /** When set, bare and labgate are CPU-profiled during each measured 50-connection run: <profileDir>/<target>-<mode>.cpuprofile. */
  profileDir?: string;
  targets: TargetName[];
  modes: Mode[];
  /** Total of those waits over the whole run. */
  quietBudgetMs: number;
  /** The measured time is split into this many rounds; the targets take turns each round. */
  rounds: number;
  /** Longest wait for other processes on the machine to calm down before each measurement. */
  quietWaitMs: number;
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: GatewayBenchOptions = {
  connections: 50,
  // A Node server's JIT needs several seconds of load before it settles (labgate
  // measured 300+ µs of CPU per request in its first 5 s, ~200 after 10 s); a
  // gateway runs for hours, so the measurement starts once every target is warm.
  warmupS: 10,
  durationS: 10,
  seqWarmupMs: 500,
  seqMs: 3000,
  seqMaxCount: 50_000,
  layout: "pinned",
  targets: TARGETS,
  modes: MODES,
  quietWaitMs: 15_000,
  quietBudgetMs: 45_000,
  rounds: 4,
  log: (line) => console.error(line),
};

export interface TargetResult {
  target: TargetName;
  mode: Mode;
  many: LoadResult;
  one: SequentialResult;
  /** CPU use during the measured 50-connection run. */
  cpu?: CpuUsage;
  profileFile?: string;
  /** Requests answered while the profile ran. */
  profileRequests?: number;
  /** labgate only: RSS of the labgate process after the load of this mode. */
  rss?: number;
  rssIdle?: number;
  /** labgate only: request-log rows written with status 200 for this mode, and the count the clients saw. */
  logRows?: { written: number; expectedAtLeast: number; expectedAtMost: number; ok: boolean; avgOverheadMs?: number };
}

export interface GatewayReport {
  options: Omit<GatewayBenchOptions, "log">;
  layoutNote: string;
  results: TargetResult[];
  profileDir?: string;
}

interface Running {
  target: TargetName;
  url: string;
  /** The process under test (for direct: the mock itself). */
  sut: ServerHandle;
}

interface Fleet {
  targets: Running[];
  /** Every process of the bench (orchestrator, mocks, servers), for CPU accounting. */
  pids: number[];
  stop(): Promise<void>;
}

/**
 * Starts every target at once so the rounds can alternate between them:
 * a mock as the "direct" target, and one upstream mock shared by bare and labgate.
 */
async function startFleet(targets: TargetName[], pin: boolean, log: (l: string) => void): Promise<Fleet> {
  const genCpu = pin ? "0" : undefined;
  const sutCpu = pin ? "1" : undefined;
  const handles: ServerHandle[] = [];
  const stop = async (): Promise<void> => {
    // Servers before the upstream mock they talk to.
    for (const h of [...handles].reverse()) await h.close().catch(() => {});
  };
  try {
    const running: Running[] = [];
    let upstream: ServerHandle | undefined;
    for (const target of targets) {
      log(`gateway bench: starting ${target}`);
      if (target === "direct") {
        const mock = await startServer("mock", { cpus: sutCpu });
        handles.push(mock);
        running.push({ target, url: mock.url, sut: mock });
        continue;
      }
      if (!upstream) {
        upstream = await startServer("mock", { cpus: genCpu });
        handles.unshift(upstream);
      }
      const sut = await startServer(target, { upstream: upstream.url, cpus: sutCpu });
      handles.push(sut);
      running.push({ target, url: sut.url, sut });
    }
    return { targets: running, pids: [process.pid, ...handles.map((h) => h.pid)], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function combineCpu(parts: { cpu: CpuUsage; seconds: number }[]): CpuUsage | undefined {
  const total = parts.reduce((a, p) => a + p.seconds, 0);
  if (parts.length === 0 || total <= 0) return undefined;
  const w = (f: (c: CpuUsage) => number): number => parts.reduce((a, p) => a + f(p.cpu) * p.seconds, 0) / total;
  return { sutPct: w((c) => c.sutPct), benchPct: w((c) => c.benchPct), foreignPct: w((c) => c.foreignPct) };
}

export async function benchGateway(partial: Partial<GatewayBenchOptions> = {}): Promise<GatewayReport> {
  const opts: GatewayBenchOptions = { ...DEFAULT_OPTIONS, ...partial };
  const log = opts.log;
  let pin = opts.layout === "pinned";
  let layoutNote: string;
  if (pin && !canPin()) {
    pin = false;
    layoutNote = "shared (taskset unavailable, nothing pinned): load generator, mocks and servers under test scheduled freely on all cores";
  } else if (pin) {
    pinProcess(process.pid, "0");
    layoutNote =
      "pinned: the server under test on CPU 1 (only one is loaded at a time); load generator (this process) and the upstream mock on CPU 0; direct: a mock alone on CPU 1 is the server under test";
  } else {
    layoutNote = "shared: load generator, mocks and servers under test each in its own process, scheduled freely on all cores";
  }
  if (opts.profileDir) mkdirSync(opts.profileDir, { recursive: true });
  log(`gateway bench: layout ${layoutNote}`);
  const rounds = Math.max(1, Math.floor(opts.rounds));
  // All the waiting for a quiet machine, over the whole run, is bounded too.
  let quietBudgetMs = opts.quietBudgetMs;

  const results: TargetResult[] = [];
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet(opts.targets, pin, log);
    const { pids } = fleet;
    const labgate = fleet.targets.find((t) => t.target === "labgate");
    const idle = labgate ? await labgate.sut.stats() : undefined;
    for (const mode of opts.modes) {
      const bodyFor = (t: Running): string => requestBody(mode, t.target === "labgate" ? BENCH_MODEL : "mock-model");
      // Never measure a broken path: every answer must be complete and correct first.
      for (const t of fleet.targets) {
        const headers = await verifyAnswer(t.url, mode, bodyFor(t));
        if (t.target === "labgate" && headers["x-routed-provider"] !== "mock") {
          throw new Error(`labgate (${mode}): x-routed-provider is ${headers["x-routed-provider"]}, expected mock`);
        }
      }
      const before = labgate ? await labgate.sut.stats() : undefined;
      const many = new Map<TargetName, LoadResult[]>();
      const cpuParts = new Map<TargetName, { cpu: CpuUsage; seconds: number }[]>();
      const profiled = new Map<TargetName, { file: string; requests: number }>();
      // Many connections: the targets take turns, round after round, so that drifts in machine load hit them alike.
      for (let round = 0; round < rounds; round++) {
        for (const t of fleet.targets) {
          // Other work on a shared machine disturbs everything: wait a little for it to calm down.
          const quiet = await waitForQuiet(pids, { thresholdPct: NOISY_FOREIGN_PCT, maxWaitMs: Math.min(opts.quietWaitMs, quietBudgetMs) });
          quietBudgetMs = Math.max(0, quietBudgetMs - quiet.waitedMs);
          if (quiet.waitedMs > 1000) log(`gateway bench: waited ${(quiet.waitedMs / 1000).toFixed(0)} s for the machine to calm down (other load ${quiet.foreignPct.toFixed(0)}% of a core)`);
          const warmupS = round === 0 ? opts.warmupS : Math.min(1, opts.warmupS);
          const durationS = opts.durationS / rounds;
          log(`gateway bench: ${mode} round ${round + 1}/${rounds}: ${t.target}, ${opts.connections} connections, ${warmupS}s warm-up + ${durationS}s`);
          const profileFile = opts.profileDir && t.target !== "direct" ? join(opts.profileDir, `${t.target}-${mode}.cpuprofile`) : undefined;
          let snap0 = cpuSnapshot(pids);
          const r = await loadRun(t.url, bodyFor(t), {
            connections: opts.connections,
            warmupS,
            durationS,
            beforeMeasure: async () => {
              if (profileFile && round === 0) await t.sut.profileStart();
              snap0 = cpuSnapshot(pids);
            },
            afterMeasure: async () => {
              const cpu = cpuUsage(snap0, cpuSnapshot(pids), t.sut.pid);
              (cpuParts.get(t.target) ?? cpuParts.set(t.target, []).get(t.target)!).push({ cpu, seconds: durationS });
              if (cpu.foreignPct > NOISY_FOREIGN_PCT) {
                log(`gateway bench: WARNING ${t.target} ${mode}: other processes used ${cpu.foreignPct.toFixed(0)}% of a core during the run; numbers are disturbed`);
              }
              if (profileFile && round === rounds - 1) await t.sut.profileStop(profileFile);
            },
          });
          (many.get(t.target) ?? many.set(t.target, []).get(t.target)!).push(r);
          if (profileFile) {
            // Requests the profile window saw: the measured ones, plus the warm-ups of the later rounds.
            const p = profiled.get(t.target) ?? { file: profileFile, requests: 0 };
            p.requests += r.ok + (round > 0 ? r.warmupOk : 0);
            profiled.set(t.target, p);
          }
        }
      }
      // One connection, also in turns.
      const one = new Map<TargetName, SequentialResult[]>();
      for (let round = 0; round < rounds; round++) {
        for (const t of fleet.targets) {
          log(`gateway bench: ${mode} round ${round + 1}/${rounds}: ${t.target}, 1 connection, ${Math.round(opts.seqMs / rounds)} ms`);
          const r = await sequentialRun(t.url, bodyFor(t), { warmupMs: opts.seqWarmupMs, durationMs: opts.seqMs / rounds, maxCount: opts.seqMaxCount });
          (one.get(t.target) ?? one.set(t.target, []).get(t.target)!).push(r);
        }
      }
      for (const t of fleet.targets) {
        const m = mergeLoad(many.get(t.target)!);
        const o = mergeSequential(one.get(t.target)!);
        const prof = profiled.get(t.target);
        const r: TargetResult = { target: t.target, mode, many: m, one: o, cpu: combineCpu(cpuParts.get(t.target) ?? []), profileFile: prof?.file, profileRequests: prof?.requests };
        if (t.target === "labgate" && before?.logRows) {
          const after = await t.sut.stats();
          r.rss = after.rss;
          r.rssIdle = idle?.rss;
          const key = mode === "stream" ? "okStream" : "okJson";
          const written = (after.logRows?.[key] ?? 0) - before.logRows[key];
          // Every 200 a client saw must have a row; a request cut off when a run stops may add one per connection per run.
          const expectedAtLeast = m.warmupOk + m.ok + o.count + o.warmupCount;
          const expectedAtMost = expectedAtLeast + 2 * rounds * opts.connections;
          const avgOverheadMs = mode === "stream" ? after.logRows?.avgOverheadStreamMs : after.logRows?.avgOverheadJsonMs;
          r.logRows = { written, expectedAtLeast, expectedAtMost, ok: written >= expectedAtLeast && written <= expectedAtMost, avgOverheadMs };
        }
        results.push(r);
      }
    }
  } finally {
    await fleet?.stop();
    if (pin) pinProcess(process.pid, "0-1023");
  }
  return { options: { ...opts, log: undefined } as unknown as Omit<GatewayBenchOptions, "log">, layoutNote, results, profileDir: opts.profileDir };
}

export interface ModeSummary {
  mode: Mode;
  rows: TargetResult[];
  rpsRatio: number;
  labgateAddedUs: number;
  bareAddedUs: number;
  ratioMet: boolean;
  addedMet: boolean;
  logOk: boolean;
  clean: boolean;
}

export function summarize(report: GatewayReport, mode: Mode): ModeSummary | undefined {
  const rows = report.results.filter((r) => r.mode === mode);
  const by = (t: TargetName): TargetResult | undefined => rows.find((r) => r.target === t);
  const direct = by("direct");
  const bare = by("bare");
  const lab = by("labgate");
  if (rows.length === 0) return undefined;
  const rpsRatio = lab && bare ? lab.many.rps / bare.many.rps : NaN;
  const labgateAddedUs = lab && direct ? lab.one.p50Us - direct.one.p50Us : NaN;
  const bareAddedUs = bare && direct ? bare.one.p50Us - direct.one.p50Us : NaN;
  return {
    mode,
    rows,
    rpsRatio,
    labgateAddedUs,
    bareAddedUs,
    ratioMet: rpsRatio >= GOAL_RPS_RATIO,
    addedMet: labgateAddedUs <= GOAL_ADDED_US,
    logOk: lab?.logRows?.ok ?? false,
    clean: rows.every((r) => r.many.errors === 0 && r.many.non2xx === 0),
  };
}

export function formatGatewayReport(report: GatewayReport): string {
  const out: string[] = [];
  const o = report.options;
  out.push(`Layout: ${report.layoutNote}.`);
  out.push(
    `Many connections: autocannon, ${o.connections} connections, ${o.durationS} s measured per target in ${o.rounds} round(s) taken in turns ` +
      `(${o.warmupS} s warm-up before the first, 1 s before the others; p50/p99 are the mean of the rounds). ` +
      `One connection: sequential undici client, ${o.seqMs} ms per target in the same rounds, hrtime per request.`,
  );
  for (const mode of o.modes) {
    const s = summarize(report, mode);
    if (!s) continue;
    const direct = s.rows.find((r) => r.target === "direct");
    out.push("");
    out.push(mode === "json" ? "== Non-streaming: POST /v1/chat/completions ==" : "== Streaming: POST /v1/chat/completions, stream: true (8 chunks + usage + [DONE]) ==");
    out.push(
      table(
        [
          "target",
          `req/s @${o.connections}`,
          `p50 @${o.connections} ms`,
          `p99 @${o.connections} ms`,
          "req/s @1",
          "p50 @1 µs",
          "p99 @1 µs",
          "added p50 @1 µs",
          "errors",
          "CPU sut/bench/other %",
          "sut CPU µs/req",
          "RSS after load",
        ],
        s.rows.map((r) => [
          r.target,
          int(r.many.rps),
          fixed(r.many.p50Ms, 0),
          fixed(r.many.p99Ms, 0),
          int(r.one.rps),
          int(r.one.p50Us),
          int(r.one.p99Us),
          r.target === "direct" || !direct ? "–" : int(r.one.p50Us - direct.one.p50Us),
          String(r.many.errors + r.many.non2xx),
          r.cpu ? `${fixed(r.cpu.sutPct, 0)}/${fixed(r.cpu.benchPct, 0)}/${fixed(r.cpu.foreignPct, 0)}` : "–",
          r.cpu ? int((r.cpu.sutPct / 100 / r.many.rps) * 1e6) : "–",
          r.rss !== undefined ? `${mib(r.rss)} (idle ${r.rssIdle !== undefined ? mib(r.rssIdle) : "?"})` : "–",
        ]),
      ),
    );
    const lab = s.rows.find((r) => r.target === "labgate");
    const checks: string[][] = [];
    if (Number.isFinite(s.rpsRatio)) checks.push([`labgate / bare req/s @${o.connections}`, fixed(s.rpsRatio, 2), `>= ${GOAL_RPS_RATIO}`, verdict(s.ratioMet)]);
    if (Number.isFinite(s.labgateAddedUs)) {
      checks.push([
        "labgate added p50 @1 (vs direct)",
        `${int(s.labgateAddedUs)} µs`,
        `<= ${GOAL_ADDED_US} µs (bare adds ${Number.isFinite(s.bareAddedUs) ? int(s.bareAddedUs) : "?"} µs)`,
        verdict(s.addedMet),
      ]);
    }
    if (lab?.logRows) {
      const lr = lab.logRows;
      checks.push(["request log rows (status 200)", int(lr.written), `${int(lr.expectedAtLeast)}..${int(lr.expectedAtMost)}`, lr.ok ? "ok" : "WRONG"]);
      if (lr.avgOverheadMs !== undefined) checks.push(["labgate's own overhead_ms (avg, request log)", `${fixed(lr.avgOverheadMs * 1000, 0)} µs`, "informative", ""]);
    }
    checks.push(["answers verified before load; no errors under load", s.clean ? "yes" : "NO", "yes", s.clean ? "ok" : "WRONG"]);
    const noisiest = Math.max(0, ...s.rows.map((r) => r.cpu?.foreignPct ?? 0));
    checks.push([
      "machine quiet (CPU of processes outside the bench)",
      `${fixed(noisiest, 0)}% of a core`,
      `< ${NOISY_FOREIGN_PCT}%`,
      noisiest < NOISY_FOREIGN_PCT ? "ok" : "NOISY: rerun",
    ]);
    out.push("");
    out.push(table(["goal", "measured", "target", "result"], checks));
  }
  return out.join("\n");
}

// Standalone: node bench/gateway.ts
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const report = await benchGateway({ layout: (process.env.BENCH_LAYOUT as "pinned" | "shared" | undefined) ?? DEFAULT_OPTIONS.layout, profileDir: process.env.BENCH_PROFILE });
  console.log(formatGatewayReport(report));
}
