// What the HTTP plugins are given by the composition root.
import type { CompletionService } from "../completion/service.ts";
import type { LabgateConfig } from "../config/schema.ts";
import type { GpuMonitor } from "../lab/gpus.ts";
import type { LabProcesses } from "../lab/processes.ts";
import type { ServerDiscovery } from "../lab/servers.ts";
import type { EventHub } from "../telemetry/events.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { Router } from "../router/router.ts";
import type { ProviderStateStore } from "../store/provider-state.ts";
import type { RequestLog } from "../store/request-log.ts";
import type { GatewayMetrics } from "../telemetry/metrics.ts";
import type { HealthResult } from "../providers/types.ts";
import type { Logger } from "pino";
import type { Db } from "../store/db.ts";
import type { UpstreamHistory } from "../telemetry/upstream-metrics.ts";
import type { TrafficHistory } from "../telemetry/traffic-history.ts";
import type { BatchQueue } from "../batch/queue.ts";
import type { BudgetBook } from "../telemetry/budgets.ts";

export interface ProviderHealthBook {
  /** Probe a provider now; the result is recorded in the registry (lastHealth, health events). */
  probe(provider: string): Promise<HealthResult & { at: number }>;
}

export interface GatewayDeps {
  config: LabgateConfig;
  router: Router;
  /** The lab's live events (GET /admin/events). */
  events: EventHub;
  /** What a client of the event stream is shown first. */
  labSnapshot(): Record<string, unknown>;
  /** Servers labgate launches and supervises (providers with launch:). */
  processes: LabProcesses;
  /** Inference servers found running on the lab's machines. */
  servers: ServerDiscovery;
  /** The machine's GPUs and their figures, read in the background (GET /admin/lab/gpus, /metrics). */
  monitor: GpuMonitor;
  /** Every provider, whatever its source, with its runtime state and events. */
  registry: ProviderRegistry;
  /** Routes and accounts every request; the HTTP layer only translates. */
  completions: CompletionService;
  requestLog: RequestLog;
  /** The gateway's database (the readiness gate reads the request log there). */
  db: Db;
  /** What the lab's vLLM and llama.cpp servers said in the last scrapes (the readiness gate's vLLM criteria). */
  upstream: UpstreamHistory;
  /** The last hour of traffic per provider, in memory (GET /admin/traffic, the dashboard's overview). */
  traffic: TrafficHistory;
  /** The local batch queue (/v1/batches for callers, /admin/batches for the dashboard). */
  batches: BatchQueue;
  /** Budgets and today's figures against them (GET /admin/budgets, the live snapshot). */
  budgets: BudgetBook;
  metrics: GatewayMetrics;
  providerState: ProviderStateStore;
  health: ProviderHealthBook;
  masterKey: string | undefined;
  adminKey: string | undefined;
  log: Logger;
  startedAt: number;
  version: string;
}
