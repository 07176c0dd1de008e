// Operator endpoints: provider status and toggles, circuit-breaker resets, recent requests.
import type { FastifyPluginAsync } from "fastify";
import { authorizeAdmin } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";
import { adminBatchRoutes } from "./admin-batches.ts";
import { analyticsRoutes } from "./analytics.ts";
import { budgetRoutes } from "./budgets.ts";
import { ApiError } from "./errors.ts";
import { eventRoutes } from "./events.ts";
import { gateRoutes } from "./gate.ts";
import { labRoutes } from "./lab.ts";
import { labModelRoutes } from "./lab-models.ts";
import { labProcessRoutes } from "./lab-processes.ts";
import { labServerRoutes } from "./lab-servers.ts";
import { providersView } from "./provider-status.ts";
import { requestRoutes } from "./requests.ts";
import { trafficRoutes } from "./traffic.ts";

export const adminRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.addHook("onRequest", async (request) => authorizeAdmin(request, deps));

    app.get("/providers", async () => ({ object: "list", ...providersView(deps.registry, deps.router, deps.config.router) }));

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

    // The lab's own routes and the live events share this plugin's admin check.
    await app.register(labRoutes(deps), { prefix: "/lab" });
    await app.register(labServerRoutes(deps), { prefix: "/lab" });
    await app.register(labModelRoutes(deps), { prefix: "/lab" });
    await app.register(labProcessRoutes(deps), { prefix: "/lab" });
    await app.register(eventRoutes(deps));
    await app.register(gateRoutes(deps));
    await app.register(analyticsRoutes(deps), { prefix: "/analytics" });
    await app.register(requestRoutes(deps));
    await app.register(budgetRoutes(deps));
    await app.register(trafficRoutes(deps));
    await app.register(adminBatchRoutes(deps));
  };
