// GET /admin/gate[?window=30m]: the readiness gate over the request log and the scraped
// upstream figures (the same report as `labgate gate --json`). Always 200 when it could
// measure: the verdict is in the body ("FAIL" when a criterion fails). The log is read in
// a worker thread (telemetry/gate-worker.ts), off the gateway's event loop.
import { startWorker } from "../../bin/prestripped.js";
import type { FastifyPluginAsync } from "fastify";
import { evaluateGate, parseWindow, type GateReport } from "../telemetry/gate.ts";
import type { GateWorkerData, GateWorkerReply } from "../telemetry/gate-worker.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const WORKER_URL = new URL("../telemetry/gate-worker.ts", import.meta.url);
const TIMEOUT_MS = 60_000;

export const gateRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get<{ Querystring: { window?: string } }>("/gate", async (request) => {
      const window = request.query.window ?? "30m";
      const windowMs = parseWindow(window);
      if (windowMs === undefined) throw new ApiError(400, `window must be a duration such as 30m, 2h, 90s or 1d, got \`${window}\`.`, { code: "invalid_window", param: "window" });
      // Rows still queued count too.
      deps.requestLog.flush();
      const now = Date.now();
      // A database in memory has no file for another connection: measured here.
      if (deps.db.memory) return evaluateGate({ config: deps.config, windowMs, window, now, db: deps.db, upstream: deps.upstream });
      const data: GateWorkerData = { file: deps.db.name, config: deps.config, windowMs, window, now, history: deps.upstream.history(now - windowMs) };
      return runWorker(data);
    });
  };

function runWorker(data: GateWorkerData): Promise<GateReport> {
  return new Promise((resolve, reject) => {
    const worker = startWorker(WORKER_URL, { name: "labgate-gate", workerData: data });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new ApiError(503, `The readiness gate took longer than ${TIMEOUT_MS / 1000} s.`, { code: "gate_timeout" }));
    }, TIMEOUT_MS);
    const done = (f: () => void) => {
      clearTimeout(timer);
      f();
    };
    worker.once("message", (m: GateWorkerReply) => done(() => (m.ok ? resolve(m.report) : reject(new ApiError(500, `The readiness gate could not read the request log: ${m.error}`, { code: "gate_failed" })))));
    worker.once("error", (err: Error) => done(() => reject(new ApiError(500, `The readiness gate failed: ${err.message}`, { code: "gate_failed" }))));
    worker.once("exit", (code) => done(() => reject(new ApiError(500, `The readiness gate's worker exited (${code}) without an answer.`, { code: "gate_failed" }))));
  });
}
