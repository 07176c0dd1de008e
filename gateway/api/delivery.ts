// Delivers a completion over HTTP: JSON, or an SSE stream with keep-alive comments,
// back-pressure and an error event when the upstream fails mid-stream. It only
// translates between HTTP and the completion service, which records the outcome.
import type { FastifyReply, FastifyRequest } from "fastify";
import { CompletionFailure, type StartedStream, type StreamCompletion } from "../completion/service.ts";
import { UpstreamError } from "../providers/errors.ts";
import { readUsage } from "../providers/openai-compatible/mapping.ts";
import type { ChunkBatch, OpenAIBody, Operation, Usage } from "../providers/types.ts";
import type { RouteInfo } from "../router/router.ts";
import { depthExceeds, MAX_BODY_DEPTH, MAX_TENANT_LENGTH } from "./body-limits.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError, errorBody, routeFailureError } from "./errors.ts";
import { SseWriter } from "./sse-writer.ts";

export async function deliver(operation: Operation, deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = request.body as OpenAIBody;
  if (depthExceeds(body)) {
    throw new ApiError(400, `The request body is nested more than ${MAX_BODY_DEPTH} levels deep.`, { code: "body_too_deep" });
  }
  const stream = operation !== "embeddings" && body.stream === true;
  const includeUsage = stream && (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true;
  const debug = request.headers["x-debug-mode"] === "true";

  // A client that goes away cancels the upstream request.
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = (): void => {
    if (!res.writableFinished) ac.abort();
  };
  res.once("close", onClose);

  let sse: SseWriter | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  const keepAliveMs = deps.config.server.sse_keepalive_s * 1000;
  try {
    const completion = await deps.completions.complete({
      operation,
      body,
      stream,
      tenant: tenantOf(request, body),
      signal: ac.signal,
      arrivedAt: request.arrivedAt || undefined,
      keepAliveMs,
      onEarlyCommit: (started) => {
        // A slow local model: commit to it and keep the connection warm.
        sse = startSse(reply, started, debug);
        sse.comment("keep-alive");
        keepAlive = setInterval(() => sse?.comment("keep-alive"), keepAliveMs);
      },
    });
    if (completion.kind === "json") {
      reply.headers(routeHeaders(completion.route, completion.overheadMs, completion.id, debug));
      // The upstream's own bytes when it spoke OpenAI already: no second serialisation.
      if (completion.raw !== undefined) reply.type("application/json; charset=utf-8").send(completion.raw);
      else reply.send(completion.body);
      return;
    }
    sse ??= startSse(reply, completion, debug);
    await pipeStream(completion, sse, includeUsage, ac.signal, () => clearInterval(keepAlive));
  } catch (err) {
    clearInterval(keepAlive);
    if (!(err instanceof CompletionFailure)) throw err;
    if (ac.signal.aborted || reply.raw.headersSent) return;
    const f = err.failure;
    const headers: Record<string, string> = { "x-request-id": err.id };
    if (f.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(f.retryAfterMs / 1000)));
    if (f.attempts.length > 0) headers["x-labgate-attempts"] = JSON.stringify(f.attempts);
    const e = routeFailureError(f, err.status);
    reply.code(err.status).headers(headers).send(errorBody(e.message, e.type, e.code, e.param));
  } finally {
    clearInterval(keepAlive);
    res.off("close", onClose);
  }
}

async function pipeStream(completion: StreamCompletion, sse: SseWriter, includeUsage: boolean, signal: AbortSignal, stopKeepAlive: () => void): Promise<void> {
  const read: { usage: Usage | null } = { usage: null };
  try {
    let first = completion.first;
    if (completion.firstPending) {
      const r = await completion.firstPending;
      stopKeepAlive();
      first = r.done ? undefined : r.value;
    }
    if (first) await sse.data(forClient(first, includeUsage, read));
    for (;;) {
      const next = await completion.rest.next();
      if (next.done) break;
      await sse.data(forClient(next.value, includeUsage, read));
    }
    await sse.done();
    completion.end({ usage: read.usage });
  } catch (err) {
    stopKeepAlive();
    const cancelled = signal.aborted || (err instanceof UpstreamError && err.errorClass === "cancelled");
    if (cancelled) {
      completion.end({ usage: read.usage, cancelled: true });
      sse.destroy();
      return;
    }
    // After the first byte there is no falling back: tell the client, never truncate silently.
    const upstreamErr = err instanceof UpstreamError ? err : new UpstreamError("reset", err instanceof Error ? err.message : String(err));
    completion.end({ usage: read.usage, error: upstreamErr });
    await sse.error(errorBody(`The upstream failed mid-stream: ${upstreamErr.message}`, "upstream_error", upstreamErr.errorClass));
  }
}

/**
 * The chunks as the client should see them, their usage noted in `read` on the way:
 * usage kept only when asked for (OpenAI puts "usage": null on every chunk then).
 */
function forClient(batch: ChunkBatch, includeUsage: boolean, read: { usage: Usage | null }): ChunkBatch {
  let out: ChunkBatch | undefined;
  for (let i = 0; i < batch.length; i++) {
    let chunk = batch[i]!;
    if ("usage" in chunk) {
      read.usage = readUsage(chunk) ?? read.usage;
      if (includeUsage) continue;
      out ??= batch.slice(0, i);
      if (Array.isArray(chunk.choices) && chunk.choices.length === 0) continue;
      chunk = { ...chunk };
      delete chunk.usage;
    }
    out?.push(chunk);
  }
  return out ?? batch;
}

/** Who the request is for: an X-Labgate-Tenant header, then OpenAI's `user` field, then the key's owner. */
function tenantOf(request: FastifyRequest, body: OpenAIBody): string {
  const header = request.headers["x-labgate-tenant"];
  if (typeof header === "string" && header !== "") return header.slice(0, MAX_TENANT_LENGTH);
  if (typeof body.user === "string" && body.user !== "") return body.user.slice(0, MAX_TENANT_LENGTH);
  return request.tenant;
}

function startSse(reply: FastifyReply, started: StartedStream, debug: boolean): SseWriter {
  reply.hijack();
  return new SseWriter(reply.raw, routeHeaders(started.route, started.overheadMs, started.id, debug), started.overheadMs);
}

function routeHeaders(route: RouteInfo, overheadMs: number, requestId: string, debug: boolean): Record<string, string> {
  const h: Record<string, string> = {
    "x-routed-provider": route.deployment.provider.name,
    "x-is-fallback": String(route.isFallback),
    "x-labgate-overhead-ms": Math.max(0, overheadMs).toFixed(3),
    "x-request-id": requestId,
  };
  if (debug) h["x-labgate-attempts"] = JSON.stringify(route.attempts);
  return h;
}
