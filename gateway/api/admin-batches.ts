// The batch queue for the dashboard (the admin key): GET /admin/batches (limit, after),
// GET /admin/batches/:id and POST /admin/batches/:id/cancel, every tenant's batches, in
// the shapes of OpenAI's Batch API (/v1/batches, which needs the master key). Registered
// inside the admin plugin, whose check covers it.
// The same BatchQueue as /v1/batches: a cancel here wakes the worker and tells the live
// events exactly as one there does.
import type { FastifyPluginAsync } from "fastify";
import { BATCH_ID } from "../batch/ids.ts";
import type { BatchRow } from "../store/batches.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { intParam, listBody } from "./files.ts";

export const adminBatchRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    const queue = deps.batches;
    const view = (b: BatchRow): Record<string, unknown> => queue.view(b);
    const row = (id: string): BatchRow => {
      const b = BATCH_ID.test(id) ? queue.store.batch(id) : undefined;
      if (!b) throw new ApiError(404, `No such Batch object: ${id.slice(0, 64)}`, { param: "id" });
      return b;
    };

    app.get<{ Querystring: { limit?: string; after?: string } }>("/batches", async (request) => {
      const limit = intParam(request.query.limit, "limit", 1, 100) ?? 20;
      const page = queue.store.listBatches({ after: request.query.after, limit });
      return listBody(page.rows.map(view), page.hasMore);
    });

    app.get<{ Params: { id: string } }>("/batches/:id", async (request) => view(row(request.params.id)));

    app.post<{ Params: { id: string } }>("/batches/:id/cancel", async (request) => {
      const b = row(request.params.id);
      const after = queue.cancel(b.id) ?? b;
      if (after.status !== "cancelling" && after.status !== "cancelled") {
        throw new ApiError(409, `Cannot cancel a batch with status '${after.status}'.`, { code: "batch_not_cancellable" });
      }
      return view(after);
    });
  };
