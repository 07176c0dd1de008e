// OpenAI's Batch API on the local batch queue: POST /batches, GET /batches (limit, after),
// GET /batches/:id, POST /batches/:id/cancel. The worker (gateway/batch/) does the rest.
import type { FastifyPluginAsync } from "fastify";
import { windowSeconds } from "../batch/duration.ts";
import { BATCH_ID, FILE_ID } from "../batch/ids.ts";
import { BATCH_ENDPOINTS } from "../batch/jsonl.ts";
import { resolveProfile } from "../batch/profiles.ts";
import type { BatchQueue } from "../batch/queue.ts";
import { authenticate } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { intParam, listBody } from "./files.ts";

interface CreateBody {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata?: Record<string, string> | null;
}

const createSchema = {
  body: {
    type: "object",
    required: ["input_file_id", "endpoint", "completion_window"],
    properties: {
      input_file_id: { type: "string", maxLength: 64 },
      endpoint: { type: "string", maxLength: 64 },
      completion_window: { type: "string", maxLength: 16 },
      // OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
      metadata: {
        anyOf: [{ type: "null" }, { type: "object", maxProperties: 16, propertyNames: { maxLength: 64 }, additionalProperties: { type: "string", maxLength: 512 } }],
      },
    },
  },
};

export const batchesRoutes =
  (deps: GatewayDeps, queue: BatchQueue): FastifyPluginAsync =>
  async (app) => {
    app.addHook("onRequest", async (request) => {
      authenticate(request, deps.masterKey);
    });

    app.post<{ Body: CreateBody }>("/batches", { schema: createSchema }, async (request) => {
      const tenant = authenticate(request, deps.masterKey);
      const body = request.body;
      if (!(body.endpoint in BATCH_ENDPOINTS)) {
        throw new ApiError(400, `endpoint must be one of ${Object.keys(BATCH_ENDPOINTS).join(", ")}.`, { code: "invalid_value", param: "endpoint" });
      }
      if (windowSeconds(body.completion_window) === undefined) {
        throw new ApiError(400, "completion_window must be a duration such as 24h (labgate also takes 30s, 15m, 2h, 7d).", { code: "invalid_value", param: "completion_window" });
      }
      const file = FILE_ID.test(body.input_file_id) ? queue.store.file(body.input_file_id) : undefined;
      if (!file) throw new ApiError(400, `No such File object: ${body.input_file_id}`, { code: "invalid_file", param: "input_file_id" });
      if (file.purpose !== "batch") throw new ApiError(400, `File ${file.id} has purpose '${file.purpose}', not 'batch'.`, { code: "invalid_file", param: "input_file_id" });
      const metadata = body.metadata ?? null;
      const profile = resolveProfile(metadata?.profile, deps.config.batch_profiles, body.completion_window);
      if ("unknown" in profile) {
        const known = Object.keys(deps.config.batch_profiles);
        throw new ApiError(400, `Unknown batch profile '${profile.unknown}' (configured: ${known.join(", ") || "none"}).`, { code: "invalid_value", param: "metadata.profile" });
      }
      const row = queue.create({ inputFileId: file.id, endpoint: body.endpoint, metadata, profile, tenant });
      return queue.view(row);
    });

    app.get<{ Querystring: { limit?: string; after?: string } }>("/batches", async (request) => {
      const limit = intParam(request.query.limit, "limit", 1, 100) ?? 20;
      const page = queue.store.listBatches({ after: request.query.after, limit });
      return listBody(
        page.rows.map((b) => queue.view(b)),
        page.hasMore,
      );
    });

    app.get<{ Params: { id: string } }>("/batches/:id", async (request) => queue.view(batchRow(queue, request.params.id)));

    app.post<{ Params: { id: string } }>("/batches/:id/cancel", async (request) => {
      const b = batchRow(queue, request.params.id);
      const after = queue.cancel(b.id) ?? b;
      if (after.status !== "cancelling" && after.status !== "cancelled") {
        throw new ApiError(409, `Cannot cancel a batch with status '${after.status}'.`, { code: "batch_not_cancellable" });
      }
      return queue.view(after);
    });
  };

function batchRow(queue: BatchQueue, id: string): NonNullable<ReturnType<BatchQueue["store"]["batch"]>> {
  const row = BATCH_ID.test(id) ? queue.store.batch(id) : undefined;
  if (!row) throw new ApiError(404, `No such Batch object: ${id.slice(0, 64)}`, { param: "id" });
  return row;
}
