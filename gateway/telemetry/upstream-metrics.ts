// What the lab's inference servers say about themselves: a background scraper (off the
// request path) reads each vLLM provider's /metrics and each llama.cpp provider's
// /metrics (or /slots when it was started without --metrics), re-exports a few figures
// per provider in labgate's registry (upstream_*), and keeps a short history of them
// for the readiness gate (KV-cache hit rate and queue depth over a window).
//
// vLLM renamed series over versions; both names are read, the newer one first:
//   gpu_cache_usage_perc -> kv_cache_usage_perc, gpu_prefix_cache_{hits,queries}_total ->
//   prefix_cache_{hits,queries}_total, time_per_output_token_seconds -> inter_token_latency_seconds.
import { rename, writeFile, readFile } from "node:fs/promises";
import { Counter, Gauge, type Registry } from "prom-client";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { ProviderRuntime } from "../router/runtime.ts";
import { DEFAULT_BASE_URLS } from "../providers/factory.ts";

// ---------------------------------------------------------------- the text format

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus' text exposition format (0.0.4), sample lines only: comments, HELP and TYPE are skipped. */
export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]!] = l[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const v = m[3]!;
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
    if (Number.isNaN(value) && v !== "NaN") continue;
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

// ---------------------------------------------------------------- figures

export interface HistogramFigure {
  /** Cumulative counts by upper bound, ascending, +Inf last. */
  buckets: [number, number][];
  sum: number;
  count: number;
}

export interface UpstreamFigures {
  running: number | null;
  waiting: number | null;
  /** 0..1 */
  kvCacheUsage: number | null;
  /** Cumulative, in tokens. */
  prefixCacheHits: number | null;
  prefixCacheQueries: number | null;
  ttft: HistogramFigure | null;
  interTokenLatency: HistogramFigure | null;
  /** Where the figures came from. */
  source: "metrics" | "slots";
}

const sumOf = (samples: PromSample[], name: string): number | null => {
  const found = samples.filter((s) => s.name === name);
  return found.length === 0 ? null : found.reduce((a, s) => a + s.value, 0);
};
const meanOf = (samples: PromSample[], name: string): number | null => {
  const found = samples.filter((s) => s.name === name);
  return found.length === 0 ? null : found.reduce((a, s) => a + s.value, 0) / found.length;
};
const firstOf = (samples: PromSample[], f: (s: PromSample[], name: string) => number | null, ...names: string[]): number | null => {
  for (const n of names) {
    const v = f(samples, n);
    if (v !== null) return v;
  }
  return null;
};

/** A histogram summed over its label sets (engines, models), by `le`. */
function histogramOf(samples: PromSample[], base: string): HistogramFigure | null {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${base}_bucket` || s.labels.le === undefined) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  if (byLe.size === 0) return null;
  return {
    buckets: [...byLe].sort((a, b) => a[0] - b[0]),
    sum: sumOf(samples, `${base}_sum`) ?? 0,
    count: sumOf(samples, `${base}_count`) ?? byLe.get(Infinity) ?? 0,
  };
}

/** vLLM's /metrics: summed over engines and models (the KV-cache usage averaged), new names first, then the old ones. */
export function vllmFigures(samples: PromSample[]): UpstreamFigures {
  return {
    running: sumOf(samples, "vllm:num_requests_running"),
    waiting: sumOf(samples, "vllm:num_requests_waiting"),
    kvCacheUsage: firstOf(samples, meanOf, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prefixCacheHits: firstOf(samples, sumOf, "vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    prefixCacheQueries: firstOf(samples, sumOf, "vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    ttft: histogramOf(samples, "vllm:time_to_first_token_seconds"),
    interTokenLatency: histogramOf(samples, "vllm:inter_token_latency_seconds") ?? histogramOf(samples, "vllm:time_per_output_token_seconds"),
    source: "metrics",
  };
}

/**
 * llama-server's /metrics (started with --metrics): requests processing and deferred;
 * its prompt-cache reuse (prompt_tokens_cached_total, newer servers) as prefix-cache hits
 * over all prompt tokens (prompt_tokens_total counts the others). No KV-cache usage or TTFT.
 */
export function llamacppFigures(samples: PromSample[]): UpstreamFigures {
  const cached = sumOf(samples, "llamacpp:prompt_tokens_cached_total");
  const prompt = sumOf(samples, "llamacpp:prompt_tokens_total");
  return {
    running: sumOf(samples, "llamacpp:requests_processing"),
    waiting: sumOf(samples, "llamacpp:requests_deferred"),
    kvCacheUsage: null,
    prefixCacheHits: cached,
    prefixCacheQueries: cached === null ? null : cached + (prompt ?? 0),
    ttft: null,
    interTokenLatency: null,
    source: "metrics",
  };
}

/** llama-server's /slots (its /metrics answers 501 without --metrics): the slots busy now. */
export function llamacppSlotsFigures(slots: unknown): UpstreamFigures {
  const list = Array.isArray(slots) ? (slots as { is_processing?: unknown }[]) : [];
  return {
    running: list.filter((s) => s && s.is_processing === true).length,
    waiting: null,
    kvCacheUsage: null,
    prefixCacheHits: null,
    prefixCacheQueries: null,
    ttft: null,
    interTokenLatency: null,
    source: "slots",
  };
}

// ---------------------------------------------------------------- history

/** One scrape, as the gate reads it. */
export interface UpstreamSample {
  /** ms since the epoch */
  ts: number;
  running: number | null;
  waiting: number | null;
  kvCacheUsage: number | null;
  prefixCacheHits: number | null;
  prefixCacheQueries: number | null;
}

export interface UpstreamProviderHistory {
  provider: string;
  type: string;
  samples: UpstreamSample[];
}

/** What the gate reads: the scrapes of each scraped provider (vllm, llamacpp) since a time. */
export interface UpstreamHistory {
  history(sinceMs: number): UpstreamProviderHistory[];
}

/** The history a running gateway wrote to <data dir>/upstream-metrics.json (for `labgate gate`). */
export async function readUpstreamHistoryFile(file: string): Promise<UpstreamHistory | undefined> {
  let parsed: { providers?: UpstreamProviderHistory[] };
  try {
    parsed = JSON.parse(await readFile(file, "utf8")) as { providers?: UpstreamProviderHistory[] };
  } catch {
    return undefined;
  }
  const providers = Array.isArray(parsed.providers) ? parsed.providers : [];
  return { history: (since) => providers.map((p) => ({ ...p, samples: (p.samples ?? []).filter((s) => s.ts >= since) })) };
}

// ---------------------------------------------------------------- the scraper

export const SCRAPED_TYPES = new Set(["vllm", "llamacpp"]);

export interface UpstreamMetricsOptions {
  providers: ProviderRegistry;
  /** labgate's registry: the upstream_* series go there. */
  metrics: Registry;
  /** Period of the scrapes (ms, default 10000). */
  intervalMs?: number;
  /** How long scrapes are kept for the gate (ms, default 6 h). */
  historyMs?: number;
  /** Each scrape's time limit (ms, default 3000). */
  timeoutMs?: number;
  /** Where the history is written after each round, for `labgate gate` (a JSON file; none by default). */
  file?: string;
  onError?: (provider: string, err: unknown) => void;
  /** Headers for a provider's scrapes: its API key (llama-server with --api-key guards /metrics and /slots too). */
  headers?: (provider: ProviderRuntime) => Record<string, string>;
  now?: () => number;
  fetch?: typeof fetch;
}

interface ProviderState {
  type: string;
  last: UpstreamFigures | undefined;
  samples: UpstreamSample[];
  /** /metrics answered 501 (llama-server without --metrics): ask /slots instead until then (ms; /metrics again after 5 minutes, for a restart with --metrics). */
  slotsUntil: number;
}

export class UpstreamMetrics implements UpstreamHistory {
  private readonly opts: UpstreamMetricsOptions;
  private readonly state = new Map<string, ProviderState>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;
  private stopped = false;
  /** Aborts the scrapes in flight when the gateway stops. */
  private readonly aborter = new AbortController();
  /** The history file was written with some provider in it (rewritten while it changes, not for a lab without scraped servers). */
  private wroteFile = false;

  constructor(opts: UpstreamMetricsOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.register(opts.metrics);
  }

  start(): void {
    if (this.timer || this.stopped) return;
    void this.scrape();
    this.timer = setInterval(() => void this.scrape(), this.opts.intervalMs ?? 10_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.aborter.abort();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round over every vllm and llamacpp provider (a round still running is joined, not doubled). */
  scrape(): Promise<void> {
    if (!this.running) {
      this.running = this.round().finally(() => (this.running = undefined));
    }
    return this.running;
  }

  /** The last figures of each scraped provider. */
  latest(): Map<string, UpstreamFigures> {
    const out = new Map<string, UpstreamFigures>();
    for (const [name, s] of this.state) if (s.last) out.set(name, s.last);
    return out;
  }

  history(sinceMs: number): UpstreamProviderHistory[] {
    return [...this.state].map(([provider, s]) => ({ provider, type: s.type, samples: s.samples.filter((x) => x.ts >= sinceMs) }));
  }

  private async round(): Promise<void> {
    const targets = this.opts.providers.list().filter((p) => SCRAPED_TYPES.has(p.type));
    const names = new Set(targets.map((p) => p.name));
    for (const name of [...this.state.keys()]) if (!names.has(name)) this.state.delete(name);
    await Promise.all(
      targets.map(async (p) => {
        const st = this.state.get(p.name) ?? { type: p.type, last: undefined, samples: [], slotsUntil: 0 };
        this.state.set(p.name, st);
        st.type = p.type;
        try {
          const base = origin(p.config.base_url ?? DEFAULT_BASE_URLS[p.config.type as keyof typeof DEFAULT_BASE_URLS] ?? "");
          const figures = await this.scrapeOne(p.type, base, st, this.opts.headers?.(p) ?? {});
          st.last = figures;
          const ts = this.now();
          st.samples.push({
            ts,
            running: figures.running,
            waiting: figures.waiting,
            kvCacheUsage: figures.kvCacheUsage,
            prefixCacheHits: figures.prefixCacheHits,
            prefixCacheQueries: figures.prefixCacheQueries,
          });
          const keepFrom = ts - (this.opts.historyMs ?? 6 * 3600_000);
          while (st.samples.length > 0 && st.samples[0]!.ts < keepFrom) st.samples.shift();
        } catch (err) {
          // A server that does not answer has no current figures (its series go) but keeps its history.
          st.last = undefined;
          this.opts.onError?.(p.name, err);
        }
      }),
    );
    if (this.opts.file && !this.stopped && (this.state.size > 0 || this.wroteFile)) {
      this.wroteFile = this.state.size > 0;
      await this.writeFile(this.opts.file);
    }
  }

  private async scrapeOne(type: string, base: string, st: ProviderState, headers: Record<string, string>): Promise<UpstreamFigures> {
    const get = async (path: string): Promise<Response> =>
      (this.opts.fetch ?? fetch)(`${base}${path}`, {
        headers,
        signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs ?? 3000), this.aborter.signal]),
      });
    if (type === "vllm") {
      const r = await get("/metrics");
      if (!r.ok) throw new Error(`GET /metrics: ${r.status}`);
      return vllmFigures(parsePrometheusText(await r.text()));
    }
    if (this.now() >= st.slotsUntil) {
      const r = await get("/metrics");
      if (r.ok) return llamacppFigures(parsePrometheusText(await r.text()));
      await r.body?.cancel();
      // 501 "This server does not support metrics endpoint." (started without --metrics).
      if (r.status !== 501 && r.status !== 404) throw new Error(`GET /metrics: ${r.status}`);
      st.slotsUntil = this.now() + 5 * 60_000;
    }
    const r = await get("/slots");
    if (!r.ok) throw new Error(`GET /slots: ${r.status}`);
    return llamacppSlotsFigures(await r.json());
  }

  private async writeFile(file: string): Promise<void> {
    try {
      const tmp = `${file}.tmp`;
      await writeFile(tmp, JSON.stringify({ written_at: this.now(), providers: this.history(0) }));
      await rename(tmp, file);
    } catch (err) {
      this.opts.onError?.("(history file)", err);
    }
  }

  private register(registry: Registry): void {
    const r = [registry];
    const self = this;
    const gauge = (name: string, help: string, pick: (f: UpstreamFigures) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ["provider"],
        registers: r,
        collect() {
          this.reset();
          for (const [provider, f] of self.latest()) {
            const v = pick(f);
            if (v !== null) this.set({ provider }, v);
          }
        },
      });
    const counter = (name: string, help: string, pick: (f: UpstreamFigures) => number | null) =>
      new Counter({
        name,
        help,
        labelNames: ["provider"],
        registers: r,
        collect() {
          this.reset();
          for (const [provider, f] of self.latest()) {
            const v = pick(f);
            if (v !== null) this.inc({ provider }, v);
          }
        },
      });
    gauge("upstream_requests_running", "Requests the upstream server is running now (vLLM num_requests_running, llama.cpp requests_processing or busy slots)", (f) => f.running);
    gauge("upstream_requests_waiting", "Requests waiting in the upstream server's queue (vLLM num_requests_waiting, llama.cpp requests_deferred)", (f) => f.waiting);
    gauge("upstream_kv_cache_usage_ratio", "KV-cache usage of the upstream server, 0..1 (vLLM kv_cache_usage_perc or gpu_cache_usage_perc)", (f) => f.kvCacheUsage);
    counter("upstream_prefix_cache_hits_total", "Prompt tokens the upstream server found in its prefix cache (vLLM prefix_cache_hits, llama.cpp prompt_tokens_cached)", (f) => f.prefixCacheHits);
    counter("upstream_prefix_cache_queries_total", "Prompt tokens the upstream server looked up in its prefix cache", (f) => f.prefixCacheQueries);
    registerHistogram(registry, "upstream_ttft_seconds", "The upstream server's own time to first token (vLLM time_to_first_token_seconds), its buckets re-exported", () =>
      [...self.latest()].map(([provider, f]) => [provider, f.ttft] as const),
    );
    registerHistogram(
      registry,
      "upstream_inter_token_latency_seconds",
      "The upstream server's time between output tokens (vLLM inter_token_latency_seconds or time_per_output_token_seconds), its buckets re-exported",
      () => [...self.latest()].map(([provider, f]) => [provider, f.interTokenLatency] as const),
    );
  }
}

/** A histogram whose buckets are copied from elsewhere (prom-client's Histogram only observes): a metric object the registry formats. */
function registerHistogram(registry: Registry, name: string, help: string, read: () => (readonly [string, HistogramFigure | null])[]): void {
  const metric = {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const [provider, h] of read()) {
        if (!h) continue;
        for (const [le, c] of h.buckets) values.push({ metricName: `${name}_bucket`, labels: { provider, le: le === Infinity ? "+Inf" : le }, value: c });
        values.push({ metricName: `${name}_sum`, labels: { provider }, value: h.sum });
        values.push({ metricName: `${name}_count`, labels: { provider }, value: h.count });
      }
      return { name, help, type: "histogram", aggregator: "sum", values };
    },
    reset() {},
  };
  registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0]);
}

/** http://host:port of a base URL (/metrics and /slots are at the server's root, not under /v1). */
function origin(baseUrl: string): string {
  try {
    return new URL(baseUrl).origin;
  } catch {
    return baseUrl.replace(/\/+$/, "");
  }
}
