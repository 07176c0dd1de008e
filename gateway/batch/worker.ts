// The batch worker: a caller of the completion service like the HTTP API, at lower
// priority. It validates new batches into items, runs items while the admission gate
// allows (interactive first, per-provider caps, the batch's own concurrency), retries
// retryable failures with backoff, ends batches that are cancelled or past their
// window, and writes each finished batch's output and error files from the database.
//
// Durability: every step is one SQLite transaction. An item's result line is stored in
// the transaction that ends it; the files are assembled from those rows at the end; on
// start, items a killed gateway was running are pending again. So after a crash every
// item still ends in exactly one of the two files.
//
// Cost per item (labgate's CPU competes with interactive requests on the same cores): items
// are claimed (marked running) a chunk at a time in one transaction, and the answers of a
// few milliseconds are committed together in one transaction (an answer not yet committed
// at a crash is lost and its item runs again: it is still running in the database, never
// in a file). A finished item starts the next one from the claimed chunk (fill), without
// the batch-level step, which runs on the poll timer and on batch events only.
import type { Logger } from "pino";
import { errorBody, routeFailureError } from "../api/errors.ts";
import { CompletionFailure, type CompletionService } from "../completion/service.ts";
import type { BatchConfig } from "../config/schema.ts";
import type { OpenAIBody, Operation } from "../providers/types.ts";
import { backoffDelay } from "../router/backoff.ts";
import type { BatchOptions, BatchRow, BatchStore, FileRow, ItemEnd, ItemRow, NewItem, ResultFile } from "../store/batches.ts";
import type { EventHub } from "../telemetry/events.ts";
import type { AdmissionGate } from "./admission.ts";
import type { FileStorage } from "./file-store.ts";
import { batchIsLate } from "./deadline.ts";
import { createLineIds, newFileId } from "./ids.ts";
import { BATCH_ENDPOINTS, checkJsonl, type LineProblem } from "./jsonl.ts";
import type { BatchMetrics } from "./metrics.ts";
import type { OverflowHook } from "./overflow.ts";
import { redactValue } from "./pii.ts";
import { batchEvent, errorLine, outputLine, outputLineRaw } from "./views.ts";

/** What a batch keeps of its profile (in its row, so a restart with another config does not change it). */
export interface StoredOptions extends BatchOptions {
  model?: string;
  max_tokens?: number;
}

export interface BatchWorkerOptions {
  store: BatchStore;
  files: FileStorage;
  completions: CompletionService;
  gate: AdmissionGate;
  config: BatchConfig;
  metrics: BatchMetrics;
  events: EventHub;
  log: Logger;
  /** How often the worker looks for work besides being woken (ms, default 250). */
  pollMs?: number;
  /** Answers are committed together at most this long after the first of them (ms, default 25). */
  commitMs?: number;
  /** Cloud overflow (overflow.ts): looks at every in-progress batch's deadline on each step. */
  overflow?: OverflowHook;
}

interface RunningItem {
  batchId: string;
  abort: AbortController;
  done: Promise<void>;
}

/** An item claimed (running in the database) and not yet started, its body parsed once. */
interface ClaimedItem {
  item: ItemRow;
  body: OpenAIBody;
  model: string;
}

/** An in-progress batch as the last step saw it, with its claimed items. */
interface ActiveBatch {
  row: BatchRow;
  opts: StoredOptions;
  claimSize: number;
  claimed: ClaimedItem[];
  /** Nothing was left to claim and nothing ran: the step was asked to look (once). */
  drained: boolean;
  /** The deadline estimate said it will not end in its window: it gets a minimum share under interactive traffic (for good). */
  late: boolean;
  /** When `late` was last worked out (ms). */
  lateAt: number;
}

interface BufferedEnd {
  batchId: string;
  line: number;
  end: ItemEnd;
}

const MAX_BACKOFF_MS = 60_000;
/** Longest wait of an item during an outage (it is not failed by one: see nothingCanServe). */
const OUTAGE_MAX_BACKOFF_MS = 30_000;
/** Upstream errors that say the upstream could not be reached at all (not what it answered). */
const UNREACHABLE = new Set(["connect", "unavailable", "overloaded"]);
const PAGE = 1000;
/** Items inserted per transaction while a batch is validated. */
const ITEM_CHUNK = 1000;
/** How often an in-progress batch's lateness is worked out again (ms). */
const LATE_CHECK_MS = 5000;
/** Items of ended batches deleted per second (small steps: the event loop serves requests too). */
const PURGE_STEP = 2000;
/** Answers buffered before a commit is made at once (besides commitMs). */
const COMMIT_ITEMS = 256;
/**
 * Items claimed per transaction (a commit costs more than its rows: at 8 items a claim was
 * ~50 µs of each item's CPU): 64, or for a batch the cloud overflow may take items from, a
 * few rounds of its concurrency and no more, since a claimed item is running in the
 * database and the overflow takes pending ones.
 */
const CLAIM = 64;
const claimSize = (concurrency: number, overflow: boolean): number => (overflow ? Math.min(CLAIM, concurrency * 4) : CLAIM);
const seconds = (ms: number): number => Math.floor(ms / 1000);
const SHUTDOWN = "shutdown";
const PREEMPTED = "preempted";

export class BatchWorker {
  private readonly o: BatchWorkerOptions;
  private readonly running = new Map<string, RunningItem>();
  private readonly perBatch = new Map<string, number>();
  /** Batches being validated or having their files written (async steps not to start twice). */
  private readonly busy = new Set<string>();
  private readonly jobs = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private fillScheduled = false;
  private fillTimer: NodeJS.Timeout | undefined;
  private fillAt = Infinity;
  /** In-progress batches in the order they get capacity (priority, then oldest), from the last step. */
  private active: ActiveBatch[] = [];
  private ends: BufferedEnd[] = [];
  private commitTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Batches whose files could not be written (a full disk...): not retried before this time (ms). */
  private readonly filesRetryAt = new Map<string, number>();
  private depthAt = 0;
  private readonly lineId = createLineIds();
  /** The batch being validated, if one is (validations run one at a time). */
  private validating: string | undefined;
  /** Outage failures (nothing could serve) per item (batch#line): its wait before trying again grows with them. */
  private readonly outageWaits = new Map<string, number>();

  constructor(opts: BatchWorkerOptions) {
    this.o = opts;
    // Capacity freed (an item or an interactive request ended): start what may start now.
    opts.gate.onRelease(() => this.fillSoon());
  }

  async start(): Promise<void> {
    // A validation a stopped gateway did not finish starts over: its partial items go.
    const dropped = this.o.store.dropUnstartedItems();
    if (dropped > 0) this.o.log.info({ items: dropped }, "items of batches still validating at the last stop dropped; they are validated again");
    const requeued = this.o.store.requeueRunning();
    if (requeued > 0) this.o.log.info({ items: requeued }, "batch items a stopped gateway was running are pending again");
    const orphans = await this.o.files.removeOrphans(this.o.store.fileIds());
    if (orphans > 0) this.o.log.info({ files: orphans }, "batch files no row names removed");
    this.timer = setInterval(() => this.tick(), this.o.pollMs ?? 250);
    this.timer.unref();
    this.wake();
  }

  /** Look at every batch soon (one was created, cancelled, validated, or has run out of items). */
  wake(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.tick();
    });
  }

  /** Start items soon (capacity freed up): coalesced, one fill for many wakes. */
  private fillSoon(): void {
    if (this.fillScheduled || this.stopped) return;
    this.fillScheduled = true;
    setImmediate(() => {
      this.fillScheduled = false;
      this.guard(() => this.fill());
    });
  }

  /** A fill at `delayMs` from now (the gate asked to wait that long), unless one comes sooner. */
  private fillLater(delayMs: number): void {
    const at = performance.now() + delayMs;
    if (this.stopped || at >= this.fillAt) return;
    if (this.fillTimer) clearTimeout(this.fillTimer);
    this.fillAt = at;
    this.fillTimer = setTimeout(() => {
      this.fillTimer = undefined;
      this.fillAt = Infinity;
      this.guard(() => this.fill());
    }, Math.max(1, Math.ceil(delayMs)));
    this.fillTimer.unref();
  }

  /** Stops taking work; running items are cancelled and go back to pending for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.fillTimer) clearTimeout(this.fillTimer);
    for (const r of this.running.values()) r.abort.abort(SHUTDOWN);
    await Promise.allSettled([...[...this.running.values()].map((r) => r.done), ...this.jobs, this.o.overflow?.stop()]);
    this.guard(() => {
      this.commit();
      // Claimed and never started: pending again now (a restart would do it too), their attempt given back.
      for (const a of this.active) for (const c of a.claimed.splice(0)) this.o.store.requeue(a.row.id, c.item.line, 0, null, true);
    });
  }

  private job(p: Promise<void>): void {
    this.jobs.add(p);
    void p.finally(() => {
      this.jobs.delete(p);
      this.wake();
    });
  }

  private tick(): void {
    if (this.stopped) return;
    this.guard(() => this.step());
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      this.o.log.error({ err }, "batch worker step failed");
    }
  }

  /** An item's answer, committed with the others of the next few milliseconds. */
  private endLater(batchId: string, line: number, end: ItemEnd): void {
    this.outageWaits.delete(`${batchId}#${line}`);
    this.ends.push({ batchId, line, end });
    if (this.ends.length >= COMMIT_ITEMS) this.commit();
    else if (!this.commitTimer) this.commitTimer = setTimeout(() => this.guard(() => this.commit()), this.o.commitMs ?? 25);
  }

  /** Commits the buffered answers in one transaction (before anything reads or ends items by batch). */
  private commit(): void {
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    if (this.ends.length === 0) return;
    const ends = this.ends;
    this.ends = [];
    let ended: boolean[];
    try {
      ended = this.o.store.endItems(ends);
    } catch (err) {
      // Not written (a busy or full database): kept for the next commit rather than lost with their items still running.
      this.ends = ends.concat(this.ends);
      throw err;
    }
    ends.forEach((e, i) => {
      if (ended[i]) this.o.metrics.item(e.end.state === "done" ? "completed" : "failed");
    });
  }

  private step(): void {
    const { store } = this.o;
    const now = Date.now();
    // The answers so far first: whether a batch has items left, its close, its files read committed rows.
    this.commit();
    const previous = new Map(this.active.map((a) => [a.row.id, a]));
    const active: ActiveBatch[] = [];
    for (const b of store.unfinished()) {
      if (this.busy.has(b.id)) continue;
      if (b.ending) {
        if ((this.filesRetryAt.get(b.id) ?? 0) <= now) this.job(this.writeFiles(b.id));
      } else if (b.status === "cancelling") {
        this.close(b, "cancelled", "batch_cancelled", "This request was not executed because the batch was cancelled.");
      } else if (seconds(now) >= b.expires_at) {
        this.close(b, "expired", "batch_expired", "This request could not be executed before the completion window expired.");
      } else if (b.status === "validating") {
        // One validation at a time (each reads a whole file and inserts its items): the
        // others wait their turn, highest priority then oldest first.
        if (this.validating === undefined) this.job(this.validate(b));
      } else if (b.status === "in_progress") {
        if (!store.hasUnended(b.id)) this.close(b, "completed", "", "");
        else {
          this.o.overflow?.check(b, now);
          // Kept from the last step with its claimed items; drained stays as it was (a batch whose retries wait is not looked at again at every step).
          const a = previous.get(b.id) ?? this.activate(b);
          a.row = b;
          // Once late, a batch keeps its share: the pace it then has is the share's, and judging
          // it on time from that pace would take the share away and starve it again.
          if (!a.late && now - a.lateAt >= LATE_CHECK_MS) this.checkLate(a, now);
          active.push(a);
        }
      }
    }
    // A batch no longer in progress (closed above, or by another path) keeps no claimed items: close() ended them.
    this.active = active;
    this.fill();
    // Once a second, not at every wake: the queue depth (a count over the pending items), and
    // a step of deleting ended batches' items (their lines are in the files by then).
    if (now - this.depthAt >= 1000) {
      this.depthAt = now;
      this.o.metrics.queueDepth(store.pendingTotal());
      store.purgeEnded(PURGE_STEP);
    }
  }

  /** Every unended item gets its error line, running ones are cancelled, and the files are written next. */
  private close(b: BatchRow, ending: "completed" | "expired" | "cancelled", code: string, message: string): void {
    this.commit();
    const a = this.active.find((x) => x.row.id === b.id);
    if (a) a.claimed.length = 0;
    this.active = this.active.filter((x) => x !== a);
    const ended = this.o.store.closeItems(b.id, ending, seconds(Date.now()), (item) => errorLine(item.custom_id, code, message, this.lineId()));
    for (const r of this.running.values()) if (r.batchId === b.id) r.abort.abort(ending);
    for (const k of this.outageWaits.keys()) if (k.startsWith(`${b.id}#`)) this.outageWaits.delete(k);
    if (ending !== "completed") this.o.log.info({ batch: b.id, ending, unfinished_items: ended }, "batch ended before all its items ran");
    // A cancelled batch stays cancelling (told when it was cancelled); the others are finalizing now.
    if (b.status !== "cancelling") this.publish(b.id);
    this.job(this.writeFiles(b.id));
  }

  /** Works out whether the batch is late at the pace it has had since it started running (a count over its items: every few seconds only). */
  private checkLate(a: ActiveBatch, now: number): void {
    a.lateAt = now;
    const b = a.row;
    const c = this.o.store.counts(b.id);
    const ended = c.completed + c.failed;
    const late = batchIsLate({
      itemsLeft: c.total - ended,
      itemsEnded: ended,
      runningSeconds: Math.max(0, now / 1000 - (b.in_progress_at ?? b.created_at)),
      secondsLeft: b.expires_at - now / 1000,
      windowSeconds: b.window_s,
    });
    if (late) this.o.log.info({ batch: b.id, items_left: c.total - ended }, "batch is late for its window: it gets a minimum share under interactive traffic");
    a.late = late;
  }

  private activate(b: BatchRow): ActiveBatch {
    const opts = this.optionsOf(b);
    return { row: b, opts, claimSize: claimSize(opts.concurrency, this.o.overflow?.covers(b) ?? false), claimed: [], drained: false, late: false, lateAt: 0 };
  }

  private optionsOf(b: BatchRow): StoredOptions {
    return JSON.parse(b.options) as StoredOptions;
  }

  /** Starts claimed items while the gate and each batch's concurrency allow, claiming more as needed. */
  private fill(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const a of this.active) {
      const b = a.row;
      let slots = a.opts.concurrency - (this.perBatch.get(b.id) ?? 0);
      while (slots > 0) {
        if (a.claimed.length === 0) {
          for (const item of this.o.store.claim(b.id, now, a.claimSize)) {
            const body = JSON.parse(item.body) as OpenAIBody;
            a.claimed.push({ item, body, model: typeof body.model === "string" ? body.model : "" });
          }
          if (a.claimed.length === 0) {
            // Nothing due: all ended (the step closes the batch), or retries wait for their time.
            if (!this.perBatch.has(b.id) && !a.drained) {
              a.drained = true;
              this.wake();
            }
            break;
          }
          a.drained = false;
        }
        const next = a.claimed[0]!;
        const abort = new AbortController();
        const admitted = this.o.gate.tryStart(next.model, () => abort.abort(PREEMPTED), { late: a.late });
        // Interactive traffic or a full provider: nothing more of this batch now; the gate wakes us.
        if ("wait" in admitted) {
          if (admitted.retryInMs !== undefined) this.fillLater(admitted.retryInMs);
          break;
        }
        a.claimed.shift();
        this.run(b, a.opts, next, abort, admitted.release);
        slots--;
      }
    }
  }

  private run(b: BatchRow, opts: StoredOptions, claimed: ClaimedItem, abort: AbortController, release: () => void): void {
    const { item } = claimed;
    const key = `${b.id}#${item.line}`;
    this.perBatch.set(b.id, (this.perBatch.get(b.id) ?? 0) + 1);
    const done = this.execute(b, opts, item, claimed.body, abort.signal)
      .catch((err: unknown) => this.o.log.error({ err, batch: b.id, line: item.line }, "batch item failed inside labgate"))
      .finally(() => {
        this.running.delete(key);
        const n = (this.perBatch.get(b.id) ?? 1) - 1;
        if (n <= 0) this.perBatch.delete(b.id);
        else this.perBatch.set(b.id, n);
        release();
        this.fillSoon();
      });
    this.running.set(key, { batchId: b.id, abort, done });
  }

  private async execute(b: BatchRow, opts: StoredOptions, item: ItemRow, request: OpenAIBody, signal: AbortSignal): Promise<void> {
    const { store, metrics } = this.o;
    const operation = BATCH_ENDPOINTS[b.endpoint] as Operation;
    const end = (state: "done" | "failed", file: ResultFile, result: string, requestId: string | null, usage?: { prompt_tokens?: number; completion_tokens?: number } | null): void => {
      this.endLater(b.id, item.line, {
        state,
        file,
        result,
        requestId,
        promptTokens: usage?.prompt_tokens ?? 0,
        completionTokens: usage?.completion_tokens ?? 0,
      });
    };
    try {
      const completion = await this.o.completions.complete({
        operation,
        body: request,
        stream: false,
        // Batch items are told apart in the request log by this prefix (and their request_id).
        tenant: `batch:${b.tenant ?? "anonymous"}`,
        signal,
      });
      if (completion.kind !== "json") {
        // Items never ask for a stream; a stream here is a bug, ended at once.
        completion.end({ usage: null, cancelled: true });
        throw new Error("a batch item got a stream");
      }
      const line = opts.redact_pii
        ? outputLine(item.custom_id, 200, completion.id, redactValue(completion.body), this.lineId())
        : outputLineRaw(item.custom_id, 200, completion.id, completion.body, completion.raw, this.lineId());
      end("done", "output", line, completion.id, completion.usage);
    } catch (err) {
      if (signal.aborted) {
        // Stopped by labgate itself (a shutdown, an interactive request that needed the place): pending
        // again, the attempt given back. Cancel or expiry: already ended by close().
        if (signal.reason === SHUTDOWN || signal.reason === PREEMPTED) {
          const requeued = store.requeue(b.id, item.line, 0, err instanceof CompletionFailure ? err.id : null, true);
          if (requeued && signal.reason === PREEMPTED) metrics.item("preempted");
        }
        return;
      }
      if (!(err instanceof CompletionFailure)) {
        this.o.log.error({ err, batch: b.id, line: item.line }, "batch item failed inside labgate");
        end("failed", "error", errorLine(item.custom_id, "internal_error", "Internal error in labgate.", this.lineId()), null);
        return;
      }
      const f = err.failure;
      const status = err.status;
      if (nothingCanServe(err)) {
        // An outage, not this item's fault: its attempt is given back and it waits, longer
        // while the outage lasts, until something can serve or the batch's window ends
        // (then it expires with the rest). A one-minute outage must not fail a 24 h batch.
        const key = `${b.id}#${item.line}`;
        const waits = (this.outageWaits.get(key) ?? 0) + 1;
        this.outageWaits.set(key, waits);
        const delay = backoffDelay(Math.min(waits, 16), this.o.config.retry_backoff_s * 1000, OUTAGE_MAX_BACKOFF_MS);
        if (store.requeue(b.id, item.line, Date.now() + Math.max(delay, Math.min(f.retryAfterMs ?? 0, OUTAGE_MAX_BACKOFF_MS)), err.id, true)) metrics.item("retried");
        return;
      }
      const retryable = status === 429 || status >= 500 || f.reason === "no_deployment" || f.reason === "panic_exhausted";
      if (retryable && item.attempts <= opts.retries) {
        const delay = Math.max(backoffDelay(item.attempts, this.o.config.retry_backoff_s * 1000, MAX_BACKOFF_MS), Math.min(f.retryAfterMs ?? 0, MAX_BACKOFF_MS));
        if (store.requeue(b.id, item.line, Date.now() + delay, err.id)) metrics.item("retried");
        return;
      }
      const e = routeFailureError(f, status);
      if (status < 500 && status !== 429) {
        // As at OpenAI: an answer the request itself caused (4xx) is an output line with its status, counted failed.
        const body = errorBody(e.message, e.type, e.code, e.param);
        end("failed", "output", outputLine(item.custom_id, status, err.id, opts.redact_pii ? redactValue(body) : body, this.lineId()), err.id);
      } else {
        end("failed", "error", errorLine(item.custom_id, e.code, opts.redact_pii ? redactValue(e.message) : e.message, this.lineId()), err.id);
      }
    }
  }

  /**
   * validating -> in_progress with its items (profile defaults filled in), or failed with the
   * problems. The file is streamed and its items inserted ITEM_CHUNK at a time while the
   * batch stays validating (memory stays flat whatever the file's size); a validation cut
   * short (a restart, a cancel) leaves no items: they are dropped and it starts over.
   */
  private async validate(b: BatchRow): Promise<void> {
    this.busy.add(b.id);
    this.validating = b.id;
    try {
      const { store, files, config } = this.o;
      const opts = this.optionsOf(b);
      const problems: LineProblem[] = [];
      let chunk: NewItem[] = [];
      let cut = false;
      const flush = (): void => {
        if (chunk.length === 0 || cut) return;
        // A cancel meanwhile: stop inserting (the items so far are dropped below).
        if (!store.insertItems(b.id, chunk)) cut = true;
        chunk = [];
      };
      store.dropUnstartedItems(b.id);
      const file = store.file(b.input_file_id);
      let reportProblems: LineProblem[] = [];
      if (!file) {
        problems.push({ line: 0, code: "invalid_file", message: `The input file ${b.input_file_id} no longer exists.`, param: "input_file_id" });
      } else {
        const report = await checkJsonl(files.pathOf(file.id), {
          // A shutdown or a cancel stops the reading too (a big file would hold the stop up).
          stop: () => this.stopped || cut,
          maxLines: config.max_requests,
          maxLineBytes: config.max_line_kb * 1024,
          onLine: async (l) => {
            if (l.url !== b.endpoint) {
              problems.push({ line: l.line, code: "invalid_url", message: `Line ${l.line}: url ${l.url} is not the batch's endpoint ${b.endpoint}.`, param: "url" });
              return;
            }
            const body = withDefaults(l.body, b.endpoint, opts);
            if (typeof body.model !== "string") {
              problems.push({ line: l.line, code: "missing_required_parameter", message: `Line ${l.line}: body.model is missing (and the batch has no profile that names one).`, param: "body.model" });
              return;
            }
            // Once a problem is known the batch fails: its items are no longer worth storing.
            if (problems.length > 0) return;
            chunk.push({ line: l.line, custom_id: l.custom_id, body: JSON.stringify(body) });
            if (chunk.length >= ITEM_CHUNK) {
              flush();
              // The event loop serves requests between chunks.
              await new Promise((resolve) => setImmediate(resolve));
            }
          },
        });
        reportProblems = report.problems;
      }
      // Stopped: the next start drops the partial items and validates again.
      if (this.stopped) return;
      const all = [...reportProblems, ...problems].sort((x, y) => x.line - y.line).slice(0, 10);
      const now = seconds(Date.now());
      if (cut) {
        store.dropUnstartedItems(b.id);
      } else if (all.length > 0) {
        const errors = { object: "list", data: all.map((p) => ({ code: p.code, message: p.message, param: p.param, line: p.line || null })) };
        if (store.failValidation(b.id, errors, now)) {
          this.o.metrics.batchEnded("failed");
          this.publish(b.id);
        }
      } else if (store.start(b.id, chunk, now)) {
        this.publish(b.id);
      } else {
        store.dropUnstartedItems(b.id);
      }
    } finally {
      this.validating = undefined;
      this.busy.delete(b.id);
    }
  }

  /** Writes the output and error files from the items' stored lines; then the batch takes its final status. */
  private async writeFiles(batchId: string): Promise<void> {
    this.busy.add(batchId);
    const written: string[] = [];
    try {
      const { store, files } = this.o;
      const b = store.batch(batchId);
      if (!b?.ending) return;
      const now = seconds(Date.now());
      const out: { output?: FileRow; error?: FileRow } = {};
      for (const kind of ["output", "error"] as const) {
        const lines = store.resultCount(batchId, kind);
        if (lines === 0) continue;
        const id = newFileId();
        written.push(id);
        const bytes = await files.writeLines(id, pages(store, batchId, kind));
        out[kind] = { id, purpose: "batch_output", filename: `${batchId}_${kind}.jsonl`, bytes, lines, created_at: now, tenant: b.tenant };
      }
      const ending = store.finish(batchId, out, now);
      if (!ending) {
        for (const id of written) await files.remove(id);
        return;
      }
      written.length = 0;
      this.filesRetryAt.delete(batchId);
      this.o.metrics.batchEnded(ending);
      this.o.log.info({ batch: batchId, status: ending, ...store.counts(batchId) }, "batch ended");
      this.publish(batchId);
    } catch (err) {
      this.o.log.error({ err, batch: batchId }, "writing a batch's files failed; retried in 10 s");
      this.filesRetryAt.set(batchId, Date.now() + 10_000);
      for (const id of written) await this.o.files.remove(id);
    } finally {
      this.busy.delete(batchId);
    }
  }

  /** Tells the live events (GET /admin/events: the dashboard, the tray) of a batch's status. */
  publish(batchId: string): void {
    const b = this.o.store.batch(batchId);
    if (!b) return;
    this.o.events.publish("batch", batchEvent(b, this.o.store.counts(b.id)));
  }
}

/**
 * Whether a failure means nothing can serve the item now (no healthy deployment, every
 * breaker open, the upstream refusing connections, every deployment at its limit) rather
 * than something about the item itself (a 4xx, a 5xx answer from a reachable upstream).
 */
export function nothingCanServe(err: CompletionFailure): boolean {
  const f = err.failure;
  // panic_exhausted: every deployment's breaker is open, each was tried once and failed.
  if (f.reason === "no_deployment" || f.reason === "all_limited" || f.reason === "panic_exhausted") return true;
  const cls = f.error?.errorClass;
  return cls !== undefined && UNREACHABLE.has(cls);
}

async function* pages(store: BatchStore, batchId: string, file: ResultFile): AsyncGenerator<string> {
  let after = 0;
  for (;;) {
    const page = store.resultPage(batchId, file, after, PAGE);
    for (const r of page) yield r.result;
    if (page.length < PAGE) return;
    after = page.at(-1)!.line;
    // Let other work run between pages of a big file.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A line's body with the profile's model and max_tokens where it names none; never a stream. */
export function withDefaults(body: Record<string, unknown>, endpoint: string, opts: StoredOptions): Record<string, unknown> {
  const out = { ...body };
  if (out.model === undefined && opts.model) out.model = opts.model;
  if (endpoint !== "/v1/embeddings" && opts.max_tokens !== undefined && out.max_tokens === undefined && out.max_completion_tokens === undefined) {
    out.max_tokens = opts.max_tokens;
  }
  delete out.stream;
  delete out.stream_options;
  return out;
}
