// The admin API's shapes as the dashboard reads them (gateway/api/provider-status.ts
// and the snapshot of /admin/events). Only the fields the pages use.
export type BreakerState = "closed" | "open" | "half_open";

export interface DeploymentView {
  id: string;
  model_group: string;
  model: string;
  tier: string | null;
  overflow: boolean;
  weight: number;
  /** gateway/router/circuit-breaker.ts BreakerState, as the gateway spells it. */
  breaker_state: BreakerState;
  error_rate: number;
  in_flight: number;
  ewma_ttfb_ms: number | null;
  requests: number;
  failures: number;
}

export interface ProviderView {
  name: string;
  type: string;
  source: string | null;
  enabled: boolean;
  available: boolean;
  unavailable_reason: string | null;
  health: { healthy: boolean; detail?: string; checked_at: string; latency_ms?: number } | null;
  in_flight: number;
  requests: number;
  failures: number;
  deployments: DeploymentView[];
}

export interface GroupView {
  name: string;
  strategy: string;
  discovered: boolean;
  fallbacks: string[];
  panic: boolean;
  enabled_deployments: number;
  breaker_not_open: number;
  deployments: number;
}

export interface ProvidersResponse {
  object: "list";
  /** The router's settings that shape a request's path (config router:). */
  router: { max_fallback_depth: number; retries: number };
  data: ProviderView[];
  groups: GroupView[];
}

/** One provider's (or the whole lab's) traffic in the last summary period. */
export interface TrafficView {
  requests: number;
  errors: number;
  requests_per_s: number;
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
  spend_usd: number;
}

export interface SummaryEvent extends TrafficView {
  at: string;
  period_ms: number;
  providers: Record<string, TrafficView>;
}
