// The lab's metric names: the series its alerts, Grafana boards and runbooks query
// (router_*, billing_*, provider_up, batch_*), kept next to labgate's own labgate_*
// series. Counters are plain numbers on the request path and handed to prom-client
// at scrape time, like the labgate_* counters. Label values are bounded: model
// groups and provider names from the config or discovery, status codes, error
// classes, tiers; never user text (an unknown model is "(unknown)").
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RequestOutcome } from "../completion/outcome.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { Router } from "../router/router.ts";
import { CounterCells, labelledChildren } from "./metrics.ts";

export interface LabMetrics {
  /** Subscribe to the completion service's outcomes. */
  observe(o: RequestOutcome): void;
  /** A discovered model went away: drop its series. */
  forgetModel(model: string): void;
  /** Batch queue figures (the batch queue sets them; zero until it exists). */
  batchQueueDepth: Gauge;
  batchCompleted: Counter;
  batchCompletedSuccess: Counter;
}

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1];
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export function createLabMetrics(registry: Registry, sources: { providers: ProviderRegistry; router: Router }): LabMetrics {
  const r = [registry];
  const requests = new CounterCells();
  const errors = new CounterCells();
  const fallbacks = new CounterCells();
  const fallbackSuccess = new CounterCells();
  const cost = new CounterCells();
  const tokens = new CounterCells();
  let attributed = 0;
  // Status codes as labels: the few a gateway answers, as strings made once.
  const statusLabels = new Map<number, string>();
  const statusLabel = (status: number): string => {
    let s = statusLabels.get(status);
    if (s === undefined) statusLabels.set(status, (s = String(status)));
    return s;
  };

  new Counter({
    name: "router_requests_total",
    help: "Requests by provider that answered (or was tried last; none when nothing was tried), model group and status",
    labelNames: ["provider", "model", "status"],
    registers: r,
    collect() {
      requests.export(this, ["provider", "model", "status"]);
    },
  });
  new Counter({
    name: "router_errors_total",
    help: "Requests that ended in an error, by provider and reason (the error class)",
    labelNames: ["provider", "reason"],
    registers: r,
    collect() {
      errors.export(this, ["provider", "reason"]);
    },
  });
  const latency = new Histogram({
    name: "router_latency_seconds",
    help: 'Time spent in the gateway: component="routing" the routing decision, component="gateway" labgate\'s whole overhead',
    labelNames: ["component"],
    buckets: LATENCY_BUCKETS,
    registers: r,
  });
  const routingLatency = latency.labels("routing");
  const gatewayLatency = latency.labels("gateway");
  new Counter({
    name: "router_fallback_total",
    help: "Requests that, after a failure, tried another deployment, the overflow or a fallback group",
    labelNames: ["model"],
    registers: r,
    collect() {
      fallbacks.export(this, ["model"]);
    },
  });
  new Counter({
    name: "router_fallback_success_total",
    help: "Requests counted in router_fallback_total that then got an answer",
    labelNames: ["model"],
    registers: r,
    collect() {
      fallbackSuccess.export(this, ["model"]);
    },
  });
  new Gauge({
    name: "router_configured_weight",
    help: "Configured weight of each deployment, by provider and model group",
    labelNames: ["provider", "model"],
    registers: r,
    collect() {
      this.reset();
      for (const g of sources.router.listGroups()) {
        if (g.discovered) continue;
        for (const d of g.deployments) this.set({ provider: d.provider.name, model: g.name }, d.weight);
      }
    },
  });
  new Gauge({
    name: "router_circuit_breaker_state",
    help: "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
    labelNames: ["provider", "deployment"],
    registers: r,
    collect() {
      this.reset();
      for (const d of sources.router.allDeployments()) {
        const s = d.breaker.state;
        this.set({ provider: d.provider.name, deployment: d.id }, s === "closed" ? 0 : s === "half_open" ? 1 : 2);
      }
    },
  });
  new Counter({
    name: "router_requests_attributed_total",
    help: "Requests that carry a tenant: from their key, the OpenAI user field, or an X-Labgate-Tenant header",
    registers: r,
    collect() {
      this.reset();
      if (attributed > 0) this.inc(attributed);
    },
  });
  new Counter({
    name: "billing_cost_total",
    help: "Spend in USD by route tier and provider",
    labelNames: ["route_tier", "provider"],
    registers: r,
    collect() {
      cost.export(this, ["route_tier", "provider"]);
    },
  });
  new Counter({
    name: "billing_tokens_total",
    help: "Tokens by route tier, provider and direction (input|output)",
    labelNames: ["route_tier", "provider", "direction"],
    registers: r,
    collect() {
      tokens.export(this, ["route_tier", "provider", "direction"]);
    },
  });
  new Gauge({
    name: "provider_up",
    help: "1 when the provider is enabled, available and its last health probe passed (or none was made yet)",
    labelNames: ["provider"],
    registers: r,
    collect() {
      this.reset();
      for (const p of sources.providers.list()) {
        const healthy = sources.providers.lastHealth(p.name)?.ok ?? true;
        this.set({ provider: p.name }, p.enabled && !p.unavailableReason && healthy ? 1 : 0);
      }
    },
  });
  const ttfbFamily = new Histogram({
    name: "router_ttfb_seconds",
    help: "Time to first byte from the upstream, by provider and model group",
    labelNames: ["provider", "model"],
    buckets: SECONDS_BUCKETS,
    registers: r,
  });
  const durationFamily = new Histogram({
    name: "router_request_duration_seconds",
    help: "Whole request time, by provider and model group",
    labelNames: ["provider", "model"],
    buckets: SECONDS_BUCKETS,
    registers: r,
  });
  // Keyed model-first so a model's children can be forgotten together.
  const ttfb = labelledChildren((model, provider) => ttfbFamily.labels(provider, model));
  const duration = labelledChildren((model, provider) => durationFamily.labels(provider, model));
  const batchQueueDepth = new Gauge({ name: "batch_queue_depth", help: "Batch items waiting to run", registers: r });
  const batchCompleted = new Counter({ name: "batch_completed_total", help: "Batches that ended (completed, failed, expired or cancelled)", registers: r });
  const batchCompletedSuccess = new Counter({ name: "batch_completed_success_total", help: "Batches that ended completed", registers: r });

  return {
    batchQueueDepth,
    batchCompleted,
    batchCompletedSuccess,
    observe(o) {
      const model = o.unknownModel ? "(unknown)" : o.model;
      const provider = o.provider ?? "none";
      requests.cell(provider, model, statusLabel(o.status)).inc();
      if (o.errorClass !== null) errors.cell(provider, o.errorClass).inc();
      if (o.attempts.length > 1) {
        fallbacks.cell(model).inc();
        if (o.status === 200) fallbackSuccess.cell(model).inc();
      }
      if (o.tenant !== "anonymous") attributed++;
      if (o.routingMs !== null) routingLatency.observe(o.routingMs / 1000);
      if (o.overheadMs !== null) {
        gatewayLatency.observe(Math.max(0, o.overheadMs) / 1000);
        duration(model, provider).observe(o.totalMs / 1000);
      }
      if (o.ttfbMs !== null) ttfb(model, provider).observe(o.ttfbMs / 1000);
      if (o.usage) {
        const tier = o.tier ?? "none";
        tokens.cell(tier, provider, "input").inc(o.usage.prompt_tokens);
        tokens.cell(tier, provider, "output").inc(o.usage.completion_tokens);
        if (o.costUsd) cost.cell(tier, provider).inc(o.costUsd);
      }
    },
    forgetModel(model) {
      for (const provider of ttfb.forget(model)) ttfbFamily.remove(provider, model);
      for (const provider of duration.forget(model)) durationFamily.remove(provider, model);
      fallbacks.forget(model);
      fallbackSuccess.forget(model);
      requests.forgetWhere(1, model);
    },
  };
}

