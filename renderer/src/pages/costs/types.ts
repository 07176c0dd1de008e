// What the Costs page reads: GET /admin/analytics/spend (gateway/store/analytics.ts),
// GET /admin/budgets (gateway/api/budgets.ts) and GET /admin/gate (gateway/telemetry/gate.ts).

export type SpendDimension = "provider" | "model" | "tenant" | "tier";

export interface SpendKey {
  provider?: string | null;
  model?: string | null;
  tenant?: string | null;
  tier?: string | null;
}

export interface SpendFigures {
  cost_usd: number;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export interface SpendPoint extends SpendFigures {
  t: number;
}

export interface SpendAnswer {
  object: "analytics.spend";
  bucket: "hour" | "day";
  from: number;
  to: number;
  buckets: number[];
  group_by: SpendDimension[];
  series: { key: SpendKey; total: SpendFigures; points: SpendPoint[] }[];
  /** Series left out by the limit (their spend is missing from the sums). */
  truncated: number;
}

export interface BudgetStatus {
  kind: "tier" | "provider";
  name: string;
  measure: "daily_usd" | "usd_per_1k_tokens";
  limit: number;
  value: number | null;
  exceeded: boolean;
}

export interface BudgetsAnswer {
  object: "list";
  on_exceed: "alert" | "block_overflow";
  data: BudgetStatus[];
}

export type Verdict = "PASS" | "FAIL" | "NO DATA";

export interface GateCriterion {
  id: string;
  title: string;
  verdict: Verdict;
  value: number | null;
  subject?: string;
  comparator: ">=" | "<=";
  threshold: number | null;
  measured: string;
  limit: string;
  detail?: string;
  items?: { subject: string; value: number; threshold?: number; verdict: Verdict }[];
}

export interface GateReport {
  source: "request-log" | "prometheus";
  window: string;
  from: string;
  to: string;
  verdict: "PASS" | "FAIL";
  criteria: GateCriterion[];
}

/** One row of a breakdown: a provider, model, tier or key with its sums and one figure per bucket. */
export interface Breakdown extends SpendFigures {
  name: string;
  points: SpendFigures[];
}
