// GET /admin/lab/servers: the inference servers found on the lab's machines, what
// they were classified as and why, and the provider that serves each.
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";

export const labServerRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/servers", async () => ({
      object: "list",
      data: deps.servers.snapshot().map((s) => {
        const p = s.provider ? deps.registry.get(s.provider) : undefined;
        return { ...s, healthy: s.answering && (p ? (deps.registry.lastHealth(p.name)?.ok ?? true) : true), models: s.provider ? deps.router.modelsOf(s.provider) : [] };
      }),
    }));
  };
