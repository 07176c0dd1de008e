// The batch queue's rows: uploaded and result files, batches, and one row per request
// line (item). Every change of state is one transaction; an item's result line is stored
// in the transaction that ends it, so it is written exactly once whatever happens after.
import type { Statement } from "better-sqlite3";
import type { Db } from "./db.ts";

export type BatchStatus = "validating" | "in_progress" | "finalizing" | "completed" | "failed" | "expired" | "cancelling" | "cancelled";
/** How a batch ends once its items have all ended and its files are written. */
export type BatchEnding = "completed" | "expired" | "cancelled";
export type ItemState = "pending" | "running" | "done" | "failed";
export type ResultFile = "output" | "error";

export interface FileRow {
  id: string;
  purpose: string;
  filename: string;
  bytes: number;
  lines: number;
  created_at: number;
  tenant: string | null;
}

export interface BatchOptions {
  concurrency: number;
  retries: number;
  redact_pii: boolean;
}

export interface BatchRow {
  id: string;
  tenant: string | null;
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  window_s: number;
  profile: string | null;
  priority: number;
  status: BatchStatus;
  metadata: string | null;
  options: string;
  ending: BatchEnding | null;
  errors: string | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  prompt_tokens: number;
  completion_tokens: number;
  /** request_counts, kept when the batch ends (its items are purged afterwards); null until then. */
  request_total: number | null;
  request_completed: number | null;
  request_failed: number | null;
  purged: number;
}

export interface ItemRow {
  batch_id: string;
  line: number;
  custom_id: string;
  body: string;
  state: ItemState;
  attempts: number;
  not_before: number;
  request_id: string | null;
  file: ResultFile | null;
  result: string | null;
}

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

/** How a running item ends (endItem, endItems). */
export interface ItemEnd {
  state: "done" | "failed";
  file: ResultFile;
  result: string;
  requestId: string | null;
  promptTokens: number;
  completionTokens: number;
}

export interface NewItem {
  line: number;
  custom_id: string;
  body: string;
}

const UNFINISHED: readonly BatchStatus[] = ["validating", "in_progress", "finalizing", "cancelling"];
const FINAL: readonly BatchStatus[] = ["completed", "failed", "expired", "cancelled"];

export class BatchStore {
  private readonly db: Db;
  /** Prepared statements of the hot paths (claim, endItems...), compiled once: preparing costs more than running them. */
  private readonly statements = new Map<string, Statement>();

  constructor(db: Db) {
    this.db = db;
  }

  private stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  // ---- files ----

  insertFile(row: FileRow): void {
    this.db
      .prepare("INSERT INTO batch_file (id, purpose, filename, bytes, lines, created_at, tenant) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(row.id, row.purpose, row.filename, row.bytes, row.lines, row.created_at, row.tenant);
  }

  file(id: string): FileRow | undefined {
    return this.db.prepare("SELECT * FROM batch_file WHERE id = ?").get(id) as FileRow | undefined;
  }

  /** Newest first by default; `after` is the id of the last file of the previous page. */
  listFiles(q: { purpose?: string; after?: string; limit: number; order: "asc" | "desc" }): { rows: FileRow[]; hasMore: boolean } {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.purpose) {
      where.push("purpose = ?");
      args.push(q.purpose);
    }
    if (q.after) {
      where.push(`rowid ${q.order === "desc" ? "<" : ">"} coalesce((SELECT rowid FROM batch_file WHERE id = ?), ${q.order === "desc" ? "-1" : "1e18"})`);
      args.push(q.after);
    }
    const sql = `SELECT * FROM batch_file ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY rowid ${q.order === "desc" ? "DESC" : "ASC"} LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, q.limit + 1) as FileRow[];
    return { rows: rows.slice(0, q.limit), hasMore: rows.length > q.limit };
  }

  deleteFile(id: string): boolean {
    return this.db.prepare("DELETE FROM batch_file WHERE id = ?").run(id).changes > 0;
  }

  /** Bytes of every stored file (uploads and results): what batch.max_total_mb caps. */
  totalFileBytes(): number {
    return this.db.prepare("SELECT coalesce(sum(bytes), 0) FROM batch_file").pluck().get() as number;
  }

  fileIds(): Set<string> {
    return new Set((this.db.prepare("SELECT id FROM batch_file").pluck().all() as string[]));
  }

  // ---- batches ----

  insertBatch(row: BatchRow): void {
    const cols = Object.keys(row);
    this.db.prepare(`INSERT INTO batch (${cols.join(", ")}) VALUES (${cols.map((c) => "@" + c).join(", ")})`).run(row);
  }

  batch(id: string): BatchRow | undefined {
    return this.stmt("SELECT * FROM batch WHERE id = ?").get(id) as BatchRow | undefined;
  }

  /** Newest first, like OpenAI; `after` is the id of the last batch of the previous page. */
  listBatches(q: { after?: string; limit: number }): { rows: BatchRow[]; hasMore: boolean } {
    const rows = (
      q.after
        ? this.db.prepare("SELECT * FROM batch WHERE rowid < coalesce((SELECT rowid FROM batch WHERE id = ?), -1) ORDER BY rowid DESC LIMIT ?").all(q.after, q.limit + 1)
        : this.db.prepare("SELECT * FROM batch ORDER BY rowid DESC LIMIT ?").all(q.limit + 1)
    ) as BatchRow[];
    return { rows: rows.slice(0, q.limit), hasMore: rows.length > q.limit };
  }

  /** Batches the worker still has to do something for, highest priority first, then oldest. */
  unfinished(): BatchRow[] {
    return this.stmt(`SELECT * FROM batch WHERE status IN (${UNFINISHED.map(() => "?").join(", ")}) ORDER BY priority DESC, rowid ASC`).all(...UNFINISHED) as BatchRow[];
  }

  statusCounts(): Map<string, number> {
    const rows = this.db.prepare("SELECT status, count(*) AS n FROM batch GROUP BY status").all() as { status: string; n: number }[];
    return new Map(rows.map((r) => [r.status, r.n]));
  }

  /** Batches that ended between two times (seconds), and how many of them completed (the readiness gate's batch_success). */
  endedBetween(fromS: number, toS: number): { ended: number; completed: number } {
    return this.db
      .prepare(
        `SELECT count(*) AS ended, coalesce(sum(status = 'completed'), 0) AS completed FROM batch
         WHERE status IN ('completed', 'failed', 'expired', 'cancelled') AND coalesce(completed_at, failed_at, expired_at, cancelled_at) BETWEEN ? AND ?`,
      )
      .get(fromS, toS) as { ended: number; completed: number };
  }

  /** request_counts: those kept when the batch ended, else counted from its items. */
  counts(batchId: string): RequestCounts {
    const kept = this.stmt("SELECT request_total AS total, request_completed AS completed, request_failed AS failed FROM batch WHERE id = ?").get(batchId) as
      | { total: number | null; completed: number; failed: number }
      | undefined;
    if (kept && kept.total !== null) return kept as RequestCounts;
    return this.countItems(batchId);
  }

  private countItems(batchId: string): RequestCounts {
    const r = this.stmt("SELECT count(*) AS total, coalesce(sum(state = 'done'), 0) AS completed, coalesce(sum(state = 'failed'), 0) AS failed FROM batch_item WHERE batch_id = ?").get(
      batchId,
    ) as RequestCounts;
    return r;
  }

  /** Items not yet ended (pending or running) of one batch. */
  unended(batchId: string): number {
    return this.db.prepare("SELECT count(*) FROM batch_item WHERE batch_id = ? AND state IN ('pending', 'running')").pluck().get(batchId) as number;
  }

  /** Whether a batch has items not yet ended (pending or running): cheaper than unended() for a big batch. */
  hasUnended(batchId: string): boolean {
    return this.stmt("SELECT 1 FROM batch_item WHERE batch_id = ? AND state IN ('pending', 'running') LIMIT 1").get(batchId) !== undefined;
  }

  /** Items waiting to run, over the batches still running. */
  pendingTotal(): number {
    return this.stmt("SELECT count(*) FROM batch_item WHERE state = 'pending' AND batch_id IN (SELECT id FROM batch WHERE status = 'in_progress')")
      .pluck()
      .get() as number;
  }

  /** validating -> in_progress with its (last) items, in one transaction (only if still validating). */
  start(batchId: string, items: NewItem[], now: number): boolean {
    return this.db.transaction(() => {
      const changed = this.db.prepare("UPDATE batch SET status = 'in_progress', in_progress_at = ? WHERE id = ? AND status = 'validating'").run(now, batchId).changes;
      if (changed === 0) return false;
      const insert = this.db.prepare("INSERT INTO batch_item (batch_id, line, custom_id, body, state) VALUES (?, ?, ?, ?, 'pending')");
      for (const it of items) insert.run(batchId, it.line, it.custom_id, it.body);
      return true;
    })();
  }

  /**
   * A chunk of a validating batch's items, in one transaction, only while it is still
   * validating (false: it was cancelled meanwhile, nothing inserted). Validation inserts a
   * big file chunk by chunk, so neither its items nor one transaction hold it all.
   */
  insertItems(batchId: string, items: NewItem[]): boolean {
    return this.db.transaction(() => {
      if (this.stmt("SELECT 1 FROM batch WHERE id = ? AND status = 'validating'").get(batchId) === undefined) return false;
      const insert = this.stmt("INSERT INTO batch_item (batch_id, line, custom_id, body, state) VALUES (?, ?, ?, ?, 'pending')");
      for (const it of items) insert.run(batchId, it.line, it.custom_id, it.body);
      return true;
    })();
  }

  /**
   * Deletes the items of batches that never started (validating, or cancelled while
   * validating): a validation cut short (a restart, a cancel) starts over, or ends with none.
   * One batch, or every such batch (at start). Returns the rows deleted.
   */
  dropUnstartedItems(batchId?: string): number {
    const unstarted = "SELECT id FROM batch WHERE in_progress_at IS NULL AND status IN ('validating', 'cancelling', 'failed')";
    return batchId === undefined
      ? this.db.prepare(`DELETE FROM batch_item WHERE batch_id IN (${unstarted})`).run().changes
      : this.db.prepare(`DELETE FROM batch_item WHERE batch_id = ? AND batch_id IN (${unstarted})`).run(batchId).changes;
  }

  /** validating -> failed, with OpenAI's errors list; items a chunked validation inserted go. */
  failValidation(batchId: string, errors: unknown, now: number): boolean {
    return this.db.transaction(() => {
      const changed =
        this.db
          .prepare("UPDATE batch SET status = 'failed', failed_at = ?, errors = ?, request_total = 0, request_completed = 0, request_failed = 0 WHERE id = ? AND status = 'validating'")
          .run(now, JSON.stringify(errors), batchId).changes > 0;
      if (changed) this.db.prepare("DELETE FROM batch_item WHERE batch_id = ?").run(batchId);
      return changed;
    })();
  }

  /** in_progress|validating -> cancelling. */
  cancel(batchId: string, now: number): boolean {
    return (
      this.db
        .prepare("UPDATE batch SET status = 'cancelling', cancelling_at = ? WHERE id = ? AND status IN ('validating', 'in_progress')")
        .run(now, batchId).changes > 0
    );
  }

  /**
   * Ends every unended item of a batch with the line `line(item)` in the error file, and
   * sets how the batch ends (status finalizing unless it is cancelling), in one transaction.
   */
  closeItems(batchId: string, ending: BatchEnding, now: number, line: (item: ItemRow) => string): number {
    return this.db.transaction(() => {
      const items = this.db.prepare("SELECT * FROM batch_item WHERE batch_id = ? AND state IN ('pending', 'running')").all(batchId) as ItemRow[];
      const end = this.db.prepare("UPDATE batch_item SET state = 'failed', file = 'error', result = ? WHERE batch_id = ? AND line = ?");
      for (const it of items) end.run(line(it), batchId, it.line);
      this.db
        .prepare(
          "UPDATE batch SET ending = ?, status = CASE status WHEN 'cancelling' THEN 'cancelling' ELSE 'finalizing' END, finalizing_at = CASE status WHEN 'cancelling' THEN finalizing_at ELSE ? END WHERE id = ?",
        )
        .run(ending, now, batchId);
      return items.length;
    })();
  }

  /**
   * A page of one file's result lines, in input order, after input line `afterLine`. Read in
   * pages, not with an open iterator: the file is written with awaits between pages, and the
   * connection must stay free for everything else meanwhile.
   */
  resultPage(batchId: string, file: ResultFile, afterLine: number, limit: number): { line: number; result: string }[] {
    return this.db
      .prepare("SELECT line, result FROM batch_item WHERE batch_id = ? AND file = ? AND line > ? ORDER BY line LIMIT ?")
      .all(batchId, file, afterLine, limit) as { line: number; result: string }[];
  }

  resultCount(batchId: string, file: ResultFile): number {
    return this.db.prepare("SELECT count(*) FROM batch_item WHERE batch_id = ? AND file = ?").pluck().get(batchId, file) as number;
  }

  /** Pending items due by `nowMs`, in input order (not claimed: see markRunning). */
  due(batchId: string, nowMs: number, limit: number): ItemRow[] {
    // The state index gives a batch's pending items in line order: no scan past its done ones, no sort.
    return this.stmt("SELECT * FROM batch_item INDEXED BY batch_item_state WHERE batch_id = ? AND state = 'pending' AND not_before <= ? ORDER BY line LIMIT ?").all(
      batchId,
      nowMs,
      limit,
    ) as ItemRow[];
  }

  /** pending -> running (attempts + 1); false when it was no longer pending. */
  markRunning(batchId: string, line: number): boolean {
    return this.stmt("UPDATE batch_item SET state = 'running', attempts = attempts + 1 WHERE batch_id = ? AND line = ? AND state = 'pending'").run(batchId, line).changes > 0;
  }

  /**
   * Claims up to `limit` due items of a batch, in input order: pending -> running (attempts
   * + 1, as returned), in one transaction. The worker claims a chunk at once and starts its
   * items as capacity allows; a claimed item not yet started is running in the database, so
   * a crash gives it back like any running one (requeueRunning), and a cancel ends it.
   */
  claim(batchId: string, nowMs: number, limit: number): ItemRow[] {
    return this.db.transaction(() => {
      const items = this.due(batchId, nowMs, limit);
      const mark = this.stmt("UPDATE batch_item SET state = 'running', attempts = attempts + 1 WHERE batch_id = ? AND line = ? AND state = 'pending'");
      const claimed: ItemRow[] = [];
      for (const it of items) {
        if (mark.run(batchId, it.line).changes === 0) continue;
        it.state = "running";
        it.attempts++;
        claimed.push(it);
      }
      return claimed;
    })();
  }

  /** The batch's files are written: it takes its final status, with the files' rows, in one transaction. */
  finish(batchId: string, files: { output?: FileRow; error?: FileRow }, now: number): BatchEnding | undefined {
    return this.db.transaction(() => {
      const b = this.batch(batchId);
      if (!b || !b.ending || !UNFINISHED.includes(b.status)) return undefined;
      if (files.output) this.insertFile(files.output);
      if (files.error) this.insertFile(files.error);
      const at = b.ending === "completed" ? "completed_at" : b.ending === "expired" ? "expired_at" : "cancelled_at";
      const c = this.countItems(batchId);
      this.db
        .prepare(
          `UPDATE batch SET status = ending, ${at} = ?, output_file_id = ?, error_file_id = ?, request_total = ?, request_completed = ?, request_failed = ? WHERE id = ?`,
        )
        .run(now, files.output?.id ?? null, files.error?.id ?? null, c.total, c.completed, c.failed, batchId);
      return b.ending;
    })();
  }

  // ---- items ----

  /** The soonest retry time of a batch's pending items (ms), if any wait. */
  nextDue(batchId: string): number | undefined {
    const v = this.db.prepare("SELECT min(not_before) FROM batch_item WHERE batch_id = ? AND state = 'pending'").pluck().get(batchId) as number | null;
    return v ?? undefined;
  }

  /** A running item ends: its line is stored with its state. False when it had been ended already (cancel, expiry). */
  endItem(batchId: string, line: number, end: ItemEnd): boolean {
    return this.endItems([{ batchId, line, end }])[0]!;
  }

  /**
   * Many running items end in one transaction (the worker commits the answers of a few
   * milliseconds together): each as endItem, its result true when it was still running.
   */
  endItems(ends: readonly { batchId: string; line: number; end: ItemEnd }[]): boolean[] {
    return this.db.transaction(() => {
      const update = this.stmt("UPDATE batch_item SET state = ?, file = ?, result = ?, request_id = ? WHERE batch_id = ? AND line = ? AND state = 'running'");
      const tokens = new Map<string, { prompt: number; completion: number }>();
      const ended = ends.map(({ batchId, line, end }) => {
        if (update.run(end.state, end.file, end.result, end.requestId, batchId, line).changes === 0) return false;
        if (end.promptTokens || end.completionTokens) {
          const t = tokens.get(batchId) ?? { prompt: 0, completion: 0 };
          t.prompt += end.promptTokens;
          t.completion += end.completionTokens;
          tokens.set(batchId, t);
        }
        return true;
      });
      const add = this.stmt("UPDATE batch SET prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ? WHERE id = ?");
      for (const [batchId, t] of tokens) add.run(t.prompt, t.completion, batchId);
      return ended;
    })();
  }

  /**
   * A running item goes back to pending: a retry after `notBefore`, or work labgate stopped
   * itself (a shutdown, a preemption), whose attempt is given back (`giveBack`).
   */
  requeue(batchId: string, line: number, notBefore: number, requestId: string | null, giveBack = false): boolean {
    return (
      this.stmt(
        "UPDATE batch_item SET state = 'pending', not_before = ?, request_id = coalesce(?, request_id), attempts = max(0, attempts - ?) WHERE batch_id = ? AND line = ? AND state = 'running'",
      ).run(notBefore, requestId, giveBack ? 1 : 0, batchId, line).changes > 0
    );
  }

  /**
   * Deletes up to `limit` items of one ended batch whose items are not yet purged: its lines
   * live on in its files and its counts in its row, so the database does not keep every
   * request and answer twice. Returns the rows deleted (0: nothing left to purge).
   */
  purgeEnded(limit: number): number {
    const b = this.db.prepare(`SELECT id FROM batch WHERE purged = 0 AND status IN (${FINAL.map(() => "?").join(", ")}) LIMIT 1`).pluck().get(...FINAL) as string | undefined;
    if (b === undefined) return 0;
    const deleted = this.db.prepare("DELETE FROM batch_item WHERE batch_id = ? AND line IN (SELECT line FROM batch_item WHERE batch_id = ? ORDER BY line LIMIT ?)").run(b, b, limit).changes;
    if (deleted < limit) this.db.prepare("UPDATE batch SET purged = 1 WHERE id = ?").run(b);
    return deleted;
  }

  /** At start: items a stopped (or killed) gateway was running are pending again. A retry it cost is given back. */
  requeueRunning(): number {
    return this.db.prepare("UPDATE batch_item SET state = 'pending', attempts = max(0, attempts - 1) WHERE state = 'running'").run().changes;
  }
}
