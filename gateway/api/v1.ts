// The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.
// Request schemas sit next to their routes; delivery (JSON or SSE) and accounting are shared.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { UpstreamError } from "../providers/errors.ts";
import { readUsage } from "../providers/openai-compatible/mapping.ts";
import type { ChunkBatch, OpenAIBody, Operation, Usage } from "../providers/types.ts";
import { RouteFailure, type RoutedResponse, type RouteInfo } from "../router/router.ts";
import { costOf } from "../store/cost.ts";
import { uuidv7 } from "../store/ids.ts";
import type { AttemptRecord } from "../store/request-log.ts";
import { authenticate } from "./auth.ts";
import { depthExceeds, MAX_BODY_DEPTH, MAX_MESSAGES, MAX_MODEL_LENGTH } from "./body-limits.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError, errorBody } from "./errors.ts";
import { SseWriter } from "./sse-writer.ts";

const chatSchema = {
  body: {
    type: "object",
    required: ["model", "messages"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      messages: {
        type: "array",
        minItems: 1,
        maxItems: MAX_MESSAGES,
        items: { type: "object", required: ["role"], properties: { role: { type: "string", enum: ["system", "developer", "user", "assistant", "tool", "function"] } } },
      },
      stream: { type: "boolean" },
      stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
      max_tokens: { type: ["integer", "null"], minimum: 1 },
      max_completion_tokens: { type: ["integer", "null"], minimum: 1 },
      temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
      top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
      n: { type: ["integer", "null"], minimum: 1 },
      stop: { type: ["string", "array", "null"] },
      tools: { type: "array" },
    },
  },
} as const;

const completionsSchema = {
  body: {
    type: "object",
    required: ["model", "prompt"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      prompt: { type: ["string", "array"] },
      stream: { type: "boolean" },
      stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
      max_tokens: { type: ["integer", "null"], minimum: 0 },
      temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
      top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
      stop: { type: ["string", "array", "null"] },
    },
  },
} as const;

const embeddingsSchema = {
  body: {
    type: "object",
    required: ["model", "input"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      input: { type: ["string", "array"], minLength: 1, minItems: 1 },
      encoding_format: { type: "string", enum: ["float", "base64"] },
    },
  },
} as const;

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

    app.post("/chat/completions", { schema: chatSchema }, (request, reply) => handle("chat", deps, request, reply));
    app.post("/completions", { schema: completionsSchema }, (request, reply) => handle("completions", deps, request, reply));
    app.post("/embeddings", { schema: embeddingsSchema }, (request, reply) => handle("embeddings", deps, request, reply));
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

interface Accounting {
  id: string;
  ts: number;
  started: number;
  operation: Operation;
  model: string;
  stream: boolean;
  tenant: string;
}

async function handle(operation: Operation, deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = request.body as OpenAIBody;
  if (depthExceeds(body)) {
    throw new ApiError(400, `The request body is nested more than ${MAX_BODY_DEPTH} levels deep.`, { code: "body_too_deep" });
  }
  const acc: Accounting = {
    id: uuidv7(),
    ts: Date.now(),
    started: request.arrivedAt || performance.now(),
    operation,
    model: body.model,
    stream: operation !== "embeddings" && body.stream === true,
    tenant: request.tenant,
  };
  const includeUsage = acc.stream && (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true;
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
  let routed: RoutedResponse;
  try {
    routed = await deps.router.route({
      operation,
      model: acc.model,
      body,
      stream: acc.stream,
      signal: ac.signal,
      keepAliveMs,
      onEarlyCommit: (route) => {
        // A slow local model: commit to it and keep the connection warm.
        sse = startSse(reply, route, acc, deps, debug);
        sse.comment("keep-alive");
        keepAlive = setInterval(() => sse?.comment("keep-alive"), keepAliveMs);
      },
    });
  } catch (err) {
    clearInterval(keepAlive);
    failRequest(err, acc, deps, reply, ac.signal.aborted);
    return;
  }

  if (routed.kind === "json") {
    const overheadMs = performance.now() - acc.started - routed.upstreamWaitMs;
    reply.headers(routeHeaders(routed, overheadMs, acc.id, debug));
    account(deps, acc, routed, { status: 200, usage: routed.usage, ttfbMs: routed.ttfbMs, overheadMs, errorClass: null });
    // The upstream's own bytes when it spoke OpenAI already: no second serialisation.
    if (routed.raw !== undefined) reply.type("application/json; charset=utf-8").send(routed.raw);
    else reply.send(routed.body);
    return;
  }

  // Streaming.
  let first = routed.first;
  let ttfbMs = routed.ttfbMs;
  if (!sse) sse = startSse(reply, routed, acc, deps, debug);
  const overheadMs = sse.overheadMs;
  let usage: Usage | null = null;
  /** The chunks as the client should see them: usage read, and kept only when asked for. */
  const forClient = (batch: ChunkBatch): ChunkBatch => {
    let out: ChunkBatch | undefined;
    for (let i = 0; i < batch.length; i++) {
      let chunk = batch[i]!;
      // OpenAI itself puts "usage": null on every chunk once usage is asked for.
      if ("usage" in chunk) {
        usage = readUsage(chunk) ?? usage;
        if (!includeUsage) {
          out ??= batch.slice(0, i);
          if (Array.isArray(chunk.choices) && chunk.choices.length === 0) continue;
          chunk = { ...chunk };
          delete chunk.usage;
        }
      }
      out?.push(chunk);
    }
    return out ?? batch;
  };
  try {
    if (routed.firstPending) {
      const r = await routed.firstPending;
      clearInterval(keepAlive);
      ttfbMs = performance.now() - acc.started;
      first = r.done ? undefined : r.value;
    }
    if (first) await sse.data(forClient(first));
    for (;;) {
      const next = await routed.rest.next();
      if (next.done) break;
      await sse.data(forClient(next.value));
    }
    await sse.done();
    routed.finish({ usage });
    account(deps, acc, routed, { status: 200, usage, ttfbMs, overheadMs, errorClass: null });
  } catch (err) {
    clearInterval(keepAlive);
    const cancelled = ac.signal.aborted || (err instanceof UpstreamError && err.errorClass === "cancelled");
    const upstreamErr = err instanceof UpstreamError ? err : new UpstreamError("reset", err instanceof Error ? err.message : String(err));
    if (cancelled) {
      void routed.rest.return?.();
      routed.finish({ usage, cancelled: true });
      account(deps, acc, routed, { status: 499, usage, ttfbMs, overheadMs, errorClass: "cancelled" });
      sse.destroy();
    } else {
      // After the first byte there is no falling back: tell the client, never truncate silently.
      routed.finish({ usage, error: upstreamErr });
      account(deps, acc, routed, { status: upstreamErr.clientStatus, usage, ttfbMs, overheadMs, errorClass: upstreamErr.errorClass });
      await sse.error(errorBody(`The upstream failed mid-stream: ${upstreamErr.message}`, "upstream_error", upstreamErr.errorClass));
    }
  } finally {
    clearInterval(keepAlive);
    res.off("close", onClose);
  }
}

function startSse(reply: FastifyReply, route: RouteInfo, acc: Accounting, deps: GatewayDeps, debug: boolean): SseWriter {
  const overheadMs = performance.now() - acc.started - route.upstreamWaitMs;
  reply.hijack();
  return new SseWriter(reply.raw, routeHeaders(route, overheadMs, acc.id, debug), overheadMs);
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

function failRequest(err: unknown, acc: Accounting, deps: GatewayDeps, reply: FastifyReply, clientGone: boolean): void {
  const f =
    err instanceof RouteFailure
      ? err
      : new RouteFailure(500, "server_error", "Internal error in labgate.", { type: "api_error", code: "internal_error" });
  if (!(err instanceof RouteFailure)) deps.log.error({ err }, "request failed inside labgate");
  const status = clientGone ? 499 : f.status;
  logRow(deps, acc, {
    provider: f.attempts.at(-1)?.provider ?? null,
    upstreamModel: null,
    fallbackDepth: f.fallbackDepth,
    isOverflow: false,
    status,
    errorClass: clientGone ? "cancelled" : f.errorClass,
    panic: f.panic,
    usage: null,
    cost: null,
    ttfbMs: null,
    overheadMs: null,
    attempts: f.attempts,
  });
  // A model nobody serves is user input: keep it out of the metric labels.
  const model = f.errorClass === "model_not_found" ? "(unknown)" : acc.model;
  deps.metrics.child.requests(model, "none", String(status)).inc();
  if (f.panic) deps.metrics.panicRequests.inc({ model });
  if (clientGone || reply.raw.headersSent) return;
  const headers: Record<string, string> = { "x-request-id": acc.id };
  if (f.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(f.retryAfterMs / 1000)));
  if (f.attempts.length > 0) headers["x-labgate-attempts"] = JSON.stringify(f.attempts);
  reply.code(status).headers(headers).send(errorBody(f.message, f.type, f.code, f.status === 404 ? "model" : null));
}

function account(
  deps: GatewayDeps,
  acc: Accounting,
  route: RouteInfo,
  r: { status: number; usage: Usage | null; ttfbMs: number | undefined; overheadMs: number; errorClass: string | null },
): void {
  const d = route.deployment;
  const provider = d.provider.name;
  const cost = costOf(r.usage, d.price);
  logRow(deps, acc, {
    provider,
    upstreamModel: d.upstreamModel,
    fallbackDepth: route.fallbackDepth,
    isOverflow: route.isOverflow,
    status: r.status,
    errorClass: r.errorClass,
    panic: route.panic,
    usage: r.usage,
    cost,
    ttfbMs: r.ttfbMs ?? null,
    overheadMs: r.overheadMs,
    attempts: route.attempts,
  });
  const m = deps.metrics;
  m.child.requests(acc.model, provider, String(r.status)).inc();
  m.child.duration(acc.model, provider).observe((performance.now() - acc.started) / 1000);
  m.overhead.observe(Math.max(0, r.overheadMs) / 1000);
  if (r.usage) {
    m.child.tokens(provider, "prompt").inc(r.usage.prompt_tokens);
    m.child.tokens(provider, "completion").inc(r.usage.completion_tokens);
  }
  if (cost) m.child.cost(provider).inc(cost);
  if (route.panic) m.panicRequests.inc({ model: acc.model });
}

function logRow(
  deps: GatewayDeps,
  acc: Accounting,
  r: {
    provider: string | null;
    upstreamModel: string | null;
    fallbackDepth: number;
    isOverflow: boolean;
    status: number;
    errorClass: string | null;
    panic: boolean;
    usage: Usage | null;
    cost: number | null;
    ttfbMs: number | null;
    overheadMs: number | null;
    attempts: AttemptRecord[];
  },
): void {
  deps.requestLog.append({
    id: acc.id,
    ts: acc.ts,
    tenant: acc.tenant,
    operation: acc.operation,
    public_model: acc.model,
    provider: r.provider,
    upstream_model: r.upstreamModel,
    fallback_depth: r.fallbackDepth,
    is_overflow: r.isOverflow,
    panic: r.panic,
    stream: acc.stream,
    status: r.status,
    error_class: r.errorClass,
    prompt_tokens: r.usage?.prompt_tokens ?? null,
    completion_tokens: r.usage?.completion_tokens ?? null,
    cost_usd: r.cost,
    ttfb_ms: r.ttfbMs,
    total_ms: performance.now() - acc.started,
    overhead_ms: r.overheadMs,
    attempts: r.attempts,
  });
}
