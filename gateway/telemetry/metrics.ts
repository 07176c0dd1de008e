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
  breakerState: Gauge<"deployment" | "provider">;
  inFlight: Gauge<"provider">;
  overhead: Histogram;
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

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: "labgate_process_" });
  const m = createFamilies(registry);
  return {
    ...m,
    child: {
      requests: labelledChildren((model, provider, status) => m.requests.labels(model!, provider!, status!)),
      duration: labelledChildren((model, provider) => m.duration.labels(model!, provider!)),
      ttfb: labelledChildren((provider) => m.ttfb.labels(provider!)),
      tokens: labelledChildren((provider, direction) => m.tokens.labels(provider!, direction!)),
      cost: labelledChildren((provider) => m.cost.labels(provider!)),
      attempts: labelledChildren((provider, outcome) => m.attempts.labels(provider!, outcome!)),
    },
  };
}

function createFamilies(registry: Registry): Omit<GatewayMetrics, "child"> {
  const r = [registry];
  return {
    registry,
    requests: new Counter({ name: "labgate_requests_total", help: "Requests answered, by public model, provider and HTTP status", labelNames: ["model", "provider", "status"], registers: r }),
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
    tokens: new Counter({ name: "labgate_tokens_total", help: "Tokens by provider and direction (prompt|completion)", labelNames: ["provider", "direction"], registers: r }),
    cost: new Counter({ name: "labgate_cost_usd_total", help: "Spend in USD by provider", labelNames: ["provider"], registers: r }),
    attempts: new Counter({ name: "labgate_upstream_attempts_total", help: "Upstream attempts by outcome (ok or error class)", labelNames: ["provider", "outcome"], registers: r }),
    fallbacks: new Counter({ name: "labgate_fallbacks_total", help: "Requests that needed a fallback, by result (success|failure)", labelNames: ["model", "result"], registers: r }),
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
 * Memoises a metric's labelled children: prom-client hashes a label object on
 * every call otherwise, which shows up on the request path.
 */
export function labelledChildren<C>(make: (...labels: string[]) => C): (...labels: string[]) => C {
  const cache = new Map<string, C>();
  return (...labels) => {
    const key = labels.join("\u0000");
    let child = cache.get(key);
    if (child === undefined) {
      child = make(...labels);
      cache.set(key, child);
    }
    return child;
  };
}
