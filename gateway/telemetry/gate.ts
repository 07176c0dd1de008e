// The readiness gate: the lab's criteria over a window, each PASS, FAIL or NO DATA
// with what was measured and the threshold. Criteria are data: an id, a title, a
// comparator, a threshold from the config (gate.thresholds, budgets for costs), and two
// ways to measure: SQL over labgate's own request log (plus the scraped upstream
// figures), or PromQL against a Prometheus that scrapes labgate.
import type Database from "better-sqlite3";
import { gateThresholdsSchema, type GateThresholds, type LabgateConfig } from "../config/schema.ts";
import { BatchStore } from "../store/batches.ts";
import type { UpstreamHistory } from "./upstream-metrics.ts";

export type Verdict = "PASS" | "FAIL" | "NO DATA";
export type Comparator = ">=" | "<=";
type Unit = "percent" | "ms" | "count" | "usd_per_1k";

export type { GateThresholds };

/** The thresholds when the config names none (the schema's defaults). */
export const DEFAULT_GATE_THRESHOLDS: GateThresholds = gateThresholdsSchema.parse({});

/** One subject of a criterion measured per provider, deployment or tier. */
export interface Item {
  subject: string;
  value: number;
  /** Its own threshold (a tier's budget); the criterion's otherwise. */
  threshold?: number;
}

/** What an evaluator found: one value, or one per subject (the worst one is shown), or nothing (NO DATA, with why). */
export type Measurement = { value: number; detail?: string } | { items: Item[]; detail?: string } | { none: string };

export interface CriterionResult {
  id: string;
  title: string;
  verdict: Verdict;
  /** The value shown: the worst subject's for per-subject criteria; null with NO DATA. */
  value: number | null;
  /** Which provider, deployment or tier the value is about. */
  subject?: string;
  comparator: Comparator;
  threshold: number | null;
  /** "99.95%", "123 ms"... */
  measured: string;
  limit: string;
  detail?: string;
  /** Per-subject criteria: every subject with its own verdict. */
  items?: (Item & { verdict: Verdict })[];
}

export interface GateReport {
  source: "request-log" | "prometheus";
  prometheus?: string;
  window: string;
  from: string;
  to: string;
  /** FAIL when any criterion fails; NO DATA is not a failure. */
  verdict: "PASS" | "FAIL";
  criteria: CriterionResult[];
}

export interface GateContext {
  config: LabgateConfig;
  thresholds: GateThresholds;
  maintenance: Set<string>;
  windowMs: number;
  from: number;
  to: number;
}

export interface SqlContext extends GateContext {
  db: Database.Database;
  /** request_log's columns (a later migration may add tier or attempt_count). */
  columns: Set<string>;
  upstream?: UpstreamHistory;
}

export interface PromContext extends GateContext {
  /** An instant query at `to`; [] when nothing matched. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** The window as a PromQL range ("1800s"). */
  range: string;
}

export interface Criterion {
  id: string;
  title: string;
  /** The title in Prometheus mode, when it measures something else. */
  promTitle?: string;
  comparator: Comparator;
  unit: Unit;
  /** The criterion's threshold; null when the subjects have their own (tier budgets) or none is configured. */
  threshold(ctx: GateContext): number | null;
  sql(ctx: SqlContext): Measurement;
  promql(ctx: PromContext): Promise<Measurement>;
}

// ---------------------------------------------------------------- helpers

const ratio = (num: number, den: number, none: string): Measurement => (den > 0 ? { value: num / den } : { none });

function windowRows<T>(ctx: SqlContext, select: string, extraWhere = "", params: unknown[] = []): T[] {
  return ctx.db.prepare(`SELECT ${select} FROM request_log WHERE ts >= ? AND ts <= ? ${extraWhere}`).all(ctx.from, ctx.to, ...params) as T[];
}
function windowRow<T>(ctx: SqlContext, select: string, extraWhere = "", params: unknown[] = []): T {
  return windowRows<T>(ctx, select, extraWhere, params)[0]!;
}

/** An error that counts: a request that failed, not one whose caller went away. */
const COUNTED_ERROR = "error_class IS NOT NULL AND error_class != 'cancelled' AND status != 499";

async function promScalar(ctx: PromContext, promql: string): Promise<number | null> {
  const r = await ctx.query(promql);
  if (r.length === 0) return null;
  const v = r.reduce((a, x) => a + x.value, 0);
  return Number.isFinite(v) ? v : null;
}
async function promBy(ctx: PromContext, promql: string, label: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const r of await ctx.query(promql)) {
    if (!Number.isFinite(r.value)) continue;
    const k = r.metric[label] ?? "";
    out.set(k, (out.get(k) ?? 0) + r.value);
  }
  return out;
}

/** Providers the lab has: configured ones and those seen in the traffic. */
function providerCount(ctx: GateContext, seen: Iterable<string>): number {
  const all = new Set(Object.keys(ctx.config.providers));
  for (const p of seen) if (p && p !== "none") all.add(p);
  return all.size;
}

/** Shares of a total by subject, as items; fewer than two providers in the lab: nothing to compare. */
function shares(ctx: GateContext, counts: Map<string, number>, total: number, what: string, exclude: Set<string> = new Set()): Measurement {
  if (total <= 0) return { none: `no ${what} in the window` };
  if (providerCount(ctx, counts.keys()) < 2) return { none: "the lab has one provider" };
  const items: Item[] = [];
  for (const [subject, n] of counts) if (subject && subject !== "none" && !exclude.has(subject)) items.push({ subject, value: n / total });
  if (items.length === 0) return { value: 0, detail: exclude.size > 0 ? "only providers in maintenance" : undefined };
  return { items };
}

function budgetOf(config: LabgateConfig, tier: string): number | undefined {
  // budgets: {tiers: {TIER: {max_usd_per_1k_tokens, daily_usd}}, ...}
  const budgets = (config as { budgets?: { tiers?: Record<string, { max_usd_per_1k_tokens?: number } | undefined> } }).budgets;
  const v = budgets?.tiers?.[tier]?.max_usd_per_1k_tokens;
  return typeof v === "number" ? v : undefined;
}
function anyBudget(config: LabgateConfig): boolean {
  const tiers = (config as { budgets?: { tiers?: Record<string, { max_usd_per_1k_tokens?: number } | undefined> } }).budgets?.tiers ?? {};
  return Object.values(tiers).some((t) => typeof t?.max_usd_per_1k_tokens === "number");
}

function tierItems(config: LabgateConfig, cost: Map<string, number>, tokens: Map<string, number>): Measurement {
  if (!anyBudget(config)) return { none: "no budgets.tiers.<tier>.max_usd_per_1k_tokens configured" };
  const items: Item[] = [];
  for (const [tier, t] of tokens) {
    const budget = budgetOf(config, tier);
    if (budget === undefined || t <= 0) continue;
    items.push({ subject: tier, value: ((cost.get(tier) ?? 0) / t) * 1000, threshold: budget });
  }
  return items.length > 0 ? { items } : { none: "no tokens in a tier with a budget in the window" };
}

/** Weighted groups of the config: each non-overflow deployment's expected share (weight / sum of weights). */
function weightedGroups(config: LabgateConfig): { group: string; expected: Map<string, number> }[] {
  const out: { group: string; expected: Map<string, number> }[] = [];
  for (const [group, g] of Object.entries(config.models)) {
    if ((g.strategy ?? "weighted") !== "weighted") continue;
    const deps = g.deployments.filter((d) => !d.overflow && (d.weight ?? 1) > 0);
    if (deps.length < 2) continue;
    const total = deps.reduce((a, d) => a + (d.weight ?? 1), 0);
    const expected = new Map<string, number>();
    // Deployments are told apart by provider (as router_requests_total labels them).
    for (const d of deps) expected.set(d.provider, (expected.get(d.provider) ?? 0) + (d.weight ?? 1) / total);
    if (expected.size >= 2) out.push({ group, expected });
  }
  return out;
}

function weightItems(groups: { group: string; expected: Map<string, number> }[], counts: (group: string) => Map<string, number>): Measurement {
  if (groups.length === 0) return { none: "no weighted model group with two or more deployments" };
  const items: Item[] = [];
  for (const { group, expected } of groups) {
    const c = counts(group);
    let total = 0;
    for (const p of expected.keys()) total += c.get(p) ?? 0;
    if (total === 0) continue;
    for (const [p, e] of expected) items.push({ subject: `${group}/${p}`, value: Math.abs((c.get(p) ?? 0) / total - e) / e });
  }
  return items.length > 0 ? { items } : { none: "no traffic in the weighted groups" };
}

/** Nearest-rank quantile. */
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)]!;
}

function vllmProviders(ctx: GateContext, upstream?: UpstreamHistory): string[] {
  const names = new Set(Object.entries(ctx.config.providers).filter(([, p]) => p.type === "vllm").map(([n]) => n));
  for (const h of upstream?.history(ctx.from) ?? []) if (h.type === "vllm") names.add(h.provider);
  return [...names].sort();
}
const promRegex = (names: string[]) => names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&")).join("|");

/** A counter's increase over consecutive samples; a drop is a restart (the new value is the increase), as Prometheus counts it. */
function increase(values: (number | null)[]): number {
  let inc = 0;
  let prev: number | null = null;
  for (const v of values) {
    if (v === null) continue;
    if (prev !== null) inc += v >= prev ? v - prev : v;
    prev = v;
  }
  return inc;
}

// ---------------------------------------------------------------- the criteria

export const CRITERIA: readonly Criterion[] = [
  {
    id: "availability",
    title: "availability",
    comparator: ">=",
    unit: "percent",
    threshold: (c) => c.thresholds.availability,
    sql(ctx) {
      const r = windowRow<{ n: number; bad: number | null }>(ctx, "COUNT(*) AS n, SUM(status >= 500) AS bad", "AND status != 499");
      return ratio(r.n - (r.bad ?? 0), r.n, "no requests in the window");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(router_requests_total{status!="499"}[${ctx.range}]))`);
      const bad = (await promScalar(ctx, `sum(increase(router_requests_total{status=~"5.."}[${ctx.range}]))`)) ?? 0;
      return all === null ? { none: "no requests in the window" } : ratio(all - bad, all, "no requests in the window");
    },
  },
  {
    id: "error_rate",
    title: "error rate",
    comparator: "<=",
    unit: "percent",
    threshold: (c) => c.thresholds.error_rate,
    sql(ctx) {
      const r = windowRow<{ n: number; e: number | null }>(ctx, `COUNT(*) AS n, SUM(${COUNTED_ERROR}) AS e`);
      return ratio(r.e ?? 0, r.n, "no requests in the window");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(router_requests_total[${ctx.range}]))`);
      const e = (await promScalar(ctx, `sum(increase(router_errors_total{reason!="cancelled"}[${ctx.range}]))`)) ?? 0;
      return all === null ? { none: "no requests in the window" } : ratio(e, all, "no requests in the window");
    },
  },
  {
    id: "fallback_success",
    title: "fallback success",
    comparator: ">=",
    unit: "percent",
    threshold: (c) => c.thresholds.fallback_success,
    sql(ctx) {
      const tried = ctx.columns.has("attempt_count") ? "attempt_count > 1" : "json_array_length(attempts) > 1";
      const r = windowRow<{ n: number; ok: number | null }>(ctx, "COUNT(*) AS n, SUM(status = 200) AS ok", `AND ${tried}`);
      return ratio(r.ok ?? 0, r.n, "no fallbacks in the window");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(router_fallback_total[${ctx.range}]))`);
      const ok = (await promScalar(ctx, `sum(increase(router_fallback_success_total[${ctx.range}]))`)) ?? 0;
      return all === null ? { none: "no fallbacks in the window" } : ratio(ok, all, "no fallbacks in the window");
    },
  },
  {
    id: "routing_p95",
    title: "routing p95 (labgate overhead)",
    promTitle: "routing p95",
    comparator: "<=",
    unit: "ms",
    threshold: (c) => c.thresholds.routing_p95_ms,
    sql(ctx) {
      // The log has no routing time: labgate's whole overhead (x-labgate-overhead-ms) stands for it.
      const { n } = windowRow<{ n: number }>(ctx, "COUNT(*) AS n", "AND overhead_ms IS NOT NULL");
      if (n === 0) return { none: "no request reached an upstream in the window" };
      const r = windowRow<{ v: number }>(ctx, "overhead_ms AS v", "AND overhead_ms IS NOT NULL ORDER BY overhead_ms LIMIT 1 OFFSET ?", [Math.max(0, Math.ceil(0.95 * n) - 1)]);
      return { value: r.v };
    },
    async promql(ctx) {
      const v = await promScalar(ctx, `histogram_quantile(0.95, sum(rate(router_latency_seconds_bucket{component="routing"}[${ctx.range}])) by (le))`);
      return v === null ? { none: "no routing decisions in the window" } : { value: v * 1000 };
    },
  },
  {
    id: "provider_error_share",
    title: "provider error share",
    comparator: "<=",
    unit: "percent",
    threshold: (c) => c.thresholds.provider_error_share,
    sql(ctx) {
      const { n } = windowRow<{ n: number }>(ctx, "COUNT(*) AS n");
      if (n === 0) return { none: "no requests in the window" };
      const rows = windowRows<{ provider: string | null; n: number }>(ctx, "provider, COUNT(*) AS n", `AND ${COUNTED_ERROR} GROUP BY provider`);
      const total = rows.reduce((a, r) => a + r.n, 0);
      if (total === 0) return { value: 0, detail: "no errors" };
      return shares(ctx, new Map(rows.map((r) => [r.provider ?? "none", r.n])), total, "errors");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(router_requests_total[${ctx.range}]))`);
      if (!all) return { none: "no requests in the window" };
      const by = await promBy(ctx, `sum by (provider) (increase(router_errors_total{reason!="cancelled"}[${ctx.range}]))`, "provider");
      const total = [...by.values()].reduce((a, b) => a + b, 0);
      if (total === 0) return { value: 0, detail: "no errors" };
      return shares(ctx, by, total, "errors");
    },
  },
  {
    id: "provider_traffic_share",
    title: "provider traffic share",
    comparator: "<=",
    unit: "percent",
    threshold: (c) => c.thresholds.provider_traffic_share,
    sql(ctx) {
      const rows = windowRows<{ provider: string; n: number }>(ctx, "provider, COUNT(*) AS n", "AND provider IS NOT NULL GROUP BY provider");
      const m = shares(ctx, new Map(rows.map((r) => [r.provider, r.n])), rows.reduce((a, r) => a + r.n, 0), "routed requests", ctx.maintenance);
      return withMaintenance(ctx, m);
    },
    async promql(ctx) {
      const by = await promBy(ctx, `sum by (provider) (increase(router_requests_total{provider!="none"}[${ctx.range}]))`, "provider");
      const m = shares(ctx, by, [...by.values()].reduce((a, b) => a + b, 0), "routed requests", ctx.maintenance);
      return withMaintenance(ctx, m);
    },
  },
  {
    id: "weight_share",
    title: "traffic vs weights",
    comparator: "<=",
    unit: "percent",
    threshold: (c) => c.thresholds.weight_tolerance,
    sql(ctx) {
      return weightItems(weightedGroups(ctx.config), (group) => {
        const rows = windowRows<{ provider: string; n: number }>(ctx, "provider, COUNT(*) AS n", "AND public_model = ? AND provider IS NOT NULL GROUP BY provider", [group]);
        return new Map(rows.map((r) => [r.provider, r.n]));
      });
    },
    async promql(ctx) {
      const groups = weightedGroups(ctx.config);
      const counts = new Map<string, Map<string, number>>();
      for (const r of await ctx.query(`sum by (provider, model) (increase(router_requests_total[${ctx.range}]))`)) {
        const g = counts.get(r.metric.model ?? "") ?? new Map<string, number>();
        counts.set(r.metric.model ?? "", g.set(r.metric.provider ?? "", (g.get(r.metric.provider ?? "") ?? 0) + r.value));
      }
      return weightItems(groups, (group) => counts.get(group) ?? new Map());
    },
  },
  {
    id: "cost_per_1k_tokens",
    title: "cost per 1k tokens",
    comparator: "<=",
    unit: "usd_per_1k",
    threshold: () => null,
    sql(ctx) {
      const hasTier = ctx.columns.has("tier");
      const rows = windowRows<{ provider: string | null; upstream_model: string | null; tier?: string | null; cost: number | null; tokens: number | null }>(
        ctx,
        `provider, upstream_model, ${hasTier ? "tier, " : ""}SUM(COALESCE(cost_usd, 0)) AS cost, SUM(COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0)) AS tokens`,
        `AND (prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL) GROUP BY provider, upstream_model${hasTier ? ", tier" : ""}`,
      );
      // Without a tier column, the deployment that answered (provider + upstream model) has it in the config.
      const tierOf = new Map<string, string>();
      for (const g of Object.values(ctx.config.models)) {
        for (const d of g.deployments) if (d.tier && !tierOf.has(`${d.provider}\u0000${d.model}`)) tierOf.set(`${d.provider}\u0000${d.model}`, d.tier);
      }
      const cost = new Map<string, number>();
      const tokens = new Map<string, number>();
      for (const r of rows) {
        const tier = (hasTier && r.tier ? r.tier : undefined) ?? tierOf.get(`${r.provider}\u0000${r.upstream_model}`) ?? "none";
        cost.set(tier, (cost.get(tier) ?? 0) + (r.cost ?? 0));
        tokens.set(tier, (tokens.get(tier) ?? 0) + (r.tokens ?? 0));
      }
      return tierItems(ctx.config, cost, tokens);
    },
    async promql(ctx) {
      const cost = await promBy(ctx, `sum by (route_tier) (increase(billing_cost_total[${ctx.range}]))`, "route_tier");
      const tokens = await promBy(ctx, `sum by (route_tier) (increase(billing_tokens_total[${ctx.range}]))`, "route_tier");
      return tierItems(ctx.config, cost, tokens);
    },
  },
  {
    id: "attribution",
    title: "attribution",
    comparator: ">=",
    unit: "percent",
    threshold: (c) => c.thresholds.attribution,
    sql(ctx) {
      const r = windowRow<{ n: number; a: number | null }>(ctx, "COUNT(*) AS n, SUM(tenant IS NOT NULL AND tenant != 'anonymous') AS a");
      return ratio(r.a ?? 0, r.n, "no requests in the window");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(router_requests_total[${ctx.range}]))`);
      const a = (await promScalar(ctx, `sum(increase(router_requests_attributed_total[${ctx.range}]))`)) ?? 0;
      return all === null ? { none: "no requests in the window" } : ratio(a, all, "no requests in the window");
    },
  },
  {
    id: "kv_cache_hit_rate",
    title: "vLLM KV-cache hit rate",
    comparator: ">=",
    unit: "percent",
    threshold: (c) => c.thresholds.kv_cache_hit_rate,
    sql(ctx) {
      const names = vllmProviders(ctx, ctx.upstream);
      if (names.length === 0) return { none: "no vLLM provider" };
      const hist = (ctx.upstream?.history(ctx.from) ?? []).filter((h) => names.includes(h.provider));
      let hits = 0;
      let queries = 0;
      for (const h of hist) {
        const s = h.samples.filter((x) => x.ts <= ctx.to);
        hits += increase(s.map((x) => x.prefixCacheHits));
        queries += increase(s.map((x) => x.prefixCacheQueries));
      }
      if (hist.every((h) => h.samples.length === 0)) return { none: "no scrapes of the vLLM providers in the window" };
      return ratio(hits, queries, "no prefix-cache queries in the window");
    },
    async promql(ctx) {
      const names = vllmProviders(ctx);
      if (names.length === 0) return { none: "no vLLM provider" };
      const sel = `{provider=~"${promRegex(names)}"}`;
      const q = await promScalar(ctx, `sum(increase(upstream_prefix_cache_queries_total${sel}[${ctx.range}]))`);
      const h = (await promScalar(ctx, `sum(increase(upstream_prefix_cache_hits_total${sel}[${ctx.range}]))`)) ?? 0;
      return q === null ? { none: "no scrapes of the vLLM providers in the window" } : ratio(h, q, "no prefix-cache queries in the window");
    },
  },
  {
    id: "queue_depth_p95",
    title: "vLLM queue depth p95",
    comparator: "<=",
    unit: "count",
    threshold: (c) => c.thresholds.queue_depth_p95,
    sql(ctx) {
      const names = vllmProviders(ctx, ctx.upstream);
      if (names.length === 0) return { none: "no vLLM provider" };
      const items: Item[] = [];
      for (const h of ctx.upstream?.history(ctx.from) ?? []) {
        if (!names.includes(h.provider)) continue;
        const waiting = h.samples.filter((x) => x.ts <= ctx.to && x.waiting !== null).map((x) => x.waiting!);
        if (waiting.length > 0) items.push({ subject: h.provider, value: quantile(waiting, 0.95) });
      }
      return items.length > 0 ? { items } : { none: "no scrapes of the vLLM providers in the window" };
    },
    async promql(ctx) {
      const names = vllmProviders(ctx);
      if (names.length === 0) return { none: "no vLLM provider" };
      const by = await promBy(ctx, `quantile_over_time(0.95, upstream_requests_waiting{provider=~"${promRegex(names)}"}[${ctx.range}])`, "provider");
      const items = [...by].map(([subject, value]) => ({ subject, value }));
      return items.length > 0 ? { items } : { none: "no scrapes of the vLLM providers in the window" };
    },
  },
  {
    id: "batch_success",
    title: "batch success",
    comparator: ">=",
    unit: "percent",
    threshold: (c) => c.thresholds.batch_success,
    sql(ctx) {
      // Batches that reached a final status in the window (failed validation, completed, expired,
      // cancelled); success is completed, as batch_completed_success_total counts it.
      const hasTable = ctx.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batch'").get() !== undefined;
      if (!hasTable) return { none: "no batches in the window (this database has no batch queue)" };
      const r = new BatchStore(ctx.db).endedBetween(Math.floor(ctx.from / 1000), Math.floor(ctx.to / 1000));
      return ratio(r.completed, r.ended, "no batches in the window");
    },
    async promql(ctx) {
      const all = await promScalar(ctx, `sum(increase(batch_completed_total[${ctx.range}]))`);
      const ok = (await promScalar(ctx, `sum(increase(batch_completed_success_total[${ctx.range}]))`)) ?? 0;
      return all === null ? { none: "no batches in the window" } : ratio(ok, all, "no batches in the window");
    },
  },
];

function withMaintenance(ctx: GateContext, m: Measurement): Measurement {
  if (ctx.maintenance.size === 0 || "none" in m) return m;
  return { ...m, detail: [("detail" in m && m.detail) || "", `in maintenance: ${[...ctx.maintenance].join(", ")}`].filter(Boolean).join("; ") };
}

// ---------------------------------------------------------------- verdicts

function passes(value: number, comparator: Comparator, threshold: number): boolean {
  // Rounding noise (0.1 + 0.2) must not fail a value that is at its threshold.
  const eps = 1e-9 * Math.max(1, Math.abs(threshold));
  return comparator === ">=" ? value >= threshold - eps : value <= threshold + eps;
}

export function formatValue(value: number | null, unit: Unit): string {
  if (value === null) return "-";
  switch (unit) {
    case "percent": {
      // Three decimals at most: 99.952%, 0.476%, 97.5% (fewer would round 99.9995% up to 100%).
      return `${Number((value * 100).toFixed(3))}%`;
    }
    case "ms":
      return `${Number(value.toPrecision(value >= 100 ? 4 : 3))} ms`;
    case "count":
      return `${Number(value.toPrecision(4))}`;
    case "usd_per_1k":
      return `$${Number(value.toPrecision(3))}/1k`;
  }
}

export function judge(criterion: Criterion, ctx: GateContext, m: Measurement, title = criterion.title): CriterionResult {
  const threshold = criterion.threshold(ctx);
  const base = { id: criterion.id, title, comparator: criterion.comparator, threshold, limit: threshold === null ? "budget" : formatValue(threshold, criterion.unit) };
  if ("none" in m) return { ...base, verdict: "NO DATA", value: null, measured: "-", detail: m.none };
  if ("value" in m) {
    const verdict: Verdict = threshold === null ? "NO DATA" : passes(m.value, criterion.comparator, threshold) ? "PASS" : "FAIL";
    return { ...base, verdict, value: m.value, measured: formatValue(m.value, criterion.unit), ...(m.detail ? { detail: m.detail } : {}) };
  }
  const items = m.items.map((it) => {
    const t = it.threshold ?? threshold;
    return { ...it, verdict: (t === null ? "NO DATA" : passes(it.value, criterion.comparator, t) ? "PASS" : "FAIL") as Verdict };
  });
  // The worst subject: furthest past (or closest to) its threshold.
  const margin = (it: Item) => {
    const t = it.threshold ?? threshold ?? 0;
    const d = criterion.comparator === "<=" ? it.value - t : t - it.value;
    return t !== 0 ? d / Math.abs(t) : d;
  };
  const worst = items.reduce((a, b) => (margin(b) > margin(a) ? b : a));
  const verdict: Verdict = items.some((i) => i.verdict === "FAIL") ? "FAIL" : items.some((i) => i.verdict === "PASS") ? "PASS" : "NO DATA";
  const limit = worst.threshold ?? threshold;
  return {
    ...base,
    threshold: limit,
    limit: limit === null ? "budget" : formatValue(limit, criterion.unit),
    verdict,
    value: worst.value,
    subject: worst.subject,
    measured: `${formatValue(worst.value, criterion.unit)} (${worst.subject})`,
    items,
    ...(m.detail ? { detail: m.detail } : {}),
  };
}

// ---------------------------------------------------------------- running it

/** "30m", "90s", "1h", "2d", "500ms" -> ms; undefined when it is not a duration. */
export function parseWindow(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return n > 0 ? n : undefined;
}

export interface GateInput {
  config: LabgateConfig;
  windowMs: number;
  /** The window's name as given ("30m"). */
  window?: string;
  now?: number;
}

function context(input: GateInput): GateContext {
  const to = input.now ?? Date.now();
  const gate = (input.config as { gate?: { thresholds?: Partial<GateThresholds>; maintenance?: string[] } }).gate;
  return {
    config: input.config,
    thresholds: { ...DEFAULT_GATE_THRESHOLDS, ...(gate?.thresholds ?? {}) },
    maintenance: new Set(gate?.maintenance ?? []),
    windowMs: input.windowMs,
    from: to - input.windowMs,
    to,
  };
}

function report(input: GateInput, ctx: GateContext, source: GateReport["source"], criteria: CriterionResult[], prometheus?: string): GateReport {
  return {
    source,
    ...(prometheus ? { prometheus } : {}),
    window: input.window ?? `${Math.round(input.windowMs / 1000)}s`,
    from: new Date(ctx.from).toISOString(),
    to: new Date(ctx.to).toISOString(),
    verdict: criteria.some((c) => c.verdict === "FAIL") ? "FAIL" : "PASS",
    criteria,
  };
}

/** The gate over labgate's own request log (and the upstream figures scraped by the gateway). */
export function evaluateGate(input: GateInput & { db: Database.Database; upstream?: UpstreamHistory }): GateReport {
  const ctx = context(input);
  const columns = new Set((input.db.prepare("PRAGMA table_info(request_log)").all() as { name: string }[]).map((c) => c.name));
  const sqlCtx: SqlContext = { ...ctx, db: input.db, columns, upstream: input.upstream };
  const criteria = CRITERIA.map((c) => {
    let m: Measurement;
    try {
      m = c.sql(sqlCtx);
    } catch (err) {
      m = { none: `cannot measure: ${(err as Error).message}` };
    }
    return judge(c, ctx, m);
  });
  return report(input, ctx, "request-log", criteria);
}

/** The same criteria as PromQL against a Prometheus that scrapes labgate. */
export async function evaluateGatePrometheus(input: GateInput & { url: string; fetch?: typeof fetch }): Promise<GateReport> {
  const ctx = context(input);
  const base = input.url.replace(/\/+$/, "");
  const doFetch = input.fetch ?? fetch;
  const query: PromContext["query"] = async (promql) => {
    const url = `${base}/api/v1/query?query=${encodeURIComponent(promql)}&time=${(ctx.to / 1000).toFixed(3)}`;
    const r = await doFetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
    if (body.status !== "success") throw new Error(`${promql}: ${body.error ?? r.status}`);
    const d = body.data!;
    if (d.resultType === "scalar") return [{ metric: {}, value: Number((d.result as [number, string])[1]) }];
    return (d.result as { metric: Record<string, string>; value: [number, string] }[]).map((x) => ({ metric: x.metric, value: Number(x.value[1]) }));
  };
  const promCtx: PromContext = { ...ctx, query, range: `${Math.max(1, Math.round(input.windowMs / 1000))}s` };
  const criteria: CriterionResult[] = [];
  for (const c of CRITERIA) {
    let m: Measurement;
    try {
      m = await c.promql(promCtx);
    } catch (err) {
      m = { none: `query failed: ${(err as Error).message}` };
    }
    criteria.push(judge(c, ctx, m, c.promTitle ?? c.title));
  }
  return report(input, ctx, "prometheus", criteria, base);
}

/** One line per criterion: `PASS  availability  99.95%  >= 99.9%`, aligned. */
export function formatGateTable(r: GateReport): string {
  const rows = r.criteria.map((c) => [c.verdict, c.title, c.measured, `${c.comparator} ${c.limit}`, c.detail ?? ""]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell))
      .join("  ")
      .trimEnd(),
  );
  const head = `readiness gate over ${r.window} (${r.from} .. ${r.to}), from ${r.source === "prometheus" ? `Prometheus ${r.prometheus}` : "the request log"}`;
  const fails = r.criteria.filter((c) => c.verdict === "FAIL").length;
  const noData = r.criteria.filter((c) => c.verdict === "NO DATA").length;
  const foot = `${r.verdict}: ${fails} of ${r.criteria.length} criteria failed${noData > 0 ? `, ${noData} without data` : ""}`;
  return [head, ...lines, foot].join("\n") + "\n";
}
