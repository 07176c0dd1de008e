// The request log as GET /admin/requests and /admin/requests/:id answer it (gateway/api/requests.ts).

export interface Attempt {
  attempt: number;
  provider: string;
  deployment: string;
  error_class: string | null;
  ms: number;
}

export interface RequestRow {
  id: string;
  ts: number;
  tenant: string | null;
  operation: string;
  public_model: string;
  provider: string | null;
  upstream_model: string | null;
  fallback_depth: number;
  is_overflow: boolean;
  panic: boolean;
  stream: boolean;
  status: number;
  error_class: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cost_usd: number | null;
  ttfb_ms: number | null;
  total_ms: number;
  overhead_ms: number | null;
  tier?: string | null;
  attempts: Attempt[];
}

export interface RequestsPage {
  object: "list";
  data: RequestRow[];
  /** More rows beyond the page in the direction asked (older; newer with `after`). */
  has_more: boolean;
  next_before: string | null;
  next_after: string | null;
}

export type RangePreset = "15m" | "1h" | "24h" | "7d" | "all" | "custom";

export interface RequestFilters {
  model: string;
  provider: string;
  /** "" (any), "ok", "error" or a status code. */
  status: string;
  range: RangePreset;
  /** datetime-local values, for range "custom". */
  customFrom: string;
  customTo: string;
}

/** Which page of the log is shown: the newest, or one continued from a cursor. */
export type PagePosition = { kind: "first" } | { kind: "before"; cursor: string } | { kind: "after"; cursor: string };
