// GET /admin/lab/models: what is loaded where and what it takes (the embedded
// engine, Ollama's /api/ps, llama.cpp and vLLM's one model).
// POST /admin/lab/models/:name/unload frees it (embedded: unload; Ollama: keep_alive 0).
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const PROBE_MS = 3000;

export const labModelRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/models", async () => {
      const providers = deps.registry.list().filter((p) => p.adapter?.loadedModels && !p.unavailableReason);
      const results = await Promise.all(
        providers.map(async (p) => {
          try {
            const models = await p.adapter!.loadedModels!(AbortSignal.timeout(PROBE_MS));
            return { models: models.map((m) => ({ provider: p.name, type: p.type, can_unload: p.adapter!.unloadModel !== undefined, ...m })) };
          } catch (err) {
            return { error: { provider: p.name, message: (err as Error).message } };
          }
        }),
      );
      return {
        object: "list",
        data: results.flatMap((r) => r.models ?? []),
        errors: results.flatMap((r) => (r.error ? [r.error] : [])),
      };
    });

    app.post<{ Params: { name: string }; Querystring: { provider?: string } }>("/models/:name/unload", async (request) => {
      const model = request.params.name;
      const only = request.query.provider;
      if (only !== undefined) {
        const p = deps.registry.get(only);
        if (!p) throw new ApiError(404, `No provider named \`${only}\`.`, { code: "provider_not_found" });
        if (!p.adapter?.unloadModel) {
          throw new ApiError(409, `${p.name} (${p.type}) cannot unload a model: it serves the model it was started with; stop its process to free the memory.`, {
            code: "unload_not_supported",
          });
        }
      }
      const candidates = deps.registry.list().filter((p) => p.adapter?.unloadModel && !p.unavailableReason && (only === undefined || p.name === only));
      const unloaded: string[] = [];
      const errors: { provider: string; message: string }[] = [];
      await Promise.all(
        candidates.map(async (p) => {
          try {
            if (await p.adapter!.unloadModel!(model, AbortSignal.timeout(30_000))) unloaded.push(p.name);
          } catch (err) {
            // A provider that does not know the model is no error when another one unloads it.
            errors.push({ provider: p.name, message: (err as Error).message });
          }
        }),
      );
      if (unloaded.length === 0 && only !== undefined && errors.length > 0) {
        // The one server asked failed to free it: its reason, not "not loaded". (Asked everywhere,
        // a server that does not know the model may fail too, so there "not loaded" stands.)
        throw new ApiError(502, `Unloading \`${model}\` failed on ${errors.map((e) => `${e.provider}: ${e.message}`).join("; ")}`, { code: "unload_failed", param: "name" });
      }
      if (unloaded.length === 0) {
        throw new ApiError(404, `Model \`${model}\` is not loaded${only ? ` on ${only}` : " anywhere labgate can unload it"}.`, { code: "model_not_loaded", param: "name" });
      }
      for (const provider of unloaded) deps.events.publish("model", { change: "unloaded", provider, model });
      deps.log.info({ model, providers: unloaded }, "model unloaded");
      return { model, unloaded: unloaded.sort() };
    });
  };
