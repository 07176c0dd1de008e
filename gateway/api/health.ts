// GET /health (the gateway is up; always open, for liveness probes) and GET /health/:provider
// (probe that provider; with a master key, for holders of the master or admin key). A live
// probe is shared by every caller for PROBE_CACHE_MS, so callers cannot turn the gateway into
// an amplifier that spends the provider's key on upstream calls.
import type { FastifyPluginAsync } from "fastify";
import type { HealthResult } from "../providers/types.ts";
import type { ProviderRuntime } from "../router/runtime.ts";
import { authorizeOperator } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

/** How long one live probe of a provider answers /health/<provider> for everyone. */
export const PROBE_CACHE_MS = 5000;

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

    // One probe in flight or fresh per provider runtime (a replaced provider is probed anew).
    const probes = new WeakMap<ProviderRuntime, { at: number; result: Promise<HealthResult & { at: number }> }>();
    const probe = (p: ProviderRuntime): Promise<HealthResult & { at: number }> => {
      const now = Date.now();
      const cached = probes.get(p);
      if (cached && now - cached.at < PROBE_CACHE_MS) return cached.result;
      const result = deps.health.probe(p.name);
      probes.set(p, { at: now, result });
      return result;
    };

    app.get<{ Params: { provider: string } }>("/health/:provider", async (request, reply) => {
      authorizeOperator(request, deps);
      const p = deps.registry.get(request.params.provider);
      if (!p) throw new ApiError(404, `No provider named \`${request.params.provider}\`.`, { code: "provider_not_found" });
      const base = { provider: p.name, type: p.type, enabled: p.enabled };
      if (p.unavailableReason) {
        return reply.code(503).send({ ...base, healthy: false, available: false, reason: p.unavailableReason });
      }
      const h = await probe(p);
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
