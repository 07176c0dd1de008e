// The analytics worker thread: its own read-only connection to labgate.db (WAL lets it
// read while the gateway writes), so a query over a month of rollups never holds the
// gateway's event loop. One message in, one answer out (analytics-client.ts).
import Database from "better-sqlite3";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { runAnalytics, type AnalyticsParams, type AnalyticsQuery } from "./analytics.ts";

export interface AnalyticsRequest {
  id: number;
  query: AnalyticsQuery;
  params: AnalyticsParams;
}
export type AnalyticsReply = { id: number; ok: true; json: string; ms: number } | { id: number; ok: false; error: string };

// A lower priority for this thread only (Linux keeps a nice value per thread): on a busy
// machine the gateway's own thread gets the CPU first and a long query waits.
// (Elsewhere the call would lower the whole process: not there.)
if (process.platform === "linux") {
  try {
    setPriority(10);
  } catch {
    // not allowed here: run at the process's priority
  }
}

const { file } = workerData as { file: string };
const db = new Database(file, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 5000");

parentPort!.on("message", (msg: AnalyticsRequest | "close") => {
  if (msg === "close") {
    db.close();
    parentPort!.close();
    return;
  }
  const started = performance.now();
  let reply: AnalyticsReply;
  try {
    // As JSON text: a string crosses to the gateway's thread without a structured clone of
    // thousands of points, and the route sends it as it is (no JSON.stringify there either).
    reply = { id: msg.id, ok: true, json: JSON.stringify(runAnalytics(db, msg.query, msg.params)), ms: performance.now() - started };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(reply);
});
