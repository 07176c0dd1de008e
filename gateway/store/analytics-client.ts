// Runs analytics queries (analytics.ts) in a worker thread with its own read-only
// connection, started at the first query and ended by close(). Queries are answered in
// order, one at a time; a database in memory (tests) has no file to share, so its
// queries run inline.
import type { Worker } from "node:worker_threads";
import { startWorker } from "../../bin/prestripped.js";
import { runAnalytics, type AnalyticsParams, type AnalyticsQuery } from "./analytics.ts";
import type { AnalyticsReply } from "./analytics-worker.ts";
import type { Db } from "./db.ts";

const WORKER_URL = new URL("./analytics-worker.ts", import.meta.url);

export interface AnalyticsClientOptions {
  /** A query not answered in this long fails (default 30 s) and the worker is replaced. */
  timeoutMs?: number;
}

export class AnalyticsClient {
  private readonly db: Db;
  private readonly timeoutMs: number;
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private closed = false;
  /** Queries answered by the worker, and the time they took there (ms), for the bench. */
  answered = 0;
  workerMs = 0;

  constructor(db: Db, opts: AnalyticsClientOptions = {}) {
    this.db = db;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** The answer as JSON text (what the admin route sends as it is). */
  queryJson(query: AnalyticsQuery, params: AnalyticsParams): Promise<string> {
    if (this.closed) return Promise.reject(new Error("analytics closed"));
    if (this.db.memory) return Promise.resolve().then(() => JSON.stringify(runAnalytics(this.db, query, params)));
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`analytics query ${query} took longer than ${this.timeoutMs} ms`));
        // A worker stuck in a query would hold every later one: start afresh.
        this.dropWorker();
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, query, params });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = startWorker(WORKER_URL, { name: "labgate-analytics", workerData: { file: this.db.name } });
    worker.unref();
    worker.on("message", (m: AnalyticsReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) {
        this.answered++;
        this.workerMs += m.ms;
        p.resolve(m.json);
      } else p.reject(new Error(m.error));
    });
    const fail = (err: Error): void => {
      if (this.worker === worker) this.worker = undefined;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(err);
        this.pending.delete(id);
      }
    };
    worker.on("error", (err) => fail(err instanceof Error ? err : new Error(String(err))));
    worker.on("exit", (code) => fail(new Error(`analytics worker exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private dropWorker(): void {
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate().catch(() => {});
  }

  /** The answer, parsed. */
  async query(query: AnalyticsQuery, params: AnalyticsParams): Promise<unknown> {
    return JSON.parse(await this.queryJson(query, params)) as unknown;
  }

  /** Ends the worker (pending queries fail). */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error("analytics closed"));
      this.pending.delete(id);
    }
    if (w) await w.terminate().catch(() => {});
  }
}
