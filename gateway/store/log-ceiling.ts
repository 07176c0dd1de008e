// The request log's size ceiling (store.max_log_mb). Under a steady 4,000 requests/s
// an unbounded log grew 80 MB a minute. A timer measures the log cheaply; past the
// ceiling the oldest rows are deleted, a small batch per step, each step its own
// short transaction and the event loop free between steps, so requests keep being
// served while it trims. Freed pages go to SQLite's freelist and later inserts
// reuse them: the file stops growing at about the ceiling (it does not shrink).
import type { Db } from "./db.ts";

export interface LogCeilingOptions {
  /** Bytes the request log (its table and indexes) may hold. */
  maxBytes: number;
  /** How often the size is measured (a few PRAGMAs; default 2 s). */
  checkIntervalMs?: number;
  /** Oldest rows deleted per step (default 1,000: a few ms). */
  batchRows?: number;
  /** A trim goes down to this share of the ceiling, so that it does not run again at the next insert (default 0.95). */
  lowWater?: number;
  /** Measure the other tables again every this many checks (they change rarely; default 30). */
  othersEvery?: number;
  /** Told after each trim: rows deleted and the log's size after it. */
  onTrim?: (deletedRows: number, logBytes: number) => void;
  onError?: (err: unknown) => void;
}

export class LogCeiling {
  private readonly db: Db;
  readonly maxBytes: number;
  private readonly lowWaterBytes: number;
  private readonly batchRows: number;
  private readonly checkIntervalMs: number;
  private readonly othersEvery: number;
  private readonly onTrim: (deletedRows: number, logBytes: number) => void;
  private readonly onError: (err: unknown) => void;
  private readonly deleteOldest;
  private othersBytes = 0;
  private checks = 0;
  private timer: NodeJS.Timeout | undefined;
  private pendingStep: NodeJS.Immediate | undefined;
  private trimming = false;
  private trimmedInRun = 0;
  /** Rows deleted since start. */
  deleted = 0;
  /** Steps run since start (each one transaction of at most batchRows deletions). */
  steps = 0;

  constructor(db: Db, opts: LogCeilingOptions) {
    this.db = db;
    this.maxBytes = opts.maxBytes;
    this.lowWaterBytes = opts.maxBytes * (opts.lowWater ?? 0.95);
    this.batchRows = opts.batchRows ?? 1000;
    this.checkIntervalMs = opts.checkIntervalMs ?? 2000;
    this.othersEvery = opts.othersEvery ?? 30;
    this.onTrim = opts.onTrim ?? (() => {});
    this.onError = opts.onError ?? (() => {});
    // Oldest by rowid: rows are appended in arrival order of their outcomes, and the
    // rowid b-tree is the table itself, so the step reads no index to find them.
    this.deleteOldest = db.prepare("DELETE FROM request_log WHERE rowid IN (SELECT rowid FROM request_log ORDER BY rowid LIMIT ?)");
    this.measureOthers();
  }

  /**
   * Bytes the request log holds now: the database's pages in use (page_count minus
   * the freelist, three PRAGMAs) less those of the other tables, measured now and
   * then through dbstat. Where dbstat is missing the whole database counts.
   */
  logBytes(): number {
    const pageSize = this.db.pragma("page_size", { simple: true }) as number;
    const pages = this.db.pragma("page_count", { simple: true }) as number;
    const free = this.db.pragma("freelist_count", { simple: true }) as number;
    return Math.max(0, (pages - free) * pageSize - this.othersBytes);
  }

  /** Bytes of every b-tree but the request log's (small tables: dbstat walks each one named). */
  private measureOthers(): void {
    try {
      const names = this.db
        .prepare("SELECT name FROM sqlite_schema WHERE rootpage > 0 AND tbl_name <> 'request_log'")
        .pluck()
        .all() as string[];
      const size = this.db.prepare("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ? AND aggregate = TRUE").pluck();
      let bytes = 0;
      for (const name of ["sqlite_schema", ...names]) bytes += size.get(name) as number;
      this.othersBytes = bytes;
    } catch {
      this.othersBytes = 0; // no dbstat in this SQLite: the ceiling counts the whole database
    }
  }

  /** One step: deletes up to batchRows of the oldest rows in one short transaction; returns how many. */
  step(): number {
    const n = this.deleteOldest.run(this.batchRows).changes;
    this.steps++;
    this.deleted += n;
    return n;
  }

  /** Whether the log is past its ceiling now. */
  overCeiling(): boolean {
    return this.logBytes() > this.maxBytes;
  }

  /** Trims now, synchronously, down to the low-water mark if past the ceiling; returns rows deleted. For tests and tools. */
  trimNow(): number {
    if (!this.overCeiling()) return 0;
    let total = 0;
    for (;;) {
      const n = this.step();
      total += n;
      if (n === 0 || this.logBytes() <= this.lowWaterBytes) break;
    }
    if (total > 0) this.onTrim(total, this.logBytes());
    return total;
  }

  /** Starts measuring on a timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.pendingStep) clearImmediate(this.pendingStep);
    this.pendingStep = undefined;
    this.trimming = false;
  }

  /** A trim is under way (steps left to run). */
  get busy(): boolean {
    return this.trimming;
  }

  private check(): void {
    if (this.trimming) return;
    try {
      if (++this.checks % this.othersEvery === 0) this.measureOthers();
      if (!this.overCeiling()) return;
    } catch (err) {
      this.onError(err);
      return;
    }
    this.trimming = true;
    this.trimmedInRun = 0;
    this.runStep();
  }

  /** One step, then the next after the event loop has had its turn (requests, flushes), until below low water. */
  private runStep(): void {
    this.pendingStep = undefined;
    if (!this.trimming) return;
    let done: boolean;
    try {
      const n = this.step();
      this.trimmedInRun += n;
      done = n === 0 || this.logBytes() <= this.lowWaterBytes;
    } catch (err) {
      this.onError(err);
      done = true;
    }
    if (!done) {
      this.pendingStep = setImmediate(() => this.runStep());
      this.pendingStep.unref();
      return;
    }
    this.trimming = false;
    if (this.trimmedInRun > 0) {
      try {
        this.onTrim(this.trimmedInRun, this.logBytes());
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
