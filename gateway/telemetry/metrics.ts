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
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: "labgate_process_" });
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
