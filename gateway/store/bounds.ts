// Bounds on what the store keeps of one request, whoever the caller: a model name,
// tenant or error class a client made 5 MB long is stored as its first few hundred
// characters and a mark, never whole (ten such 404s once grew the data folder by 120 MB).
import type { AttemptRecord, RequestLogRow } from "./request-log.ts";

/** Longest text kept in one column (model, tenant, provider, error class...), mark included. */
export const MAX_STORED_CHARS = 256;
/** Attempts kept per row: the first ones and the last (their `attempt` numbers show the gap). */
export const MAX_STORED_ATTEMPTS = 16;
/** Marks a value cut short. */
export const TRUNCATION_MARK = "…";

/**
 * `s` when it fits in `max` characters; otherwise its first max-1 characters and "…".
 * The cut copies the kept characters: a slice of a 5 MB string would keep all of it alive in the log's queue.
 */
export function boundText(s: string, max: number = MAX_STORED_CHARS): string {
  if (s.length <= max) return s;
  let end = max - TRUNCATION_MARK.length;
  // Never split a surrogate pair.
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return Buffer.from(s.slice(0, end) + TRUNCATION_MARK, "utf8").toString("utf8");
}

function boundNullable(s: string | null): string | null {
  return s === null ? null : boundText(s);
}

function boundAttempt(a: AttemptRecord): AttemptRecord {
  if (a.provider.length <= MAX_STORED_CHARS && a.deployment.length <= MAX_STORED_CHARS && (a.error_class?.length ?? 0) <= MAX_STORED_CHARS) return a;
  return { ...a, provider: boundText(a.provider), deployment: boundText(a.deployment), error_class: boundNullable(a.error_class) };
}

/** At most MAX_STORED_ATTEMPTS attempts (the first ones and the last), each field bounded. */
export function boundAttempts(attempts: readonly AttemptRecord[]): AttemptRecord[] {
  const kept = attempts.length <= MAX_STORED_ATTEMPTS ? attempts : [...attempts.slice(0, MAX_STORED_ATTEMPTS - 1), attempts[attempts.length - 1]!];
  let out: AttemptRecord[] | undefined;
  for (let i = 0; i < kept.length; i++) {
    const b = boundAttempt(kept[i]!);
    if (b !== kept[i] && !out) out = kept.slice(0, i);
    out?.push(b);
  }
  return out ?? (kept as AttemptRecord[]);
}

const fits = (s: string | null): boolean => s === null || s.length <= MAX_STORED_CHARS;

/** The row as the store keeps it: every text and the attempts bounded; the row itself when all fit already. */
export function boundRow(r: RequestLogRow): RequestLogRow {
  const attempts = boundAttempts(r.attempts);
  if (
    attempts === r.attempts &&
    fits(r.id) &&
    fits(r.tenant) &&
    fits(r.operation) &&
    fits(r.public_model) &&
    fits(r.provider) &&
    fits(r.upstream_model) &&
    fits(r.error_class) &&
    fits(r.tier ?? null) &&
    fits(r.first_provider ?? null)
  ) {
    return r;
  }
  return {
    ...r,
    id: boundText(r.id),
    tenant: boundNullable(r.tenant),
    operation: boundText(r.operation),
    public_model: boundText(r.public_model),
    provider: boundNullable(r.provider),
    upstream_model: boundNullable(r.upstream_model),
    error_class: boundNullable(r.error_class),
    ...(r.tier != null ? { tier: boundText(r.tier) } : {}),
    ...(r.first_provider != null ? { first_provider: boundText(r.first_provider) } : {}),
    attempts,
  };
}
