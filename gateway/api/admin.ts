// Operator endpoints: provider status and toggles, circuit-breaker resets, recent requests.
import type { FastifyPluginAsync } from "fastify";
import { MAX_PAGE_ROWS } from "../store/request-log.ts";
import { authorizeAdmin } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { labServerRoutes } from "./lab-servers.ts";

export const adminRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.addHook("onRequest", async (request) => authorizeAdmin(request, deps.adminKey));

    app.get("/providers", async () => {
      const deployments = deps.router.allDeployments();
      return {
        object: "list",
        data: deps.registry.list().map((p) => {
          const mine = deployments.filter((d) => d.provider === p);
          const last = deps.registry.lastHealth(p.name);
          const requests = mine.reduce((n, d) => n + d.requests, 0);
          const failures = mine.reduce((n, d) => n + d.failures, 0);
          return {
            name: p.name,
            type: p.type,
            source: deps.registry.sourceOf(p.name) ?? null,
            enabled: p.enabled,
            available: !p.unavailableReason,
            unavailable_reason: p.unavailableReason ?? null,
            health: last ? { healthy: last.ok, detail: last.detail, checked_at: new Date(last.at).toISOString(), latency_ms: last.latencyMs } : null,
            in_flight: p.inFlight,
            requests,
            failures,
            deployments: mine.map((d) => ({
              id: d.id,
              model_group: d.group,
              model: d.upstreamModel,
              tier: d.tier ?? null,
              overflow: d.overflow,
              weight: d.weight,
              breaker_state: d.breaker.state,
              error_rate: d.breaker.errorRate(),
              in_flight: d.inFlight,
              ewma_ttfb_ms: d.ewmaTtfbMs ?? null,
              requests: d.requests,
              failures: d.failures,
            })),
          };
        }),
        // Per model group: a group in panic ignores its open breakers (router.circuit_breaker.panic_threshold).
        groups: deps.router.listGroups().map((g) => {
          const h = deps.router.groupHealth(g);
          return { name: g.name, panic: h.panic, enabled_deployments: h.enabled, breaker_not_open: h.eligible, deployments: g.deployments.length };
        }),
      };
    });

    const toggle = (enabled: boolean) => async (request: { params: { name: string } }) => {
      const name = request.params.name;
      // The registry tells its listeners: the toggle is persisted and logged there.
      if (!deps.registry.setEnabled(name, enabled)) throw new ApiError(404, `No provider named \`${name}\`.`, { code: "provider_not_found" });
      return { name, enabled };
    };
    app.post<{ Params: { name: string } }>("/providers/:name/disable", toggle(false));
    app.post<{ Params: { name: string } }>("/providers/:name/enable", toggle(true));

    app.post<{ Querystring: { deployment?: string } }>("/circuit-breaker/reset", async (request) => {
      const n = deps.router.resetBreakers(request.query.deployment);
      if (request.query.deployment && n === 0) {
        throw new ApiError(404, `No deployment \`${request.query.deployment}\`.`, { code: "deployment_not_found" });
      }
      return { reset: n };
    });

    // The lab's own routes share this plugin's admin check.
    await app.register(labServerRoutes(deps), { prefix: "/lab" });

    // At most MAX_PAGE_ROWS rows (a larger limit is clamped) and about MAX_PAGE_BYTES of JSON; has_more when older rows are left.
    app.get<{ Querystring: { limit?: string } }>("/requests", async (request) => {
      deps.requestLog.flush();
      const limit = Math.min(MAX_PAGE_ROWS, Math.max(1, Number(request.query.limit ?? 100) || 100));
      const page = deps.requestLog.recentPage(limit);
      return { object: "list", data: page.rows, has_more: page.hasMore };
    });
  };
