// Prometheus metrics, one registry per gateway instance (tests build many).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"model" | "provider" | "status">;
  duration: Histogram<"model" | "provider">;
  ttfb: Histogram<"provider">;
  tokens: Counter<"provider" | "direction">;
  cost: Counter<"provider">;
  attempts: Counter<"provider" | "outcome">;
  fallbacks: Counter<"model" | "result">;
  /** Requests routed while their model group was in panic (open breakers ignored). */
  panicRequests: Counter<"model">;
  /** 1 while a model group is in panic. */
  groupPanic: Gauge<"model">;
  breakerState: Gauge<"deployment" | "provider">;
  inFlight: Gauge<"provider">;
  overhead: Histogram;
  /**
   * Drop every series labelled with this model group (a discovered model went away),
   * so label caches and /metrics do not grow with every model ever seen.
   */
  forgetModel(model: string): void;
  /** Cached labelled children for the request path. */
  child: {
    requests(model: string, provider: string, status: string): { inc(n?: number): void };
    duration(model: string, provider: string): { observe(v: number): void };
    ttfb(provider: string): { observe(v: number): void };
    tokens(provider: string, direction: string): { inc(n?: number): void };
    cost(provider: string): { inc(n?: number): void };
    attempts(provider: string, outcome: string): { inc(n?: number): void };
  };
}

/**
 * `defaultMetrics` adds prom-client's process metrics (labgate_process_*). Off unless
 * asked for: they are about the process, not the gateway, and each call registers
 * process-wide observers (a GC PerformanceObserver, an event-loop delay monitor) that
 * are never removed, so a process that builds many gateways (tests) must not ask
 * each time. `labgate serve` asks for its one gateway.
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics === true) collectDefaultMetrics({ register: registry, prefix: "labgate_process_" });
  const requests = new CounterCells();
  const tokens = new CounterCells();
  const cost = new CounterCells();
  const attempts = new CounterCells();
  const m = createFamilies(registry, { requests, tokens, cost, attempts });
  const duration = labelledChildren((model, provider) => m.duration.labels(model, provider));
  return {
    ...m,
    forgetModel(model) {
      requests.forget(model);
      for (const provider of duration.forget(model)) m.duration.remove(model, provider);
      for (const result of ["success", "failure"]) m.fallbacks.remove(model, result);
      m.panicRequests.remove(model);
      m.groupPanic.remove(model);
    },
    child: {
      requests: (model, provider, status) => requests.cell(model, provider, status),
      duration,
      ttfb: labelledChildren((provider) => m.ttfb.labels(provider)),
      tokens: (provider, direction) => tokens.cell(provider, direction),
      cost: (provider) => cost.cell(provider),
      attempts: (provider, outcome) => attempts.cell(provider, outcome),
    },
  };
}

/** One labelled counter value, added to in place on the request path. */
class CounterCell {
  value = 0;
  readonly labels: string[];
  constructor(labels: string[]) {
    this.labels = labels;
  }
  inc(n = 1): void {
    this.value += n;
  }
}

/**
 * The values of a labelled counter, kept as plain numbers: prom-client hashes and
 * validates the label set on every inc() (even on a child), which showed up on
 * the request path. prom-client reads the totals when /metrics is scraped.
 */
export class CounterCells {
  private readonly root = new Map<string, unknown>();
  readonly all: CounterCell[] = [];

  cell(a: string, b?: string, c?: string): CounterCell {
    // Walk the nested maps with the labels as given: no array per call on the request path.
    let level = this.root;
    if (b !== undefined) level = this.child(level, a);
    if (c !== undefined) level = this.child(level, b!);
    const last = c ?? b ?? a;
    let cell = level.get(last) as CounterCell | undefined;
    if (!cell) {
      cell = new CounterCell(c !== undefined ? [a, b!, c] : b !== undefined ? [a, b] : [a]);
      level.set(last, cell);
      this.all.push(cell);
    }
    return cell;
  }

  /** Forget every cell whose label at `index` is `value` (a model that went away). */
  forgetWhere(index: number, value: string): void {
    if (index === 0) return this.forget(value);
    const dropped = new Set<CounterCell>();
    for (let i = this.all.length - 1; i >= 0; i--) {
      if (this.all[i]!.labels[index] === value) dropped.add(this.all.splice(i, 1)[0]!);
    }
    if (dropped.size === 0) return;
    // Remove them from the lookup maps too, so a returning model starts from zero.
    const prune = (level: Map<string, unknown>): void => {
      for (const [k, v] of level) {
        if (v instanceof Map) prune(v as Map<string, unknown>);
        else if (dropped.has(v as CounterCell)) level.delete(k);
      }
    };
    prune(this.root);
  }

  /** Forget every cell whose first label is `a`. */
  forget(a: string): void {
    if (!this.root.delete(a)) return;
    for (let i = this.all.length - 1; i >= 0; i--) if (this.all[i]!.labels[0] === a) this.all.splice(i, 1);
  }

  private child(level: Map<string, unknown>, key: string): Map<string, unknown> {
    let next = level.get(key) as Map<string, unknown> | undefined;
    if (!next) level.set(key, (next = new Map()));
    return next;
  }

  /** Copies the totals into prom-client's counter (called at scrape time). */
  export<L extends string>(counter: Counter<L>, labelNames: readonly L[]): void {
    counter.reset();
    for (const cell of this.all) {
      if (cell.value === 0) continue;
      const labels = {} as Record<L, string>;
      labelNames.forEach((name, i) => (labels[name] = cell.labels[i]!));
      counter.inc(labels, cell.value);
    }
  }
}

interface CounterSources {
  requests: CounterCells;
  tokens: CounterCells;
  cost: CounterCells;
  attempts: CounterCells;
}

function createFamilies(registry: Registry, cells: CounterSources): Omit<GatewayMetrics, "child" | "forgetModel"> {
  const r = [registry];
  return {
    registry,
    requests: new Counter({
      name: "labgate_requests_total",
      help: "Requests answered, by public model, provider and HTTP status",
      labelNames: ["model", "provider", "status"],
      registers: r,
      collect() {
        cells.requests.export(this, ["model", "provider", "status"]);
      },
    }),
    duration: new Histogram({
      name: "labgate_request_duration_seconds",
      help: "Whole request time",
      labelNames: ["model", "provider"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: r,
    }),
    ttfb: new Histogram({
      name: "labgate_ttfb_seconds",
      help: "Time to first byte from the upstream",
      labelNames: ["provider"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    tokens: new Counter({
      name: "labgate_tokens_total",
      help: "Tokens by provider and direction (prompt|completion)",
      labelNames: ["provider", "direction"],
      registers: r,
      collect() {
        cells.tokens.export(this, ["provider", "direction"]);
      },
    }),
    cost: new Counter({
      name: "labgate_cost_usd_total",
      help: "Spend in USD by provider",
      labelNames: ["provider"],
      registers: r,
      collect() {
        cells.cost.export(this, ["provider"]);
      },
    }),
    attempts: new Counter({
      name: "labgate_upstream_attempts_total",
      help: "Upstream attempts by outcome (ok or error class)",
      labelNames: ["provider", "outcome"],
      registers: r,
      collect() {
        cells.attempts.export(this, ["provider", "outcome"]);
      },
    }),
    fallbacks: new Counter({ name: "labgate_fallbacks_total", help: "Requests that needed a fallback, by result (success|failure)", labelNames: ["model", "result"], registers: r }),
    panicRequests: new Counter({
      name: "labgate_panic_requests_total",
      help: "Requests routed while their model group was in panic (too few deployments with a closed breaker, so open breakers were ignored)",
      labelNames: ["model"],
      registers: r,
    }),
    groupPanic: new Gauge({ name: "labgate_model_group_panic", help: "1 while the model group is in panic", labelNames: ["model"], registers: r }),
    breakerState: new Gauge({ name: "labgate_circuit_breaker_state", help: "0 closed, 1 half-open, 2 open", labelNames: ["deployment", "provider"], registers: r }),
    inFlight: new Gauge({ name: "labgate_in_flight_requests", help: "Requests being served, by provider", labelNames: ["provider"], registers: r }),
    overhead: new Histogram({
      name: "labgate_overhead_seconds",
      help: "Time spent in labgate itself, excluding upstreams",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers: r,
    }),
  };
}

/**
 * Memoises a histogram's labelled children (one or two labels) in nested maps,
 * so the request path neither joins label strings nor has prom-client look the
 * label set up again.
 */
export function labelledChildren<C>(make: (a: string, b: string) => C): ((a: string, b?: string) => C) & { forget(a: string): string[] } {
  const cache = new Map<string, Map<string, C>>();
  const get = (a: string, b = ""): C => {
    let inner = cache.get(a);
    if (!inner) cache.set(a, (inner = new Map()));
    let child = inner.get(b);
    if (child === undefined) {
      child = make(a, b);
      inner.set(b, child);
    }
    return child;
  };
  /** Forgets the children under `a`; returns their second labels so the caller can remove them from the family. */
  const forget = (a: string): string[] => {
    const inner = cache.get(a);
    cache.delete(a);
    return inner ? [...inner.keys()] : [];
  };
  return Object.assign(get, { forget });
}
