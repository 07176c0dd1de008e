// Hourly rollups of the request log, what analytics (/admin/analytics, `labgate report`)
// reads instead of the rows: per hour, requests, errors, tokens and cost by provider x model
// x tenant x tier; requests by provider; errors by provider x class; fallbacks by first
// provider x last provider; a TTFB histogram by provider in fixed logarithmic bins. Each in
// its own small table, so that no query reads the others' dimensions. RequestLog calls add() inside the transaction
// that inserts a batch: the batch is summed in memory first, so a batch of 500 rows from a
// few models costs a handful of upserts, not 500. The request path itself does nothing more.
import type { Db } from "./db.ts";
import type { RequestLogRow } from "./request-log.ts";

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Bins per doubling of the TTFB histogram: each bin is 2^(1/8) = 9.05% wide. */
export const TTFB_BINS_PER_OCTAVE = 8;
/**
 * Relative error of a percentile read from the histogram: the value reported is the bin's
 * geometric middle, within 2^(1/16) - 1 = 4.4% of any value in that bin, so of the exact
 * (nearest-rank) percentile of the rows.
 */
export const TTFB_RELATIVE_PRECISION = 2 ** (1 / (2 * TTFB_BINS_PER_OCTAVE)) - 1;

/** The histogram bin of a TTFB (values below 1 µs share the lowest bin). */
export function ttfbBin(ms: number): number {
  return Math.floor(Math.log2(Math.max(ms, 0.001)) * TTFB_BINS_PER_OCTAVE);
}

/** The value a bin stands for: its geometric middle. */
export function ttfbBinValue(bin: number): number {
  return 2 ** ((bin + 0.5) / TTFB_BINS_PER_OCTAVE);
}

export function hourOf(ts: number): number {
  return Math.floor(ts / HOUR_MS) * HOUR_MS;
}

/** Attempts made: the last attempt's number (the stored list may be cut short), 0 when none. */
export function attemptCount(row: Pick<RequestLogRow, "attempts">): number {
  const last = row.attempts[row.attempts.length - 1];
  return last ? Math.max(row.attempts.length, last.attempt) : 0;
}

/** A request went past its first attempt (another deployment, a retry, or down a fallback chain). */
export function isFallback(row: Pick<RequestLogRow, "fallback_depth" | "attempt_count">): boolean {
  return row.fallback_depth > 0 || (row.attempt_count ?? 1) > 1;
}

/** Sums for one table's rows in a batch: key parts, then the counters added. */
class Sums {
  readonly rows = new Map<string, (string | number)[]>();
  private readonly keyParts: number;
  constructor(keyParts: number) {
    this.keyParts = keyParts;
  }
  add(key: (string | number)[], values: number[]): void {
    const k = key.join("\u0001");
    const row = this.rows.get(k);
    if (!row) {
      this.rows.set(k, [...key, ...values]);
      return;
    }
    for (let i = 0; i < values.length; i++) (row[this.keyParts + i] as number) += values[i]!;
  }
}

/** Tables of the rollups (migration 3), oldest hour first in each primary key. */
export const ROLLUP_TABLES = ["request_rollup", "request_rollup_provider", "request_rollup_error", "request_rollup_fallback", "request_rollup_ttfb"] as const;

export class RollupWriter {
  private readonly spend;
  private readonly spendDay;
  private readonly provider;
  private readonly error;
  private readonly fallback;
  private readonly ttfb;

  constructor(db: Db) {
    this.spend = db.prepare(`INSERT INTO request_rollup (hour, provider, model, tenant, tier, requests, errors, prompt_tokens, completion_tokens, cost_usd)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (hour, provider, model, tenant, tier) DO UPDATE SET
        requests = requests + excluded.requests, errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens, cost_usd = cost_usd + excluded.cost_usd`);
    this.spendDay = db.prepare(`INSERT INTO request_rollup_day (day, provider, model, tenant, tier, requests, errors, prompt_tokens, completion_tokens, cost_usd)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (day, provider, model, tenant, tier) DO UPDATE SET
        requests = requests + excluded.requests, errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens, cost_usd = cost_usd + excluded.cost_usd`);
    this.provider = db.prepare(`INSERT INTO request_rollup_provider (hour, provider, requests, errors) VALUES (?, ?, ?, ?)
      ON CONFLICT (hour, provider) DO UPDATE SET requests = requests + excluded.requests, errors = errors + excluded.errors`);
    this.error = db.prepare(`INSERT INTO request_rollup_error (hour, provider, error_class, n) VALUES (?, ?, ?, ?)
      ON CONFLICT (hour, provider, error_class) DO UPDATE SET n = n + excluded.n`);
    this.fallback = db.prepare(`INSERT INTO request_rollup_fallback (hour, first_provider, provider, n, ok) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (hour, first_provider, provider) DO UPDATE SET n = n + excluded.n, ok = ok + excluded.ok`);
    this.ttfb = db.prepare(`INSERT INTO request_rollup_ttfb (hour, provider, bin, n) VALUES (?, ?, ?, ?)
      ON CONFLICT (hour, provider, bin) DO UPDATE SET n = n + excluded.n`);
  }

  /** Adds a batch of rows to the rollups. Call inside the transaction that inserts them. */
  add(rows: readonly RequestLogRow[]): void {
    const spend = new Sums(5);
    const spendDay = new Sums(5);
    const provider = new Sums(2);
    const error = new Sums(3);
    const fallback = new Sums(3);
    const ttfb = new Sums(3);
    for (const r of rows) {
      const hour = hourOf(r.ts);
      const p = r.provider ?? "";
      const failed = r.status >= 400 ? 1 : 0;
      const sums = [1, failed, r.prompt_tokens ?? 0, r.completion_tokens ?? 0, r.cost_usd ?? 0];
      spend.add([hour, p, r.public_model, r.tenant ?? "", r.tier ?? ""], sums);
      spendDay.add([Math.floor(hour / DAY_MS) * DAY_MS, p, r.public_model, r.tenant ?? "", r.tier ?? ""], sums);
      provider.add([hour, p], [1, failed]);
      if (r.error_class !== null) error.add([hour, p, r.error_class], [1]);
      if (isFallback({ fallback_depth: r.fallback_depth, attempt_count: r.attempt_count ?? attemptCount(r) })) {
        fallback.add([hour, r.first_provider ?? r.attempts[0]?.provider ?? "", p], [1, 1 - failed]);
      }
      if (r.ttfb_ms !== null && r.ttfb_ms !== undefined) ttfb.add([hour, p, ttfbBin(r.ttfb_ms)], [1]);
    }
    for (const row of spend.rows.values()) this.spend.run(row);
    for (const row of spendDay.rows.values()) this.spendDay.run(row);
    for (const row of provider.rows.values()) this.provider.run(row);
    for (const row of error.rows.values()) this.error.run(row);
    for (const row of fallback.rows.values()) this.fallback.run(row);
    for (const row of ttfb.rows.values()) this.ttfb.run(row);
  }
}
