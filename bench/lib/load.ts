// Load generation: autocannon for the many-connection runs, and a sequential
// one-connection client with microsecond timing (autocannon's latency histogram
// has 1 ms resolution, too coarse for the latency a gateway adds).
import { createRequire } from "node:module";
import { Client } from "undici";
import { ANSWER_TEXT } from "./mock-upstream.ts";

const require = createRequire(import.meta.url);

interface AutocannonOptions {
  url: string;
  connections: number;
  duration?: number;
  amount?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  pipelining?: number;
  timeout?: number;
}
interface AutocannonStat {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  total?: number;
}
export interface AutocannonResult {
  requests: AutocannonStat & { total: number };
  latency: AutocannonStat;
  throughput: AutocannonStat;
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  "2xx": number;
}
type Autocannon = (opts: AutocannonOptions) => Promise<AutocannonResult>;
const autocannon = require("autocannon") as Autocannon;

export type Mode = "json" | "stream";

/** The request every target gets. include_usage so the three targets return the same events. */
export function requestBody(mode: Mode, model: string): string {
  return JSON.stringify({
    model,
    messages: [{ role: "user", content: "Say hello in a few words." }],
    max_tokens: 16,
    ...(mode === "stream" ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
}

export const CHAT_PATH = "/v1/chat/completions";
const HEADERS = { "content-type": "application/json" };

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses with a 2xx status counted by the load generator. */
  ok: number;
  errors: number;
  non2xx: number;
  /** 2xx responses during the warm-up (not measured, but served). */
  warmupOk: number;
  /** Measured seconds. */
  durationS: number;
}

/** Combines measured rounds: req/s over the summed time; p50/p99 are the mean of the rounds' values. */
export function mergeLoad(rounds: LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number): number => rounds.reduce((a, r) => a + f(r), 0);
  const durationS = sum((r) => r.durationS);
  return {
    rps: sum((r) => r.ok) / durationS,
    p50Ms: sum((r) => r.p50Ms) / rounds.length,
    p99Ms: sum((r) => r.p99Ms) / rounds.length,
    ok: sum((r) => r.ok),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    warmupOk: sum((r) => r.warmupOk),
    durationS,
  };
}

/** Many connections with autocannon: warm-up, then the measured run. */
export async function loadRun(
  baseUrl: string,
  body: string,
  opts: { connections: number; warmupS: number; durationS: number; beforeMeasure?: () => Promise<void>; afterMeasure?: () => Promise<void> },
): Promise<LoadResult> {
  const common = { url: baseUrl + CHAT_PATH, method: "POST", headers: HEADERS, body, connections: opts.connections, timeout: 10 };
  let warmupOk = 0;
  if (opts.warmupS > 0) {
    const w = await autocannon({ ...common, duration: opts.warmupS });
    warmupOk = w["2xx"];
    if (w.errors > 0 || w.non2xx > 0) throw new Error(`warm-up against ${baseUrl}: ${w.errors} errors, ${w.non2xx} non-2xx`);
  }
  await opts.beforeMeasure?.();
  const r = await autocannon({ ...common, duration: opts.durationS });
  await opts.afterMeasure?.();
  return {
    rps: r["2xx"] / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    ok: r["2xx"],
    errors: r.errors,
    non2xx: r.non2xx,
    warmupOk,
    durationS: r.duration,
  };
}

export interface SequentialResult {
  warmupCount: number;
  count: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  /** Measured seconds. */
  elapsedS: number;
  /** Every timed request, µs. */
  samples: Float64Array;
}

/** Combines measured rounds of the one-connection client: percentiles over all samples. */
export function mergeSequential(rounds: SequentialResult[]): SequentialResult {
  const n = rounds.reduce((a, r) => a + r.samples.length, 0);
  const all = new Float64Array(n);
  let off = 0;
  for (const r of rounds) {
    all.set(r.samples, off);
    off += r.samples.length;
  }
  all.sort();
  const elapsedS = rounds.reduce((a, r) => a + r.elapsedS, 0);
  return {
    warmupCount: rounds.reduce((a, r) => a + r.warmupCount, 0),
    count: n,
    rps: n / elapsedS,
    p50Us: quantile(all, 0.5),
    p99Us: quantile(all, 0.99),
    meanUs: all.reduce((a, b) => a + b, 0) / n,
    elapsedS,
    samples: all,
  };
}

/**
 * One connection, one request at a time, timed with hrtime from sending the
 * request to the last byte of the body. Bounded by both count and time.
 */
export async function sequentialRun(baseUrl: string, body: string, opts: { warmupMs: number; durationMs: number; maxCount: number }): Promise<SequentialResult> {
  const client = new Client(baseUrl, { pipelining: 1, keepAliveTimeout: 60_000 });
  const once = async (): Promise<void> => {
    const res = await client.request({ path: CHAT_PATH, method: "POST", headers: HEADERS, body });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`${baseUrl}: status ${res.statusCode}`);
  };
  try {
    const warmEnd = performance.now() + opts.warmupMs;
    let warmupCount = 0;
    for (; warmupCount < opts.maxCount && performance.now() < warmEnd; warmupCount++) await once();
    const samples: number[] = [];
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(opts.durationMs * 1e6));
    let t = start;
    while (samples.length < opts.maxCount && t < deadline) {
      await once();
      const t2 = process.hrtime.bigint();
      samples.push(Number(t2 - t) / 1000);
      t = t2;
    }
    const elapsedS = Number(t - start) / 1e9;
    const sorted = Float64Array.from(samples).sort();
    return {
      warmupCount,
      count: samples.length,
      rps: samples.length / elapsedS,
      p50Us: quantile(sorted, 0.5),
      p99Us: quantile(sorted, 0.99),
      meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
      elapsedS,
      samples: sorted,
    };
  } finally {
    await client.close();
  }
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Checks a target answers correctly before it is measured: status 200, the
 * right content type, the full answer text (JSON content, or the joined deltas
 * of a stream that ends with [DONE]). Returns the response headers.
 */
export async function verifyAnswer(baseUrl: string, mode: Mode, body: string): Promise<Record<string, string>> {
  const res = await fetch(baseUrl + CHAT_PATH, { method: "POST", headers: HEADERS, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const where = `${baseUrl} (${mode})`;
  if (res.status !== 200) throw new Error(`${where}: status ${res.status}: ${text.slice(0, 300)}`);
  const ct = res.headers.get("content-type") ?? "";
  if (mode === "json") {
    if (!ct.includes("application/json")) throw new Error(`${where}: content-type ${ct}`);
    const j = JSON.parse(text) as { choices?: { message?: { content?: string } }[]; usage?: unknown };
    const content = j.choices?.[0]?.message?.content;
    if (content !== ANSWER_TEXT) throw new Error(`${where}: content ${JSON.stringify(content)} != ${JSON.stringify(ANSWER_TEXT)}`);
    if (!j.usage) throw new Error(`${where}: no usage`);
  } else {
    if (!ct.includes("text/event-stream")) throw new Error(`${where}: content-type ${ct}`);
    const events = text
      .split(/\n\n/)
      .map((e) => e.trim())
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice(6));
    if (events.at(-1) !== "[DONE]") throw new Error(`${where}: stream does not end with [DONE]`);
    let content = "";
    let sawUsage = false;
    for (const e of events.slice(0, -1)) {
      const c = JSON.parse(e) as { choices?: { delta?: { content?: string | null } }[]; usage?: unknown };
      content += c.choices?.[0]?.delta?.content ?? "";
      if (c.usage) sawUsage = true;
    }
    if (content !== ANSWER_TEXT) throw new Error(`${where}: streamed content ${JSON.stringify(content)} != ${JSON.stringify(ANSWER_TEXT)}`);
    if (!sawUsage) throw new Error(`${where}: stream has no usage chunk although include_usage was asked`);
  }
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    headers[k] = v;
  });
  return headers;
}
