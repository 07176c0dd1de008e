// GET /admin/traffic: the last hour of traffic per provider (requests, errors, TTFB p50/p95
// per 10-second bucket, and each provider's last minute), from memory, for the dashboard's
// overview charts. Registered under /admin with the same admin check as /admin/lab.
import type { FastifyPluginAsync } from "fastify";
import type { TrafficHistory } from "../telemetry/traffic-history.ts";
import { authorizeAdmin, type GatewayKeys } from "./auth.ts";

export const trafficRoutes =
  (keys: GatewayKeys, history: TrafficHistory): FastifyPluginAsync =>
  async (app) => {
    app.addHook("onRequest", async (request) => authorizeAdmin(request, keys));

    app.get("/traffic", async () => history.snapshot());
  };
