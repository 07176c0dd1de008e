// The batch queue's rows as OpenAI's API returns them: the file object and the batch
// object (every timestamp in seconds, null until it happened), and result lines.
import type { BatchRow, FileRow, RequestCounts } from "../store/batches.ts";
import { newLineId } from "./ids.ts";

export function fileObject(f: FileRow): Record<string, unknown> {
  return {
    id: f.id,
    object: "file",
    bytes: f.bytes,
    created_at: f.created_at,
    expires_at: null,
    filename: f.filename,
    purpose: f.purpose,
    status: "processed",
    status_details: null,
  };
}

export function batchObject(b: BatchRow, counts: RequestCounts): Record<string, unknown> {
  return {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    errors: b.errors ? (JSON.parse(b.errors) as unknown) : null,
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    output_file_id: b.output_file_id,
    error_file_id: b.error_file_id,
    created_at: b.created_at,
    in_progress_at: b.in_progress_at,
    expires_at: b.expires_at,
    finalizing_at: b.finalizing_at,
    completed_at: b.completed_at,
    failed_at: b.failed_at,
    expired_at: b.expired_at,
    cancelling_at: b.cancelling_at,
    cancelled_at: b.cancelled_at,
    request_counts: counts,
    usage: {
      input_tokens: b.prompt_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: b.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: b.prompt_tokens + b.completion_tokens,
    },
    metadata: b.metadata ? (JSON.parse(b.metadata) as unknown) : null,
  };
}

/** What the live events (GET /admin/events: the dashboard, the tray) say of a batch's status. */
export function batchEvent(b: BatchRow, counts: RequestCounts): Record<string, unknown> {
  return { id: b.id, status: b.status, endpoint: b.endpoint, profile: b.profile, request_counts: counts };
}

/** A line of the output file: the upstream's answer, whatever its status. */
export function outputLine(customId: string, statusCode: number, requestId: string, body: unknown, id = newLineId()): string {
  return JSON.stringify({ id, custom_id: customId, response: { status_code: statusCode, request_id: requestId, body }, error: null });
}

/**
 * outputLine for an answer whose upstream bytes labgate forwards as they are (the JSON the
 * interactive API would send): spliced in rather than parsed and serialised again. Bytes
 * spanning lines (pretty-printed JSON) would break the JSONL, so those are serialised.
 */
export function outputLineRaw(customId: string, statusCode: number, requestId: string, body: unknown, raw: string | undefined, id = newLineId()): string {
  if (raw === undefined || raw.includes("\n") || raw.includes("\r")) return outputLine(customId, statusCode, requestId, body, id);
  return `{"id":${JSON.stringify(id)},"custom_id":${JSON.stringify(customId)},"response":{"status_code":${statusCode},"request_id":${JSON.stringify(requestId)},"body":${raw.trim()}},"error":null}`;
}

/** A line of the error file: the request got no answer (retries spent, expired, cancelled). */
export function errorLine(customId: string, code: string, message: string, id = newLineId()): string {
  return JSON.stringify({ id, custom_id: customId, response: null, error: { code, message } });
}
