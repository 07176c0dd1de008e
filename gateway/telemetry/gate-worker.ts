// The readiness gate over the request log in a worker thread, with its own read-only
// connection (WAL lets it read while the gateway writes): a long window over a busy log
// (about 3 µs a row) never holds the gateway's event loop. One gate per worker (api/gate.ts).
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import type { LabgateConfig } from "../config/schema.ts";
import { evaluateGate, type GateReport } from "./gate.ts";
import type { UpstreamProviderHistory } from "./upstream-metrics.ts";

export interface GateWorkerData {
  file: string;
  config: LabgateConfig;
  windowMs: number;
  window: string;
  now: number;
  /** The scrapes since the window's start (a snapshot of the gateway's history). */
  history: UpstreamProviderHistory[];
}
export type GateWorkerReply = { ok: true; report: GateReport } | { ok: false; error: string };

const data = workerData as GateWorkerData;
let reply: GateWorkerReply;
try {
  const db = new Database(data.file, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 5000");
    const upstream = { history: (since: number) => data.history.map((h) => ({ ...h, samples: h.samples.filter((s) => s.ts >= since) })) };
    reply = { ok: true, report: evaluateGate({ config: data.config, windowMs: data.windowMs, window: data.window, now: data.now, db, upstream }) };
  } finally {
    db.close();
  }
} catch (err) {
  reply = { ok: false, error: (err as Error)?.message ?? String(err) };
}
parentPort!.postMessage(reply);
