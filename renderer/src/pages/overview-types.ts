// What the Overview page reads besides the shared provider view: GET /admin/traffic
// (gateway/telemetry/traffic-history.ts) and the few /admin/analytics fields it sums.

export interface TrafficPoint {
  /** Bucket start, ms since the epoch. */
  t: number;
  requests: number;
  errors: number;
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
}

export interface ProviderTraffic {
  provider: string;
  /** Buckets with traffic only, oldest first. */
  points: TrafficPoint[];
  /** The last recent_ms together. */
  recent: Omit<TrafficPoint, "t">;
}

export interface TrafficSnapshot {
  object: "traffic";
  bucket_ms: number;
  from: number;
  to: number;
  /** When the gateway began keeping this history. */
  since: number;
  recent_ms: number;
  providers: ProviderTraffic[];
}

/** The lab's totals since local midnight, from the request log's rollups. */
export interface TodayTotals {
  requests: number;
  errors: number;
  fallbacks: number;
  fallbacksOk: number;
  spendUsd: number;
}

export interface SpendAnswer {
  series: { total: { cost_usd: number; requests: number } }[];
}
export interface ErrorsAnswer {
  series: { total: { errors: number } }[];
}
export interface FallbacksAnswer {
  data: { count: number; success: number }[];
}

export type TileHealth = "ok" | "degraded" | "down" | "off";
