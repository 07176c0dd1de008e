// GET /health (the gateway is up) and GET /health/:provider (probe that provider now).
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

export const healthRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/health", async () => ({
      status: "ok",
      version: deps.version,
      uptime_s: Math.round((Date.now() - deps.startedAt) / 1000),
      providers: deps.registry.size,
      models: deps.router.listGroups().length,
    }));

    app.get<{ Params: { provider: string } }>("/health/:provider", async (request, reply) => {
      const p = deps.registry.get(request.params.provider);
      if (!p) throw new ApiError(404, `No provider named \`${request.params.provider}\`.`, { code: "provider_not_found" });
      const base = { provider: p.name, type: p.type, enabled: p.enabled };
      if (p.unavailableReason) {
        return reply.code(503).send({ ...base, healthy: false, available: false, reason: p.unavailableReason });
      }
      const h = await deps.health.probe(p.name);
      const breakers = deps.router
        .allDeployments()
        .filter((d) => d.provider === p)
        .map((d) => ({ deployment: d.id, model: d.upstreamModel, state: d.breaker.state }));
      return reply.code(h.ok ? 200 : 503).send({
        ...base,
        healthy: h.ok,
        available: true,
        detail: h.detail,
        latency_ms: Math.round(h.latencyMs * 10) / 10,
        models: h.models,
        circuit_breakers: breakers,
      });
    });
  };
