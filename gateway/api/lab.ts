// The lab's hardware under /admin/lab: GET /admin/lab/gpus, the GPUs and their last
// figures as the GPU monitor read them in the background (nothing runs per request).
// Registered inside the /admin plugin (admin.ts), whose onRequest hook is its admin check.
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";

export const labRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    // nvidia_smi: how its last reading went, so an empty list can say why.
    app.get("/gpus", async () => ({ object: "list", data: deps.monitor.snapshot(), nvidia_smi: deps.monitor.nvidiaSmiStatus() }));
  };
