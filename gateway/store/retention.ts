// Retention (store.retention_days): request-log rows older than that go, and so do the
// hourly rollups (analytics) of hours wholly before it. A sibling of LogCeiling: a timer
// checks now and then; a deletion runs a small batch per step, each step its own short
// transaction, the event loop free between steps, so requests keep being served. After a
// run, the freed pages go back to the file system a few at a time (PRAGMA
// incremental_vacuum) where the file was created with auto_vacuum = INCREMENTAL (db.ts);
// an older file reuses them for new rows instead, so it stops growing either way.
import type { Db } from "./db.ts";
import { DAY_MS, HOUR_MS, ROLLUP_TABLES } from "./rollup.ts";

export interface RetentionOptions {
  retentionDays: number;
  /** The clock (ms since epoch); injected by tests. */
  now?: () => number;
  /** How often old rows are looked for (default 60 s). */
  checkIntervalMs?: number;
  /** Rows deleted per step (default 1,000: a few ms). */
  batchRows?: number;
  /** Pages given back per incremental-vacuum step (default 512: 2 MB of 4 KB pages). */
  vacuumPages?: number;
  /** Told after each run: rows and rollup rows deleted, pages given back. */
  onPurge?: (info: { rows: number; rollups: number; pagesFreed: number }) => void;
  onError?: (err: unknown) => void;
}

export class Retention {
  private readonly db: Db;
  readonly retentionMs: number;
  private readonly now: () => number;
  private readonly checkIntervalMs: number;
  private readonly batchRows: number;
  private readonly vacuumPages: number;
  private readonly onPurge: (info: { rows: number; rollups: number; pagesFreed: number }) => void;
  private readonly onError: (err: unknown) => void;
  private readonly deleteRows;
  private readonly deleteRollups: { run(hour: number): { changes: number } }[];
  private readonly deleteDays;
  private readonly incremental: boolean;
  private timer: NodeJS.Timeout | undefined;
  private pendingStep: NodeJS.Immediate | undefined;
  private running = false;
  private run = { rows: 0, rollups: 0, pagesFreed: 0 };
  private phase: "rows" | "rollups" | "vacuum" = "rows";
  private cutoff = 0;
  /** Rows and rollup rows deleted since start, pages given back. */
  deletedRows = 0;
  deletedRollups = 0;
  pagesFreed = 0;

  constructor(db: Db, opts: RetentionOptions) {
    this.db = db;
    this.retentionMs = opts.retentionDays * DAY_MS;
    this.now = opts.now ?? Date.now;
    this.checkIntervalMs = opts.checkIntervalMs ?? 60_000;
    this.batchRows = opts.batchRows ?? 1000;
    this.vacuumPages = opts.vacuumPages ?? 512;
    this.onPurge = opts.onPurge ?? (() => {});
    this.onError = opts.onError ?? (() => {});
    // Through the ts index: the oldest rows first, only those before the cutoff.
    this.deleteRows = db.prepare("DELETE FROM request_log WHERE rowid IN (SELECT rowid FROM request_log WHERE ts < ? ORDER BY ts LIMIT ?)");
    // Rollups one hour at a time (a few hundred rows), by their primary key's first column.
    this.deleteRollups = ROLLUP_TABLES.map((t) => db.prepare(`DELETE FROM ${t} WHERE hour = (SELECT min(hour) FROM ${t} WHERE hour < ?)`));
    this.deleteDays = db.prepare("DELETE FROM request_rollup_day WHERE day = (SELECT min(day) FROM request_rollup_day WHERE day < ?)");
    this.incremental = (db.pragma("auto_vacuum", { simple: true }) as number) === 2;
  }

  /** Rows older than this (ms since epoch) are past retention. */
  cutoffAt(now: number = this.now()): number {
    return now - this.retentionMs;
  }

  /** One step of the current run; returns whether there is more to do. */
  private step(): boolean {
    if (this.phase === "rows") {
      const n = this.deleteRows.run(this.cutoff, this.batchRows).changes;
      this.run.rows += n;
      this.deletedRows += n;
      if (n < this.batchRows) this.phase = "rollups";
      return true;
    }
    if (this.phase === "rollups") {
      // Rollups go by whole hours: an hour that still has rows within retention stays.
      const hour = Math.floor(this.cutoff / HOUR_MS) * HOUR_MS;
      let n = 0;
      for (const d of this.deleteRollups) n += d.run(hour).changes;
      // Daily spend rollups: days wholly before the cutoff.
      n += this.deleteDays.run(Math.floor(this.cutoff / DAY_MS) * DAY_MS).changes;
      this.run.rollups += n;
      this.deletedRollups += n;
      if (n === 0) this.phase = "vacuum";
      return true;
    }
    if (!this.incremental || this.run.rows + this.run.rollups === 0) return false;
    const before = this.db.pragma("freelist_count", { simple: true }) as number;
    if (before === 0) return false;
    this.db.pragma(`incremental_vacuum(${this.vacuumPages})`);
    const after = this.db.pragma("freelist_count", { simple: true }) as number;
    this.run.pagesFreed += before - after;
    this.pagesFreed += before - after;
    return after > 0 && after < before;
  }

  /** Runs a whole purge now, synchronously (tests and tools); returns what it did. */
  purgeNow(): { rows: number; rollups: number; pagesFreed: number } {
    this.begin();
    while (this.step());
    return this.finish();
  }

  private begin(): void {
    this.cutoff = this.cutoffAt();
    this.phase = "rows";
    this.run = { rows: 0, rollups: 0, pagesFreed: 0 };
  }

  private finish(): { rows: number; rollups: number; pagesFreed: number } {
    const run = this.run;
    if (run.rows + run.rollups > 0) this.onPurge(run);
    return run;
  }

  /** Starts the timer (unref'd) and a first check soon after. */
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
    this.running = false;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Starts a purge run off the request path unless one is under way. */
  check(): void {
    if (this.running) return;
    this.running = true;
    this.begin();
    this.runStep();
  }

  private runStep(): void {
    this.pendingStep = undefined;
    if (!this.running) return;
    let more: boolean;
    try {
      more = this.step();
    } catch (err) {
      this.onError(err);
      more = false;
    }
    if (more) {
      this.pendingStep = setImmediate(() => this.runStep());
      this.pendingStep.unref();
      return;
    }
    this.running = false;
    try {
      this.finish();
    } catch (err) {
      this.onError(err);
    }
  }
}
