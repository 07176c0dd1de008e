// The local batch queue under load (issue 15 item 9), against `labgate serve` as a user runs
// it (the real CLI in its own process, its SQLite in a temp folder) in front of the fast
// mock upstream (its own process):
//   1. a 10,000-item batch: items per second from create to completed, and labgate's CPU
//      per item (utime + stime of the gateway process from /proc over that time: upload
//      checking excluded, validation, the items, the result files and the status polls
//      included) — with 2 items in flight (what the defaults give: batch.provider_concurrency
//      2) and with 16;
//   2. interactive TTFB (streaming chat, paced requests on one connection) without a batch,
//      then right after while a big batch runs at each of those: p50/p95 and the ratio of
//      the p95s (target: within 20%, for the defaults).
// Standalone: node bench/batch.ts (BENCH_QUICK=1 for a short run).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "undici";
import { cpuSnapshot, cpuUsage } from "./lib/cpu.ts";
import { quantile } from "./lib/load.ts";
import { startServer, type ServerHandle } from "./lib/spawn.ts";
import { fixed, int, table, verdict } from "./lib/table.ts";

const BIN = fileURLToPath(new URL("../bin/labgate.js", import.meta.url));
/** p95 TTFB with a batch running over without: at most this. */
export const GOAL_TTFB_RATIO = 1.2;
const CLK_TCK = 100;

export interface BatchBenchOptions {
  items: number;
  /** Items of the batch that runs during the interactive measurement (cancelled at its end). */
  backgroundItems: number;
  /** Interactive requests per phase, one every `intervalMs` on one connection. */
  interactive: number;
  intervalMs: number;
  /** Batch items in flight, one measurement each (a profile per value; the provider's batch cap is the largest). The first is the goal's. */
  concurrencies: number[];
  log: (line: string) => void;
}

export const DEFAULT_BATCH_OPTIONS: BatchBenchOptions = {
  items: 10_000,
  backgroundItems: 20_000,
  interactive: 400,
  intervalMs: 20,
  concurrencies: [2, 16],
  log: (line) => console.error(line),
};

export interface BatchRun {
  concurrency: number;
  items: number;
  seconds: number;
  itemsPerS: number;
  cpuUsPerItem: number;
  /** Of cpuUsPerItem, the part spent in the kernel (stime: socket and file system calls). */
  kernelUsPerItem: number;
  /** % of one core the gateway used during the batch. */
  gatewayPct: number;
  /** % of one core used by other processes on the machine meanwhile (noise). */
  foreignPct: number;
  outputLines: number;
  /** Interactive TTFB just before the batch phase, with no batch. */
  idle: TtfbStats;
  /** Interactive TTFB while a batch runs at this concurrency. */
  busy: TtfbStats;
  /** Other processes' CPU during the noisier of the two TTFB phases (% of a core). */
  ttfbForeignPct: number;
  /** The gateway's and other processes' CPU (% of a core) during each TTFB phase: what the batch added, and the machine's noise. */
  idleCpu: { gatewayPct: number; foreignPct: number };
  busyCpu: { gatewayPct: number; foreignPct: number };
  /** Batch items that ended while the busy phase was measured. */
  busyItems: number;
  /** busy p95 / idle p95 */
  ttfbRatio: number;
}

export interface BatchReport {
  options: Omit<BatchBenchOptions, "log">;
  runs: BatchRun[];
}

export interface TtfbStats {
  count: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

export async function benchBatch(partial: Partial<BatchBenchOptions> = {}): Promise<BatchReport> {
  const o: BatchBenchOptions = { ...DEFAULT_BATCH_OPTIONS, ...partial };
  const log = o.log;
  const dir = mkdtempSync(join(tmpdir(), "labgate-bench-batch-"));
  let mock: ServerHandle | undefined;
  let gw: ChildProcess | undefined;
  try {
    mock = await startServer("mock");
    const port = await freePort();
    const config = join(dir, "labgate.yaml");
    const cap = Math.max(...o.concurrencies);
    writeFileSync(
      config,
      `server: {host: 127.0.0.1, port: ${port}}
providers: {mock: {type: llamacpp, base_url: "${mock.url}"}}
models: {bench: {deployments: [{provider: mock, model: mock-model}]}}
batch: {provider_concurrency: ${cap}}
batch_profiles: {${o.concurrencies.map((c) => `c${c}: {concurrency: ${c}}`).join(", ")}}
`,
    );
    log(`batch bench: starting labgate serve on port ${port}`);
    gw = spawn(process.execPath, [BIN, "serve", "--config", config, "--data-dir", join(dir, "data")], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, LABGATE_LOG_LEVEL: "warn" },
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForHealth(base, gw);
    const gwPid = gw.pid!;
    const pids = [gwPid, process.pid, mock.pid];

    const client = new Client(base, { pipelining: 1, keepAliveTimeout: 60_000 });
    try {
      await ttfbRun(client, 50, o.intervalMs); // warm-up
      const runs: BatchRun[] = [];
      for (const concurrency of o.concurrencies) {
        // 1. Interactive TTFB without a batch, then right after while a big batch runs, so that
        //    the pair sees the same machine. Each phase starts on a quiet gateway: an ended
        //    batch's clean-up (its items deleted in steps) is not counted as "a batch running".
        const bgFile = await upload(base, o.backgroundItems, `bg${concurrency}`);
        await waitGatewayQuiet(gwPid);
        log(`batch bench: interactive TTFB, no batch (${o.interactive} requests, one every ${o.intervalMs} ms)`);
        let snap = cpuSnapshot(pids);
        const idle = await ttfbRun(client, o.interactive, o.intervalMs);
        const idleUsage = cpuUsage(snap, cpuSnapshot(pids), gwPid);
        const bg = await createBatch(base, bgFile, `c${concurrency}`);
        await waitFor(async () => (await getBatch(base, bg)).request_counts.completed > 0, 30_000);
        const before = (await getBatch(base, bg)).request_counts.completed;
        log(`batch bench: interactive TTFB while ${bg} runs, ${concurrency} in flight`);
        snap = cpuSnapshot(pids);
        const busy = await ttfbRun(client, o.interactive, o.intervalMs);
        const busyUsage = cpuUsage(snap, cpuSnapshot(pids), gwPid);
        const after = await getBatch(base, bg);
        if (after.status !== "in_progress") log(`batch bench: WARNING the background batch was ${after.status} before the interactive phase ended; make backgroundItems larger`);
        await fetch(`${base}/v1/batches/${bg}/cancel`, { method: "POST" });
        await waitForEnd(base, bg, 100);

        // 2. The 10,000-item batch.
        const fileId = await upload(base, o.items, `c${concurrency}`);
        await waitGatewayQuiet(gwPid);
        const snap0 = cpuSnapshot(pids);
        const kernel0 = kernelJiffies(gwPid);
        const t0 = performance.now();
        const id = await createBatch(base, fileId, `c${concurrency}`);
        log(`batch bench: ${o.items} items in ${id}, ${concurrency} in flight`);
        const done = await waitForEnd(base, id, 100);
        const seconds = (performance.now() - t0) / 1000;
        const snap1 = cpuSnapshot(pids);
        const kernelUsPerItem = (((kernelJiffies(gwPid) - kernel0) / CLK_TCK) * 1e6) / o.items;
        if (done.status !== "completed" || done.request_counts.completed !== o.items) throw new Error(`batch ${id} ended ${done.status} with ${JSON.stringify(done.request_counts)}`);
        const gwJiffies = snap1.pids.get(gwPid)! - snap0.pids.get(gwPid)!;
        const usage = cpuUsage(snap0, snap1, gwPid);
        const output = await (await fetch(`${base}/v1/files/${done.output_file_id}/content`)).text();
        const outputLines = output.split("\n").filter(Boolean).length;
        if (outputLines !== o.items) throw new Error(`output file has ${outputLines} lines, expected ${o.items}`);
        runs.push({
          concurrency,
          items: o.items,
          seconds,
          itemsPerS: o.items / seconds,
          cpuUsPerItem: ((gwJiffies / CLK_TCK) * 1e6) / o.items,
          kernelUsPerItem,
          gatewayPct: usage.sutPct,
          foreignPct: usage.foreignPct,
          outputLines,
          idle,
          busy,
          busyItems: after.request_counts.completed - before,
          ttfbRatio: busy.p95Ms / idle.p95Ms,
          ttfbForeignPct: Math.max(idleUsage.foreignPct, busyUsage.foreignPct),
          idleCpu: { gatewayPct: idleUsage.sutPct, foreignPct: idleUsage.foreignPct },
          busyCpu: { gatewayPct: busyUsage.sutPct, foreignPct: busyUsage.foreignPct },
        });
      }
      return { options: { ...o, log: undefined } as unknown as Omit<BatchBenchOptions, "log">, runs };
    } finally {
      await client.close();
    }
  } finally {
    if (gw && gw.exitCode === null) {
      const gone = new Promise((r) => gw!.once("exit", r));
      gw.kill("SIGTERM");
      const t = setTimeout(() => gw!.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(t);
    }
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BatchObject {
  id: string;
  status: string;
  output_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
}

async function upload(base: string, items: number, tag: string): Promise<string> {
  const lines: string[] = [];
  for (let i = 0; i < items; i++) {
    lines.push(JSON.stringify({ custom_id: `${tag}-${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "bench", messages: [{ role: "user", content: `item ${i}` }], max_tokens: 16 } }));
  }
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([lines.join("\n") + "\n"]), `${tag}.jsonl`);
  const res = await fetch(`${base}/v1/files`, { method: "POST", body: form });
  if (!res.ok) throw new Error(`upload: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function createBatch(base: string, fileId: string, profile: string): Promise<string> {
  const res = await fetch(`${base}/v1/batches`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile } }),
  });
  if (!res.ok) throw new Error(`create: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function getBatch(base: string, id: string): Promise<BatchObject> {
  return (await (await fetch(`${base}/v1/batches/${id}`)).json()) as BatchObject;
}

async function waitForEnd(base: string, id: string, everyMs: number): Promise<BatchObject> {
  const deadline = performance.now() + 10 * 60_000;
  for (;;) {
    const b = await getBatch(base, id);
    if (["completed", "failed", "expired", "cancelled"].includes(b.status)) return b;
    if (performance.now() > deadline) throw new Error(`batch ${id} still ${b.status} after 10 minutes`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Until the gateway uses under 6% of a core for a second (an ended batch's clean-up is done), at most 30 s. */
async function waitGatewayQuiet(pid: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  let calm = 0;
  while (calm < 2 && performance.now() < deadline) {
    const a = cpuSnapshot([pid]);
    await new Promise((r) => setTimeout(r, 500));
    const used = cpuSnapshot([pid]).pids.get(pid)! - a.pids.get(pid)!;
    calm = used <= 3 ? calm + 1 : 0;
  }
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForHealth(base: string, child: ChildProcess): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`labgate serve exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error("labgate serve did not answer /health in 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const STREAM_BODY = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "interactive" }], stream: true });

/** `count` streaming requests, one every `intervalMs` (or right after the previous one when it took longer); TTFB = send to first body byte. */
async function ttfbRun(client: Client, count: number, intervalMs: number): Promise<TtfbStats> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const res = await client.request({ path: "/v1/chat/completions", method: "POST", headers: { "content-type": "application/json" }, body: STREAM_BODY });
    let first: number | undefined;
    for await (const _chunk of res.body) first ??= performance.now();
    if (res.statusCode !== 200 || first === undefined) throw new Error(`interactive request: status ${res.statusCode}`);
    samples.push(first - start);
    const wait = intervalMs - (performance.now() - start);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const sorted = Float64Array.from(samples).sort();
  return { count: samples.length, p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), maxMs: sorted.at(-1)! };
}

/** A process's stime (jiffies): the kernel's part of its CPU. */
function kernelJiffies(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function formatBatchReport(r: BatchReport): string {
  const o = r.options;
  const out: string[] = [];
  out.push(
    `labgate serve (own process, SQLite in a temp folder) in front of the fast mock upstream (own process); nothing pinned. ` +
      `Interactive: streaming chat on one connection, one request every ${o.intervalMs} ms, ${o.interactive} per phase; TTFB = send to first body byte.`,
  );
  out.push("");
  out.push(
    table(
      ["batch", "in flight", "seconds", "items/s", "labgate CPU µs/item", "of which kernel", "labgate CPU % of a core", "other processes %", "output lines"],
      r.runs.map((x) => [
        `${int(x.items)} chat items`,
        int(x.concurrency),
        fixed(x.seconds, 1),
        int(x.itemsPerS),
        int(x.cpuUsPerItem),
        int(x.kernelUsPerItem),
        fixed(x.gatewayPct, 0),
        fixed(x.foreignPct, 0),
        int(x.outputLines),
      ]),
    ),
  );
  out.push("");
  out.push(
    table(
      ["interactive TTFB", "requests", "p50 ms", "p95 ms", "max ms", "p95 / no batch", "labgate CPU %", "other processes %"],
      r.runs.flatMap((x) => [
        [
          `no batch (before the ${x.concurrency}-in-flight phase)`,
          int(x.idle.count),
          fixed(x.idle.p50Ms, 2),
          fixed(x.idle.p95Ms, 2),
          fixed(x.idle.maxMs, 1),
          "1.00",
          fixed(x.idleCpu.gatewayPct, 0),
          fixed(x.idleCpu.foreignPct, 0),
        ],
        [
          `batch running, ${x.concurrency} in flight (${int(x.busyItems)} items ended meanwhile)`,
          int(x.busy.count),
          fixed(x.busy.p50Ms, 2),
          fixed(x.busy.p95Ms, 2),
          fixed(x.busy.maxMs, 1),
          fixed(x.ttfbRatio, 2),
          fixed(x.busyCpu.gatewayPct, 0),
          fixed(x.busyCpu.foreignPct, 0),
        ],
      ]),
    ),
  );
  const goal = r.runs[0];
  if (goal) {
    out.push("");
    out.push(
      table(
        ["goal", "measured", "target", "result"],
        [[`p95 TTFB with a batch (${goal.concurrency} in flight) / without`, fixed(goal.ttfbRatio, 2), `<= ${GOAL_TTFB_RATIO}`, verdict(goal.ttfbRatio <= GOAL_TTFB_RATIO)]],
      ),
    );
  }
  return out.join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.env.BENCH_QUICK === "1";
  const report = await benchBatch(quick ? { items: 2000, backgroundItems: 6000, interactive: 150 } : {});
  console.log(formatBatchReport(report));
}
