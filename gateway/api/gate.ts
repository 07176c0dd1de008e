// GET /admin/gate[?window=30m]: the readiness gate over the request log and the scraped
// upstream figures (the same report as `labgate gate --json`). Always 200: the verdict
// is in the body ("FAIL" when a criterion fails).
import type { FastifyPluginAsync } from "fastify";
import { evaluateGate, parseWindow } from "../telemetry/gate.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

export const gateRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get<{ Querystring: { window?: string } }>("/gate", async (request) => {
      const window = request.query.window ?? "30m";
      const windowMs = parseWindow(window);
      if (windowMs === undefined) throw new ApiError(400, `window must be a duration such as 30m, 2h, 90s or 1d, got \`${window}\`.`, { code: "invalid_window", param: "window" });
      // Rows still queued count too.
      deps.requestLog.flush();
      return evaluateGate({ config: deps.config, windowMs, window, db: deps.db, upstream: deps.upstream });
    });
  };
