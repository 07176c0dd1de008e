// GET /metrics for Prometheus (with a master key: the master or admin key as a bearer token).
import type { FastifyPluginAsync } from "fastify";
import { authorizeOperator } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";

export const metricsRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/metrics", async (request, reply) => {
      authorizeOperator(request, deps);
      const m = deps.metrics;
      m.breakerState.reset(); // deployments of models that went away leave no stale series
      for (const d of deps.router.allDeployments()) {
        const s = d.breaker.state;
        m.breakerState.set({ deployment: d.id, provider: d.provider.name }, s === "closed" ? 0 : s === "half_open" ? 1 : 2);
      }
      for (const p of deps.registry.list()) m.inFlight.set({ provider: p.name }, p.inFlight);
      reply.header("content-type", m.registry.contentType);
      return m.registry.metrics();
    });
  };
