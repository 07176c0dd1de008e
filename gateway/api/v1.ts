// The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.
// Schemas in v1-schemas.ts; delivery (JSON or SSE) in delivery.ts; what happened to
// each request is the completion service's to record.
import type { FastifyPluginAsync } from "fastify";
import { authenticate } from "./auth.ts";
import { deliver } from "./delivery.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { chatSchema, completionsSchema, embeddingsSchema } from "./v1-schemas.ts";

declare module "fastify" {
  interface FastifyRequest {
    tenant: string;
    /** performance.now() when the request reached labgate (for the overhead figure). */
    arrivedAt: number;
  }
}

export const v1Routes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.decorateRequest("tenant", "anonymous");
    app.decorateRequest("arrivedAt", 0);
    app.addHook("onRequest", async (request) => {
      request.arrivedAt = performance.now();
      request.tenant = authenticate(request, deps.masterKey);
    });

    app.get("/models", async () => ({ object: "list", data: listModels(deps) }));
    app.get<{ Params: { model: string } }>("/models/*", async (request) => {
      const id = (request.params as Record<string, string>)["*"] ?? "";
      const card = listModels(deps).find((m) => m.id === id);
      if (!card) throw new ApiError(404, `The model \`${id}\` does not exist.`, { code: "model_not_found", param: "model" });
      return card;
    });

    app.post("/chat/completions", { schema: chatSchema }, (request, reply) => deliver("chat", deps, request, reply));
    app.post("/completions", { schema: completionsSchema }, (request, reply) => deliver("completions", deps, request, reply));
    app.post("/embeddings", { schema: embeddingsSchema }, (request, reply) => deliver("embeddings", deps, request, reply));
  };

interface ModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  [detail: string]: unknown;
}

/** Configured groups are labgate's; discovered models keep what their provider says of them. */
function listModels(deps: GatewayDeps): ModelEntry[] {
  const created = Math.floor(deps.startedAt / 1000);
  return deps.router.listGroups().map((g) => {
    if (!g.discovered) return { id: g.name, object: "model", created, owned_by: "labgate" };
    const { id: _id, object: _object, ...details }: Record<string, unknown> = g.card ?? {};
    return {
      ...details,
      id: g.name,
      object: "model",
      created: typeof details.created === "number" ? details.created : created,
      owned_by: typeof details.owned_by === "string" ? details.owned_by : (g.deployments[0]?.provider.type ?? "labgate"),
    };
  });
}

