// The request log: one row per request, queued in memory and written in batched
// transactions so the hot path never waits on the disk.
import { boundRow } from "./bounds.ts";
import type { Statement } from "better-sqlite3";
import type { Db } from "./db.ts";
import { attemptCount, RollupWriter } from "./rollup.ts";

export interface AttemptRecord {
  attempt: number;
  provider: string;
  deployment: string;
  error_class: string | null;
  ms: number;
}

export interface RequestLogRow {
  id: string;
  ts: number;
  tenant: string | null;
  operation: string;
  public_model: string;
  provider: string | null;
  upstream_model: string | null;
  fallback_depth: number;
  is_overflow: boolean;
  /** Routed while its model group was in panic (open breakers ignored). */
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
  attempts: AttemptRecord[];
  /** Tier of the deployment that answered (null when unknown). */
  tier?: string | null;
  /** Attempts made (0: nothing was tried); from `attempts` when absent. */
  attempt_count?: number;
  /** Provider of the first attempt (for fallbacks from -> to); from `attempts` when absent. */
  first_provider?: string | null;
}

/** Most rows one page of the log holds (GET /admin/requests?limit=). */
export const MAX_PAGE_ROWS = 500;
/** Most bytes of JSON one page holds: it ends early rather than pass them (it always holds one row). */
export const MAX_PAGE_BYTES = 1024 * 1024;

export interface RecentPage {
  rows: RequestLogRow[];
  /** Older rows exist beyond this page. */
  hasMore: boolean;
}

/** A place in the log's order (newest first: ts, then insertion order): what keyset pages continue from. */
export interface LogCursor {
  ts: number;
  rowid: number;
}

/** Which rows one page of the log holds (GET /admin/requests): every filter is optional and they combine. */
export interface RequestLogQuery {
  /** The public model asked for. */
  model?: string;
  /** The provider that answered (or was tried last). */
  provider?: string;
  /** One status code, or a class: "ok" is 2xx, "error" anything else. */
  status?: number | "ok" | "error";
  /** ms since epoch, inclusive. */
  from?: number;
  /** ms since epoch, exclusive. */
  to?: number;
  /** Rows older than this place (the next page down); exclusive with `after`. */
  before?: LogCursor;
  /** Rows newer than this place (the page above), still listed newest first. */
  after?: LogCursor;
  limit: number;
}

export interface LogPage {
  rows: RequestLogRow[];
  /** More rows lie beyond this page in the direction asked: older ones, or newer ones with `after`. */
  hasMore: boolean;
  /** Where the first (newest) and last (oldest) rows of the page are; null when the page is empty. */
  first: LogCursor | null;
  last: LogCursor | null;
}

/** A cursor as text for a URL: "<ts>_<rowid>". */
export function formatCursor(c: LogCursor): string {
  return `${c.ts}_${c.rowid}`;
}

/** The cursor formatCursor wrote, or undefined when the text is not one. */
export function parseCursor(text: string): LogCursor | undefined {
  const m = /^([0-9]{1,15})_([0-9]{1,18})$/.exec(text);
  if (!m) return undefined;
  const c = { ts: Number(m[1]), rowid: Number(m[2]) };
  return Number.isSafeInteger(c.ts) && Number.isSafeInteger(c.rowid) ? c : undefined;
}

/**
 * The SQL of one page. Its shape keeps SQLite on an index that already holds the
 * log's order, so a page reads about as many index entries as it returns (plus the
 * rows the filters skip) and never sorts: (public_model, ts) when a model is asked
 * for, (ts) otherwise; both end in the rowid, the order's tie-break. The keyset
 * condition is written `ts <= ? AND (ts < ? OR rowid < ?)` so the ts bound stays a
 * range on the index (an OR at the top would not).
 */
export function pageSql(q: RequestLogQuery): { sql: string; args: (string | number)[] } {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (q.model !== undefined) {
    where.push("public_model = ?");
    args.push(q.model);
  }
  if (q.provider !== undefined) {
    where.push("provider = ?");
    args.push(q.provider);
  }
  if (q.status === "ok") where.push("status BETWEEN 200 AND 299");
  else if (q.status === "error") where.push("(status < 200 OR status > 299)");
  else if (q.status !== undefined) {
    where.push("status = ?");
    args.push(q.status);
  }
  if (q.from !== undefined) {
    where.push("ts >= ?");
    args.push(q.from);
  }
  if (q.to !== undefined) {
    where.push("ts < ?");
    args.push(q.to);
  }
  if (q.before) {
    where.push("ts <= ? AND (ts < ? OR rowid < ?)");
    args.push(q.before.ts, q.before.ts, q.before.rowid);
  } else if (q.after) {
    where.push("ts >= ? AND (ts > ? OR rowid > ?)");
    args.push(q.after.ts, q.after.ts, q.after.rowid);
  }
  const dir = q.after && !q.before ? "ASC" : "DESC";
  const sql =
    `SELECT rowid AS cursor_rowid, * FROM request_log${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""}` +
    ` ORDER BY ts ${dir}, rowid ${dir} LIMIT ?`;
  args.push(q.limit + 1);
  return { sql, args };
}

export interface RequestLogOptions {
  /** Flush when this many rows are waiting. */
  batchSize?: number;
  /** Flush at least this often while rows are waiting. */
  flushIntervalMs?: number;
  /** Rows kept in memory while the database refuses writes; the oldest go first beyond it. */
  maxQueued?: number;
  onError?: (err: unknown) => void;
}

export class RequestLog {
  private readonly db: Db;
  private readonly insert;
  private readonly insertMany: (rows: RequestLogRow[]) => void;
  /** page()'s statements by SQL: one per combination of filters, prepared once. */
  private readonly pageStatements = new Map<string, Statement<(string | number)[]>>();
  /** Hourly rollups for analytics, kept in the same transaction as the rows. */
  private readonly rollups: RollupWriter;
  private queue: RequestLogRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly maxQueued: number;
  /** The last write failed: retry from the timer only, not from each request. */
  private failing = false;
  /** Rows given up because the database kept failing. */
  dropped = 0;

  constructor(db: Db, opts: RequestLogOptions = {}) {
    this.db = db;
    this.batchSize = opts.batchSize ?? 500;
    this.flushIntervalMs = opts.flushIntervalMs ?? 100;
    this.onError = opts.onError ?? (() => {});
    this.maxQueued = opts.maxQueued ?? 100_000;
    // Positional parameters: binding named ones costs an object walk per row.
    this.insert = db.prepare(`INSERT INTO request_log
      (id, ts, tenant, operation, public_model, provider, upstream_model, fallback_depth, is_overflow, stream,
       status, error_class, prompt_tokens, completion_tokens, cost_usd, ttfb_ms, total_ms, overhead_ms, attempts, panic,
       tier, attempt_count, first_provider)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.rollups = new RollupWriter(db);
    this.insertMany = db.transaction((rows: RequestLogRow[]) => {
      for (const r of rows) {
        this.insert.run(
          r.id,
          r.ts,
          r.tenant,
          r.operation,
          r.public_model,
          r.provider,
          r.upstream_model,
          r.fallback_depth,
          r.is_overflow ? 1 : 0,
          r.stream ? 1 : 0,
          r.status,
          r.error_class,
          r.prompt_tokens,
          r.completion_tokens,
          r.cost_usd,
          r.ttfb_ms,
          r.total_ms,
          r.overhead_ms,
          JSON.stringify(r.attempts),
          r.panic ? 1 : 0,
          r.tier ?? null,
          r.attempt_count ?? attemptCount(r),
          r.first_provider ?? r.attempts[0]?.provider ?? null,
        );
      }
      this.rollups.add(rows);
    });
  }

  /** Queue a row, its texts and attempts bounded (bounds.ts); it reaches the disk within flushIntervalMs. */
  append(row: RequestLogRow): void {
    this.queue.push(boundRow(row));
    if (this.queue.length > this.maxQueued) {
      const excess = this.queue.length - this.maxQueued;
      this.queue.splice(0, excess);
      this.dropped += excess;
    }
    if (this.queue.length >= this.batchSize && !this.failing) this.flush();
    else this.schedule();
  }

  private schedule(delayMs = this.flushIntervalMs): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Write every queued row now, in one transaction. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queue.length === 0) return;
    const rows = this.queue;
    this.queue = [];
    try {
      this.insertMany(rows);
      this.failing = false;
    } catch (err) {
      // Keep the rows for a later try rather than losing them, and back off:
      // a full disk or a locked file must not cost every request a failed write.
      this.queue = rows.concat(this.queue);
      if (!this.failing) this.onError(err);
      this.failing = true;
      this.schedule(Math.max(1000, this.flushIntervalMs));
    }
  }

  /** The database the log writes to (analytics opens its own read-only connection to the same file). */
  get database(): Db {
    return this.db;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** The newest rows, newest first: at most MAX_PAGE_ROWS of them and about MAX_PAGE_BYTES of JSON. */
  recent(limit = 100): RequestLogRow[] {
    return this.recentPage(limit).rows;
  }

  /** recent(), and whether older rows are left. Rows stored before the bounds existed are bounded as they are read. */
  recentPage(limit = 100): RecentPage {
    const n = Math.min(MAX_PAGE_ROWS, Math.max(1, Math.floor(limit) || 1));
    const raw = this.db.prepare("SELECT * FROM request_log ORDER BY ts DESC, rowid DESC LIMIT ?").all(n + 1) as Record<string, unknown>[];
    const rows: RequestLogRow[] = [];
    let bytes = 0;
    for (let i = 0; i < raw.length && rows.length < n; i++) {
      const row = boundRow(rowFromDb(raw[i]!));
      bytes += Buffer.byteLength(JSON.stringify(row));
      if (rows.length > 0 && bytes > MAX_PAGE_BYTES) break;
      rows.push(row);
    }
    return { rows, hasMore: raw.length > rows.length };
  }

  /**
   * One page of the log, newest first, filtered (see RequestLogQuery): at most MAX_PAGE_ROWS
   * rows and about MAX_PAGE_BYTES of JSON. Pages continue from a cursor (keyset), so they
   * neither overlap nor skip rows while new ones arrive, and a deep page costs what the first does.
   */
  page(q: RequestLogQuery): LogPage {
    const n = Math.min(MAX_PAGE_ROWS, Math.max(1, Math.floor(q.limit) || 1));
    const { sql, args } = pageSql({ ...q, limit: n });
    let stmt = this.pageStatements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare<(string | number)[]>(sql);
      this.pageStatements.set(sql, stmt);
    }
    const raw = stmt.all(...args) as Record<string, unknown>[];
    const rows: RequestLogRow[] = [];
    const cursors: LogCursor[] = [];
    let bytes = 0;
    for (let i = 0; i < raw.length && rows.length < n; i++) {
      const { cursor_rowid, ...r } = raw[i]!;
      const row = boundRow(rowFromDb(r));
      bytes += Buffer.byteLength(JSON.stringify(row));
      if (rows.length > 0 && bytes > MAX_PAGE_BYTES) break;
      rows.push(row);
      cursors.push({ ts: row.ts, rowid: cursor_rowid as number });
    }
    // Rows newer than a cursor came oldest first (nearest the cursor first): shown newest first like the rest.
    if (q.after && !q.before) {
      rows.reverse();
      cursors.reverse();
    }
    return { rows, hasMore: raw.length > rows.length, first: cursors[0] ?? null, last: cursors.at(-1) ?? null };
  }

  /** Where a row is in the log's order (a request id used as a page cursor); undefined when it is not there. */
  cursorOf(id: string): LogCursor | undefined {
    const r = this.db.prepare("SELECT ts, rowid FROM request_log WHERE id = ?").get(id) as { ts: number; rowid: number } | undefined;
    return r ? { ts: r.ts, rowid: r.rowid } : undefined;
  }

  get(id: string): RequestLogRow | undefined {
    const row = this.db.prepare("SELECT * FROM request_log WHERE id = ?").get(id) as Record<string, unknown> | undefined;
    return row ? rowFromDb(row) : undefined;
  }
}

function rowFromDb(r: Record<string, unknown>): RequestLogRow {
  return {
    ...(r as unknown as RequestLogRow),
    is_overflow: r.is_overflow === 1,
    panic: r.panic === 1,
    stream: r.stream === 1,
    attempts: JSON.parse((r.attempts as string) ?? "[]") as AttemptRecord[],
  };
}
