// Summarises a V8 .cpuprofile (from `node --cpu-prof`): where the non-idle time
// goes, by area (labgate modules, fastify, undici, node internals, GC...) and by
// function (self time, and inclusive time for labgate's own functions).
// Standalone: node bench/lib/profile.ts <file.cpuprofile | dir> [top]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { table } from "./table.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function newestProfile(pathOrDir: string): string {
  if (!statSync(pathOrDir).isDirectory()) return pathOrDir;
  const files = readdirSync(pathOrDir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => join(pathOrDir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (files.length === 0) throw new Error(`no .cpuprofile in ${pathOrDir}`);
  return files[0]!;
}

/** Which part of the stack a frame belongs to. */
export function areaOf(cf: CallFrame): string {
  const u = cf.url;
  if (!u) {
    if (cf.functionName === "(garbage collector)") return "GC";
    if (cf.functionName === "(program)") return "(program: V8/native, unattributed)";
    if (cf.functionName === "(idle)") return "(idle)";
    return "native / builtins";
  }
  const m = /\/(gateway\/[^?]+)$/.exec(u);
  if (m) return `labgate ${m[1]!.replace(/^gateway\//, "")}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) {
    const pkg = nm[1]!;
    if (pkg.startsWith("@fastify/") || pkg === "fastify" || pkg === "find-my-way" || pkg === "light-my-request" || pkg === "avvio") return "fastify (router, hooks, reply)";
    if (pkg === "fast-json-stringify" || pkg === "secure-json-parse") return "fastify (JSON parse/serialize)";
    if (pkg === "ajv" || pkg.startsWith("ajv")) return "ajv (validation)";
    return pkg;
  }
  if (u.startsWith("node:internal/deps/undici")) return "undici (fetch internals)";
  if (/node:internal\/(http|_http|streams\/|stream_base)|node:_http|node:http/.test(u)) return "node http / streams";
  if (/node:internal\/(process\/task_queues|timers)|node:timers/.test(u)) return "node timers / microtasks";
  if (u.startsWith("node:")) return "node other (" + u.replace(/^node:(internal\/)?/, "").split("/")[0] + ")";
  if (u.includes("/bench/")) return "bench harness";
  return "other";
}

export function profileSummary(pathOrDir: string, top = 25, opts: { requests?: number } = {}): string {
  const file = newestProfile(pathOrDir);
  const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Time per sample: the delta to the next sample (V8 convention: timeDeltas[i] precedes samples[i]).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i + 1] ?? 0;
    const id = prof.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    if (byId.get(id)!.callFrame.functionName === "(idle)") idle += us;
    else busy += us;
  }
  const key = (cf: CallFrame): string => `${cf.functionName || "(anonymous)"} ${shortUrl(cf.url)}${cf.url ? ":" + (cf.lineNumber + 1) : ""}`;

  const areas = new Map<string, number>();
  const selfFn = new Map<string, { us: number; area: string }>();
  const inclFn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === "(idle)") continue;
    const area = areaOf(node.callFrame);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const k = key(node.callFrame);
    const e = selfFn.get(k) ?? { us: 0, area };
    e.us += us;
    selfFn.set(k, e);
    // Inclusive: every distinct labgate function on the stack gets the sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (!/\/gateway\//.test(cf.url)) continue;
      const kk = key(cf);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclFn.set(kk, (inclFn.get(kk) ?? 0) + us);
    }
  }
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`;
  const out: string[] = [];
  out.push(`${file}: ${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle`);
  if (opts.requests) out.push(`${opts.requests.toLocaleString("en-US")} requests answered: ${(busy / opts.requests).toFixed(0)} µs of profiled CPU per request`);
  out.push("");
  out.push("Busy time by area (self time):");
  out.push(table(["area", "share", "ms"], [...areas].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([a, us]) => [a, pct(us), (us / 1000).toFixed(0)])));
  out.push("");
  out.push(`Top ${top} functions by self time:`);
  out.push(
    table(
      ["function", "area", "self"],
      [...selfFn]
        .sort((a, b) => b[1].us - a[1].us)
        .slice(0, top)
        .map(([k, e]) => [k, e.area, pct(e.us)]),
    ),
  );
  out.push("");
  out.push(`Top ${top} labgate functions by inclusive time (self + callees):`);
  out.push(
    table(
      ["function", "inclusive"],
      [...inclFn]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([k, us]) => [k, pct(us)]),
    ),
  );
  return out.join("\n");
}

function shortUrl(u: string): string {
  if (!u) return "";
  const g = /\/(gateway\/.+)$/.exec(u);
  if (g) return g[1]!;
  const nm = /node_modules\/(.+)$/.exec(u);
  if (nm) return nm[1]!;
  return u.replace(/^file:\/\/.*\/bench\//, "bench/");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = process.argv[2];
  if (!target) {
    console.error("usage: node bench/lib/profile.ts <file.cpuprofile | dir> [top]");
    process.exit(2);
  }
  console.log(profileSummary(target, Number(process.argv[3] ?? 25)));
}
