// OpenAI's Files API for the batch queue: POST /files (multipart, purpose=batch; each
// JSONL line checked before the file is kept), GET /files, GET /files/:id,
// GET /files/:id/content, DELETE /files/:id. Multipart parsing is registered here only,
// inside this plugin's scope, so the JSON routes of /v1 are not touched by it.
import multipart from "@fastify/multipart";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { FileTooLarge, UploadIdle } from "../batch/file-store.ts";
import { FILE_ID, newFileId } from "../batch/ids.ts";
import { checkJsonl } from "../batch/jsonl.ts";
import type { BatchQueue } from "../batch/queue.ts";
import { fileObject } from "../batch/views.ts";
import { authenticate } from "./auth.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const MAX_LIST = 10_000;

export const filesRoutes =
  (deps: GatewayDeps, queue: BatchQueue): FastifyPluginAsync =>
  async (app) => {
    const maxBytes = Math.round(queue.config.batch.max_file_mb * 1024 * 1024);
    const totalBytes = Math.round(queue.config.batch.max_total_mb * 1024 * 1024);
    const idleMs = queue.config.batch.upload_idle_s * 1000;
    /** Bytes reserved by uploads being received now (each its limit), so that two at once cannot both fill the space left. */
    let receiving = 0;
    await app.register(multipart, {
      // One file and a few fields; the file's own size is counted (and cut off) as it is written.
      limits: { files: 1, fields: 8, fieldSize: 4096, parts: 12, fileSize: maxBytes + 1 },
      throwFileSizeLimit: true,
    });
    app.addHook("onRequest", async (request) => {
      authenticate(request, deps.masterKey);
    });

    app.post("/files", async (request, reply) => {
      const tenant = authenticate(request, deps.masterKey);
      if (!request.isMultipart()) {
        throw new ApiError(415, "Upload the file as multipart/form-data with the fields `file` and `purpose`.", { code: "unsupported_media_type" });
      }
      let purpose: string | undefined;
      let reserved = 0;
      let upload: { temp: string; bytes: number; filename: string } | undefined;
      try {
        for await (const part of request.parts()) {
          if (part.type === "file") {
            if (part.fieldname !== "file" || upload) {
              part.file.resume();
              throw new ApiError(400, "Send exactly one file, in the field `file`.", { code: "invalid_value", param: "file" });
            }
            // The space left for all stored files (batch.max_total_mb), counting uploads still being received.
            const left = totalBytes - queue.store.totalFileBytes() - receiving;
            if (left <= 0) {
              part.file.resume();
              throw storageFull(totalBytes);
            }
            const limit = Math.min(maxBytes, left);
            reserved = limit;
            receiving += reserved;
            const got = await queue.files.receive(part.file, limit, {
              idleMs: idleMs,
              tooLarge: () => (limit < maxBytes ? storageFull(totalBytes) : new FileTooLarge(maxBytes)),
            });
            upload = { ...got, filename: displayName(part.filename) };
          } else if (part.fieldname === "purpose") {
            purpose = String(part.value);
          }
        }
      } catch (err) {
        receiving -= reserved;
        reserved = 0;
        if (upload) await queue.files.discard(upload.temp);
        if (err instanceof UploadIdle) {
          // The client stopped sending: the rest of its body will not be read, so the connection is closed after this answer.
          void reply.header("connection", "close");
          throw new ApiError(408, err.message, { code: "upload_timeout", param: "file" });
        }
        throw uploadError(err, maxBytes);
      }
      receiving -= reserved;
      reserved = 0;
      if (!upload) throw new ApiError(400, "Missing required parameter: 'file'.", { code: "missing_required_parameter", param: "file" });
      try {
        if (purpose === undefined) throw new ApiError(400, "Missing required parameter: 'purpose'.", { code: "missing_required_parameter", param: "purpose" });
        if (purpose !== "batch") {
          throw new ApiError(400, `labgate keeps files for its batch queue only: purpose must be 'batch', not '${purpose.slice(0, 40)}'.`, { code: "invalid_value", param: "purpose" });
        }
        const report = await checkJsonl(upload.temp, { maxLines: queue.config.batch.max_requests, maxLineBytes: queue.config.batch.max_line_kb * 1024 });
        if (report.problemCount > 0) {
          const more = report.problemCount > report.problems.length ? ` (and ${report.problemCount - report.problems.length} more)` : "";
          const s = report.problemCount === 1 ? "" : "s";
          throw new ApiError(400, `The batch file has ${report.problemCount} invalid line${s}: ${report.problems.map((p) => p.message).join(" ")}${more}`, {
            code: "invalid_batch_file",
            param: "file",
          });
        }
        const id = newFileId();
        await queue.files.commit(upload.temp, id);
        const row = { id, purpose, filename: upload.filename, bytes: upload.bytes, lines: report.lines, created_at: Math.floor(Date.now() / 1000), tenant };
        queue.store.insertFile(row);
        return reply.send(fileObject(row));
      } finally {
        await queue.files.discard(upload.temp);
      }
    });

    app.get<{ Querystring: { purpose?: string; limit?: string; after?: string; order?: string } }>("/files", async (request) => {
      const q = request.query;
      const limit = intParam(q.limit, "limit", 1, MAX_LIST) ?? MAX_LIST;
      const order = q.order === undefined ? "desc" : q.order;
      if (order !== "asc" && order !== "desc") throw new ApiError(400, "order must be 'asc' or 'desc'.", { code: "invalid_value", param: "order" });
      const page = queue.store.listFiles({ purpose: q.purpose, after: q.after, limit, order });
      return listBody(page.rows.map(fileObject), page.hasMore);
    });

    app.get<{ Params: { id: string } }>("/files/:id", async (request) => fileObject(fileRow(queue, request)));

    app.get<{ Params: { id: string } }>("/files/:id/content", async (request, reply) => {
      const f = fileRow(queue, request);
      return reply.type("application/octet-stream").header("content-length", String(f.bytes)).send(queue.files.read(f.id));
    });

    app.delete<{ Params: { id: string } }>("/files/:id", async (request) => {
      const f = fileRow(queue, request);
      queue.store.deleteFile(f.id);
      await queue.files.remove(f.id);
      return { id: f.id, object: "file", deleted: true };
    });
  };

/** The file a request names; 404 for anything that is not one of labgate's ids (checked before any path is built). */
function fileRow(queue: BatchQueue, request: FastifyRequest<{ Params: { id: string } }>): NonNullable<ReturnType<BatchQueue["store"]["file"]>> {
  const id = request.params.id;
  const row = FILE_ID.test(id) ? queue.store.file(id) : undefined;
  if (!row) throw new ApiError(404, `No such File object: ${id.slice(0, 64)}`, { param: "id" });
  return row;
}

export function listBody(data: Record<string, unknown>[], hasMore: boolean): Record<string, unknown> {
  return { object: "list", data, first_id: (data[0]?.id as string | undefined) ?? null, last_id: (data.at(-1)?.id as string | undefined) ?? null, has_more: hasMore };
}

export function intParam(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ApiError(400, `${name} must be an integer from ${min} to ${max}.`, { code: "invalid_value", param: name });
  return n;
}

/** The uploaded file's name, for display only (never a path): its last segment, without control characters. */
function displayName(name: string | undefined): string {
  const last = (name ?? "").split(/[/\\]/).at(-1) ?? "";
  const clean = last.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, 255);
  return clean === "" ? "upload.jsonl" : clean;
}

/** 413: stored files would exceed batch.max_total_mb. */
function storageFull(totalBytes: number): ApiError {
  return new ApiError(413, `Stored batch files would exceed ${Math.round(totalBytes / 1048576)} MB (batch.max_total_mb): delete files (DELETE /v1/files/{id}) first.`, {
    code: "storage_limit_exceeded",
    param: "file",
  });
}

function uploadError(err: unknown, maxBytes: number): unknown {
  if (err instanceof ApiError) return err;
  const code = (err as { code?: string }).code;
  if (err instanceof FileTooLarge || code === "FST_REQ_FILE_TOO_LARGE") {
    return new ApiError(413, `The file is larger than ${Math.round(maxBytes / 1048576)} MB (batch.max_file_mb).`, { code: "file_too_large", param: "file" });
  }
  if (code === "FST_PARTS_LIMIT" || code === "FST_FILES_LIMIT" || code === "FST_FIELDS_LIMIT") {
    return new ApiError(413, "Too many parts in the upload: send one file and its purpose.", { code: "request_too_large" });
  }
  if (code === "FST_MP_PREMATURE_CLOSE" || code === "FST_PROTO_VIOLATION") return new ApiError(400, "The multipart upload is malformed or was cut short.", { code: "invalid_multipart" });
  return err;
}
