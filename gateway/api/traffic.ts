// GET /admin/traffic: the last hour of traffic per provider (requests, errors, TTFB p50/p95
// per 10-second bucket, and each provider's last minute), from memory, for the dashboard's
// overview charts. Registered inside the /admin plugin (admin.ts), whose hook checks the admin key.
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";

export const trafficRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/traffic", async () => deps.traffic.snapshot());
  };
