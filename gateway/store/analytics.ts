// Analytics over the request log's hourly rollups (store/rollup.ts): spend, traffic
// distribution, fallbacks, TTFB percentiles and errors, per hour or day, in shapes a
// chart draws as they are: every series has one point per bucket of the range, zeros
// included, buckets in time order. Read-only: these run on their own connection in a
// worker (analytics-client.ts) for the admin API, and straight on the file for `labgate report`.
import type { Db } from "./db.ts";
import { DAY_MS, HOUR_MS, TTFB_RELATIVE_PRECISION, ttfbBinValue } from "./rollup.ts";

export type Bucket = "hour" | "day";
export const SPEND_DIMENSIONS = ["provider", "model", "tenant", "tier"] as const;
export type SpendDimension = (typeof SPEND_DIMENSIONS)[number];
export const ANALYTICS_QUERIES = ["spend", "distribution", "fallbacks", "ttfb", "errors"] as const;
export type AnalyticsQuery = (typeof ANALYTICS_QUERIES)[number];

/** Most buckets one answer holds (about 90 days by hour, 10 years by day). */
export const MAX_BUCKETS = 2200;
/** Series per answer by default, and at most: the largest first; `truncated` says how many were left out. */
export const DEFAULT_SERIES_LIMIT = 100;
export const MAX_SERIES_LIMIT = 1000;

export interface AnalyticsParams {
  /** ms since epoch; rounded down to the start of its bucket (UTC). */
  from: number;
  /** ms since epoch, exclusive; rounded up to the end of its bucket. */
  to: number;
  bucket: Bucket;
  /** spend only: the dimensions series are split by (default all four). */
  groupBy?: SpendDimension[];
  /** Most series (default DEFAULT_SERIES_LIMIT). */
  limit?: number;
}

export interface Series<K, P> {
  key: K;
  total: Omit<P, "t">;
  points: P[];
}

export interface AnalyticsAnswer<K, P> {
  object: string;
  bucket: Bucket;
  /** The range covered, bucket-aligned: [from, to) in ms since epoch (UTC). */
  from: number;
  to: number;
  /** The start of every bucket, in order: every series' points line up with these. */
  buckets: number[];
  series: Series<K, P>[];
  /** Series left out by the limit (the smallest). */
  truncated: number;
}

export function bucketMs(bucket: Bucket): number {
  return bucket === "day" ? DAY_MS : HOUR_MS;
}

/** The range rounded out to whole buckets, and each bucket's start. */
export function alignRange(from: number, to: number, bucket: Bucket): { from: number; to: number; buckets: number[] } {
  const size = bucketMs(bucket);
  const f = Math.floor(from / size) * size;
  const t = Math.max(f + size, Math.ceil(to / size) * size);
  const buckets: number[] = [];
  for (let x = f; x < t; x += size) buckets.push(x);
  return { from: f, to: t, buckets };
}

const nul = (s: string): string | null => (s === "" ? null : s);

function bucketSql(bucket: Bucket): string {
  return bucket === "day" ? `(hour / ${DAY_MS}) * ${DAY_MS}` : "hour";
}

/**
 * Groups rows (one per bucket and key) into series: the `limit` heaviest keys by the sum of
 * their rows' weights, each with one point per bucket (zeros where it has no row). Only the
 * kept series are made dense.
 */
function densify<K, P extends { t: number }>(
  buckets: number[],
  rows: Iterable<{ t: number; keyId: string; key: K; weight: number; add: (p: P) => void }>,
  zero: (t: number) => P,
  totalOf: (points: P[]) => Omit<P, "t">,
  limit: number,
): { series: Series<K, P>[]; truncated: number } {
  const index = new Map<number, number>();
  buckets.forEach((b, i) => index.set(b, i));
  const byKey = new Map<string, { key: K; weight: number; rows: { t: number; add: (p: P) => void }[] }>();
  for (const r of rows) {
    let s = byKey.get(r.keyId);
    if (!s) byKey.set(r.keyId, (s = { key: r.key, weight: 0, rows: [] }));
    s.weight += r.weight;
    s.rows.push(r);
  }
  const ranked = [...byKey.values()].sort((a, b) => b.weight - a.weight);
  const series = ranked.slice(0, limit).map((s) => {
    const points = buckets.map(zero);
    for (const r of s.rows) {
      const i = index.get(r.t);
      if (i !== undefined) r.add(points[i]!);
    }
    return { key: s.key, total: totalOf(points), points };
  });
  return { series, truncated: Math.max(0, ranked.length - limit) };
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

export interface SpendKey {
  provider?: string | null;
  model?: string | null;
  tenant?: string | null;
  tier?: string | null;
}
export interface SpendPoint {
  t: number;
  cost_usd: number;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export function spend(db: Db, p: AnalyticsParams): AnalyticsAnswer<SpendKey, SpendPoint> & { group_by: SpendDimension[] } {
  const r = alignRange(p.from, p.to, p.bucket);
  const dims = p.groupBy && p.groupBy.length > 0 ? SPEND_DIMENSIONS.filter((d) => p.groupBy!.includes(d)) : [...SPEND_DIMENSIONS];
  const sel = dims.map((d) => `, ${d}`).join("");
  const list = dims.join(", ");
  const limit = limitOf(p);
  // The series kept are chosen first, from every key's total over the range (a few hundred
  // rows), and only their rows come out: a week by hour of every key is ~80,000 rollup rows
  // on a 1M-row log, and turning them all into JS values took most of a query's time. Whole
  // days come from the daily rollups (24 times fewer rows), the hours at either end from the hourly ones.
  const firstDay = Math.ceil(r.from / DAY_MS) * DAY_MS;
  const lastDay = Math.floor(r.to / DAY_MS) * DAY_MS;
  const parts: string[] = [];
  const totalArgs: number[] = [];
  if (lastDay > firstDay) {
    parts.push(`SELECT ${list}, cost_usd AS c, requests AS n FROM request_rollup_day WHERE day >= ? AND day < ?`);
    totalArgs.push(firstDay, lastDay);
    for (const [a, b] of [[r.from, firstDay], [lastDay, r.to]] as const) {
      if (b <= a) continue;
      parts.push(`SELECT ${list}, cost_usd, requests FROM request_rollup WHERE hour >= ? AND hour < ?`);
      totalArgs.push(a, b);
    }
  } else {
    parts.push(`SELECT ${list}, cost_usd AS c, requests AS n FROM request_rollup WHERE hour >= ? AND hour < ?`);
    totalArgs.push(r.from, r.to);
  }
  const totals = db
    .prepare(`SELECT ${list}, sum(c), sum(n) FROM (${parts.join(" UNION ALL ")}) GROUP BY ${list}`)
    .raw()
    .all(...totalArgs) as (string | number)[][];
  const keys = totals.length;
  let filter = "";
  const args: (number | string)[] = [r.from, r.to];
  if (keys > limit) {
    const nd = dims.length;
    totals.sort((a, b) => (b[nd] as number) - (a[nd] as number) || (b[nd + 1] as number) - (a[nd + 1] as number));
    filter = `AND (${list}) IN (SELECT ${dims.map((_, i) => `value ->> ${i}`).join(", ")} FROM json_each(?))`;
    args.push(JSON.stringify(totals.slice(0, limit).map((t) => t.slice(0, nd))));
  }
  // By day the range is whole days: the daily rollups alone.
  const rows = db
    .prepare(
      p.bucket === "day"
        ? `SELECT day AS t${sel}, sum(cost_usd), sum(requests), sum(prompt_tokens), sum(completion_tokens)
           FROM request_rollup_day WHERE day >= ? AND day < ? ${filter} GROUP BY t${sel}`
        : `SELECT hour AS t${sel}, sum(cost_usd), sum(requests), sum(prompt_tokens), sum(completion_tokens)
           FROM request_rollup WHERE hour >= ? AND hour < ? ${filter} GROUP BY t${sel}`,
    )
    .raw()
    .all(...args) as (string | number)[][];
  const n = dims.length;
  const { series } = densify<SpendKey, SpendPoint>(
    r.buckets,
    rows.map((row) => {
      const key: SpendKey = {};
      dims.forEach((d, i) => (key[d] = nul(row[1 + i] as string)));
      return {
        t: row[0] as number,
        keyId: row.slice(1, 1 + n).join("\u0001"),
        key,
        // Largest spend first; among free ones, the most requests.
        weight: (row[1 + n] as number) * 1e6 + (row[2 + n] as number) * 1e-6,
        add: (pt: SpendPoint) => {
          pt.cost_usd = round6(pt.cost_usd + (row[1 + n] as number));
          pt.requests += row[2 + n] as number;
          pt.prompt_tokens += row[3 + n] as number;
          pt.completion_tokens += row[4 + n] as number;
        },
      };
    }),
    (t) => ({ t, cost_usd: 0, requests: 0, prompt_tokens: 0, completion_tokens: 0 }),
    (pts) => ({
      cost_usd: round6(pts.reduce((a, x) => a + x.cost_usd, 0)),
      requests: pts.reduce((a, x) => a + x.requests, 0),
      prompt_tokens: pts.reduce((a, x) => a + x.prompt_tokens, 0),
      completion_tokens: pts.reduce((a, x) => a + x.completion_tokens, 0),
    }),
    limitOf(p),
  );
  return { object: "analytics.spend", bucket: p.bucket, from: r.from, to: r.to, group_by: dims, buckets: r.buckets, series, truncated: Math.max(0, keys - limit) };
}

export interface ProviderKey {
  provider: string | null;
}
export interface DistributionPoint {
  t: number;
  requests: number;
  /** This provider's share of the bucket's requests (0 when the bucket has none). */
  share: number;
}

export function distribution(db: Db, p: AnalyticsParams): AnalyticsAnswer<ProviderKey, DistributionPoint> {
  const r = alignRange(p.from, p.to, p.bucket);
  const rows = db
    .prepare(`SELECT ${bucketSql(p.bucket)} AS t, provider, sum(requests) FROM request_rollup_provider WHERE hour >= ? AND hour < ? GROUP BY t, provider`)
    .raw()
    .all(r.from, r.to) as [number, string, number][];
  const perBucket = new Map<number, number>();
  for (const [t, , n] of rows) perBucket.set(t, (perBucket.get(t) ?? 0) + n);
  const { series, truncated } = densify<ProviderKey, DistributionPoint>(
    r.buckets,
    rows.map(([t, provider, n]) => ({
      t,
      keyId: provider,
      key: { provider: nul(provider) },
      weight: n,
      add: (pt: DistributionPoint) => {
        pt.requests += n;
        pt.share = round6(pt.requests / (perBucket.get(t) ?? 1));
      },
    })),
    (t) => ({ t, requests: 0, share: 0 }),
    (pts) => {
      const requests = pts.reduce((a, x) => a + x.requests, 0);
      const all = [...perBucket.values()].reduce((a, x) => a + x, 0);
      return { requests, share: all > 0 ? round6(requests / all) : 0 };
    },
    limitOf(p),
  );
  return { object: "analytics.distribution", bucket: p.bucket, from: r.from, to: r.to, buckets: r.buckets, series, truncated };
}

export interface FallbackKey {
  /** Provider of the first attempt. */
  from: string | null;
  /** Provider that answered (or was tried last). */
  to: string | null;
}
export interface FallbackPoint {
  t: number;
  count: number;
  success: number;
  failure: number;
}

export function fallbacks(db: Db, p: AnalyticsParams): AnalyticsAnswer<FallbackKey, FallbackPoint> & {
  data: { from: string | null; to: string | null; count: number; success: number; failure: number; success_rate: number }[];
} {
  const r = alignRange(p.from, p.to, p.bucket);
  const rows = db
    .prepare(
      `SELECT ${bucketSql(p.bucket)} AS t, first_provider, provider, sum(n), sum(ok)
       FROM request_rollup_fallback WHERE hour >= ? AND hour < ? GROUP BY t, first_provider, provider`,
    )
    .raw()
    .all(r.from, r.to) as [number, string, string, number, number][];
  const { series, truncated } = densify<FallbackKey, FallbackPoint>(
    r.buckets,
    rows.map(([t, from, to, n, ok]) => ({
      t,
      keyId: `${from}\u0001${to}`,
      key: { from: nul(from), to: nul(to) },
      weight: n,
      add: (pt: FallbackPoint) => {
        pt.count += n;
        pt.success += ok;
        pt.failure += n - ok;
      },
    })),
    (t) => ({ t, count: 0, success: 0, failure: 0 }),
    (pts) => ({
      count: pts.reduce((a, x) => a + x.count, 0),
      success: pts.reduce((a, x) => a + x.success, 0),
      failure: pts.reduce((a, x) => a + x.failure, 0),
    }),
    limitOf(p),
  );
  const data = series.map((s) => ({ ...s.key, ...s.total, success_rate: s.total.count > 0 ? round6(s.total.success / s.total.count) : 0 }));
  return { object: "analytics.fallbacks", bucket: p.bucket, from: r.from, to: r.to, data, buckets: r.buckets, series, truncated };
}

export interface TtfbPoint {
  t: number;
  /** Requests with a TTFB in the bucket. */
  count: number;
  /** null when count is 0. */
  p50_ms: number | null;
  p95_ms: number | null;
}

/** Nearest-rank percentile of a histogram (bins sorted ascending), as the bin's middle value. */
export function histogramPercentile(bins: [number, number][], total: number, q: number): number | null {
  if (total <= 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [bin, n] of bins) {
    seen += n;
    if (seen >= rank) return Math.round(ttfbBinValue(bin) * 1000) / 1000;
  }
  return Math.round(ttfbBinValue(bins[bins.length - 1]![0]) * 1000) / 1000;
}

export function ttfb(db: Db, p: AnalyticsParams): AnalyticsAnswer<ProviderKey, TtfbPoint> & { precision: number } {
  const r = alignRange(p.from, p.to, p.bucket);
  const rows = db
    .prepare(
      `SELECT ${bucketSql(p.bucket)} AS t, provider, bin, sum(n) FROM request_rollup_ttfb WHERE hour >= ? AND hour < ?
       GROUP BY t, provider, bin ORDER BY provider, t, bin`,
    )
    .raw()
    .all(r.from, r.to) as [number, string, number, number][];
  // Histograms per provider and bucket, and over the whole range per provider.
  const hist = new Map<string, Map<number, [number, number][]>>();
  const whole = new Map<string, Map<number, number>>();
  for (const [t, provider, bin, n] of rows) {
    let byT = hist.get(provider);
    if (!byT) hist.set(provider, (byT = new Map()));
    let bins = byT.get(t);
    if (!bins) byT.set(t, (bins = []));
    bins.push([bin, n]);
    let w = whole.get(provider);
    if (!w) whole.set(provider, (w = new Map()));
    w.set(bin, (w.get(bin) ?? 0) + n);
  }
  const all: Series<ProviderKey, TtfbPoint>[] = [];
  for (const [provider, byT] of hist) {
    const points = r.buckets.map((t): TtfbPoint => {
      const bins = byT.get(t);
      if (!bins) return { t, count: 0, p50_ms: null, p95_ms: null };
      const count = bins.reduce((a, [, n]) => a + n, 0);
      return { t, count, p50_ms: histogramPercentile(bins, count, 0.5), p95_ms: histogramPercentile(bins, count, 0.95) };
    });
    const wbins = [...whole.get(provider)!.entries()].sort((a, b) => a[0] - b[0]);
    const count = wbins.reduce((a, [, n]) => a + n, 0);
    all.push({ key: { provider: nul(provider) }, total: { count, p50_ms: histogramPercentile(wbins, count, 0.5), p95_ms: histogramPercentile(wbins, count, 0.95) }, points });
  }
  all.sort((a, b) => b.total.count - a.total.count);
  const limit = limitOf(p);
  return {
    object: "analytics.ttfb",
    bucket: p.bucket,
    from: r.from,
    to: r.to,
    precision: Math.round(TTFB_RELATIVE_PRECISION * 10000) / 10000,
    buckets: r.buckets,
    series: all.slice(0, limit),
    truncated: Math.max(0, all.length - limit),
  };
}

export interface ErrorKey {
  provider: string | null;
  error_class: string;
}
export interface ErrorPoint {
  t: number;
  errors: number;
}

export function errors(db: Db, p: AnalyticsParams): AnalyticsAnswer<ErrorKey, ErrorPoint> {
  const r = alignRange(p.from, p.to, p.bucket);
  const rows = db
    .prepare(
      `SELECT ${bucketSql(p.bucket)} AS t, provider, error_class, sum(n) FROM request_rollup_error
       WHERE hour >= ? AND hour < ? GROUP BY t, provider, error_class`,
    )
    .raw()
    .all(r.from, r.to) as [number, string, string, number][];
  const { series, truncated } = densify<ErrorKey, ErrorPoint>(
    r.buckets,
    rows.map(([t, provider, cls, n]) => ({
      t,
      keyId: `${provider}\u0001${cls}`,
      key: { provider: nul(provider), error_class: cls },
      weight: n,
      add: (pt: ErrorPoint) => {
        pt.errors += n;
      },
    })),
    (t) => ({ t, errors: 0 }),
    (pts) => ({ errors: pts.reduce((a, x) => a + x.errors, 0) }),
    limitOf(p),
  );
  return { object: "analytics.errors", bucket: p.bucket, from: r.from, to: r.to, buckets: r.buckets, series, truncated };
}

function limitOf(p: AnalyticsParams): number {
  return Math.min(MAX_SERIES_LIMIT, Math.max(1, Math.floor(p.limit ?? DEFAULT_SERIES_LIMIT)));
}

export function runAnalytics(db: Db, query: AnalyticsQuery, params: AnalyticsParams): unknown {
  switch (query) {
    case "spend":
      return spend(db, params);
    case "distribution":
      return distribution(db, params);
    case "fallbacks":
      return fallbacks(db, params);
    case "ttfb":
      return ttfb(db, params);
    case "errors":
      return errors(db, params);
  }
}

export interface Summary {
  from: number;
  to: number;
  requests: number;
  errors: number;
  cost_usd: number;
  spend: { provider: string | null; model: string; tier: string | null; requests: number; cost_usd: number; prompt_tokens: number; completion_tokens: number }[];
  providers: { provider: string | null; requests: number; errors: number; p50_ttfb_ms: number | null; p95_ttfb_ms: number | null }[];
  error_classes: { provider: string | null; error_class: string; errors: number }[];
  fallbacks: { from: string | null; to: string | null; count: number; success: number; success_rate: number }[];
  ttfb_precision: number;
}

/** Totals over a range (whole hours), for `labgate report`. */
export function summary(db: Db, fromMs: number, toMs: number): Summary {
  const from = Math.floor(fromMs / HOUR_MS) * HOUR_MS;
  const to = Math.ceil(toMs / HOUR_MS) * HOUR_MS;
  const spendRows = db
    .prepare(
      `SELECT provider, model, tier, sum(requests) AS requests, sum(cost_usd) AS cost_usd, sum(prompt_tokens) AS prompt_tokens,
         sum(completion_tokens) AS completion_tokens
       FROM request_rollup WHERE hour >= ? AND hour < ? GROUP BY provider, model, tier ORDER BY cost_usd DESC, requests DESC`,
    )
    .all(from, to) as { provider: string; model: string; tier: string; requests: number; cost_usd: number; prompt_tokens: number; completion_tokens: number }[];
  const provRows = db
    .prepare(`SELECT provider, sum(requests) AS requests, sum(errors) AS errors FROM request_rollup_provider WHERE hour >= ? AND hour < ? GROUP BY provider ORDER BY requests DESC`)
    .all(from, to) as { provider: string; requests: number; errors: number }[];
  const binRows = db
    .prepare(`SELECT provider, bin, sum(n) AS n FROM request_rollup_ttfb WHERE hour >= ? AND hour < ? GROUP BY provider, bin ORDER BY provider, bin`)
    .raw()
    .all(from, to) as [string, number, number][];
  const bins = new Map<string, [number, number][]>();
  for (const [provider, bin, n] of binRows) {
    let b = bins.get(provider);
    if (!b) bins.set(provider, (b = []));
    b.push([bin, n]);
  }
  const errRows = db
    .prepare(
      `SELECT provider, error_class, sum(n) AS errors FROM request_rollup_error WHERE hour >= ? AND hour < ?
       GROUP BY provider, error_class ORDER BY errors DESC`,
    )
    .all(from, to) as { provider: string; error_class: string; errors: number }[];
  const fbRows = db
    .prepare(
      `SELECT first_provider AS "from", provider AS "to", sum(n) AS count, sum(ok) AS success FROM request_rollup_fallback
       WHERE hour >= ? AND hour < ? GROUP BY first_provider, provider ORDER BY count DESC`,
    )
    .all(from, to) as { from: string; to: string; count: number; success: number }[];
  const providers = provRows.map((p) => {
    const b = bins.get(p.provider) ?? [];
    const n = b.reduce((a, [, c]) => a + c, 0);
    return { provider: nul(p.provider), requests: p.requests, errors: p.errors, p50_ttfb_ms: histogramPercentile(b, n, 0.5), p95_ttfb_ms: histogramPercentile(b, n, 0.95) };
  });
  return {
    from,
    to,
    requests: provRows.reduce((a, p) => a + p.requests, 0),
    errors: provRows.reduce((a, p) => a + p.errors, 0),
    cost_usd: round6(spendRows.reduce((a, s) => a + s.cost_usd, 0)),
    spend: spendRows.map((s) => ({ ...s, provider: nul(s.provider), tier: nul(s.tier), cost_usd: round6(s.cost_usd) })),
    providers,
    error_classes: errRows.map((e) => ({ ...e, provider: nul(e.provider) })),
    fallbacks: fbRows.map((f) => ({ from: nul(f.from), to: nul(f.to), count: f.count, success: f.success, success_rate: f.count > 0 ? round6(f.success / f.count) : 0 })),
    ttfb_precision: Math.round(TTFB_RELATIVE_PRECISION * 10000) / 10000,
  };
}
