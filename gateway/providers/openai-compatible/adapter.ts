// Adapter for every upstream that speaks OpenAI's HTTP API: OpenAI itself, vLLM,
// llama.cpp's llama-server, and any OpenAI-compatible host. Azure reuses it with
// its own URLs and auth header.
import type { Agent } from "undici";
import { UpstreamError, fromNetworkError } from "../errors.ts";
import { createAgent, joinUrl, send, sendJson, sendJsonText } from "../http.ts";
import type { UpstreamBody } from "../exchange.ts";
import { Redactor } from "../redact.ts";
import { SseParser, type SseEvent } from "../sse.ts";
import { RAW_JSON, type CallContext, type ChunkBatch, type CompletionResult, type HealthResult, type LoadedModel, type ModelCard, type OpenAIBody, type OpenAIChunk, type ProviderAdapter } from "../types.ts";
import { readUsage, upstreamBody } from "./mapping.ts";

export type OpenAIPath = "chat/completions" | "completions" | "embeddings" | "models";

export interface OpenAICompatibleOptions {
  name: string;
  type: string;
  /** Base URL including the /v1 prefix, e.g. https://api.openai.com/v1 */
  baseUrl: string;
  apiKey?: string;
  extraHeaders?: Record<string, string>;
  /** Override URL building (Azure deployments). */
  urlFor?: (path: OpenAIPath, upstreamModel: string) => string;
  /** Override auth headers (Azure's api-key). */
  authHeaders?: Record<string, string>;
  /** Where the liveness probe goes (llama.cpp / vLLM /health); default GET models. */
  healthUrl?: string;
  /** Cleans upstream error text before it can reach a client (default: one that knows no configured secret). */
  redactor?: Redactor;
}

export class OpenAICompatibleAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type: string;
  private readonly opts: OpenAICompatibleOptions;
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;
  private readonly redactor: Redactor;

  constructor(opts: OpenAICompatibleOptions) {
    this.name = opts.name;
    this.type = opts.type;
    this.opts = opts;
    this.redactor = opts.redactor ?? new Redactor({ secrets: [opts.apiKey, ...Object.values(opts.authHeaders ?? {}), ...Object.values(opts.extraHeaders ?? {})] });
    this.agent = createAgent();
    this.headers = {
      ...(opts.authHeaders ?? (opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {})),
      ...opts.extraHeaders,
    };
  }

  private url(path: OpenAIPath, model: string): string {
    return this.opts.urlFor ? this.opts.urlFor(path, model) : joinUrl(this.opts.baseUrl, path);
  }

  chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.complete("chat/completions", body, ctx);
  }

  completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.complete("completions", body, ctx);
  }

  async embeddings(body: OpenAIBody, ctx: CallContext) {
    try {
      const json = await sendJson({
        url: this.url("embeddings", ctx.upstreamModel),
        headers: this.headers,
        body: { ...body, model: ctx.upstreamModel },
        signal: ctx.signal,
        dispatcher: this.agent,
      });
      return { body: json, usage: readUsage(json) };
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  /** An error as a client may see it: an UpstreamError whose text holds no secret, path or stack. */
  private clean(err: unknown, signal: AbortSignal): UpstreamError {
    return this.redactor.error(fromNetworkError(err, signal), this.name);
  }

  private async complete(path: "chat/completions" | "completions", body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    try {
      return await this.start(path, body, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  private async start(path: "chat/completions" | "completions", body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    const call = {
      url: this.url(path, ctx.upstreamModel),
      headers: stream ? { ...this.headers, accept: "text/event-stream" } : this.headers,
      body: upstreamBody(body, ctx.upstreamModel, stream),
      signal: ctx.signal,
      dispatcher: this.agent,
    };
    if (!stream) {
      const { body: json, text } = await sendJsonText(call);
      if (json.error) throw new UpstreamError("server_error", `upstream error: ${JSON.stringify(json.error).slice(0, 200)}`);
      return { kind: "json", body: json, usage: readUsage(json), raw: text };
    }
    const res = await send(call);
    const contentType = res.headers["content-type"];
    return {
      kind: "stream",
      batches: openAIBatches(res.body, ctx.signal, { contentType: Array.isArray(contentType) ? contentType[0] : contentType, redactor: this.redactor, provider: this.name }),
    };
  }

  async health(signal: AbortSignal): Promise<HealthResult> {
    const started = performance.now();
    try {
      if (this.opts.healthUrl) {
        await send({ url: this.opts.healthUrl, method: "GET", headers: this.headers, signal, dispatcher: this.agent }).then((r) => r.body.dump());
        return { ok: true, detail: "ok", latencyMs: performance.now() - started };
      }
      const models = await this.listModels(signal);
      return { ok: true, detail: "ok", latencyMs: performance.now() - started, models: models.map((m) => m.id) };
    } catch (err) {
      return { ok: false, detail: this.clean(err, signal).message, latencyMs: performance.now() - started };
    }
  }

  async listModels(signal: AbortSignal): Promise<ModelCard[]> {
    const json = await sendJson({ url: this.url("models", ""), method: "GET", headers: this.headers, signal, dispatcher: this.agent }).catch((err: unknown) => {
      throw this.clean(err, signal);
    });
    const data = Array.isArray(json.data) ? (json.data as ModelCard[]) : [];
    return data.map((m) => ({
      ...m,
      owned_by: m.owned_by ?? this.name,
      ...(typeof m.max_model_len === "number" ? { context_length: m.max_model_len } : {}),
    }));
  }

  /**
   * llama.cpp and vLLM serve the model they were started with for their whole life:
   * it is what /v1/models lists (with its size where llama.cpp gives it). Hosted
   * OpenAI-compatible services load nothing of ours.
   */
  async loadedModels(signal: AbortSignal): Promise<LoadedModel[]> {
    if (this.type !== "llamacpp" && this.type !== "vllm") return [];
    return (await this.listModels(signal)).map((m) => {
      const meta = (m as { meta?: { size?: number; n_ctx_train?: number } }).meta;
      return {
        model: m.id,
        size_bytes: typeof meta?.size === "number" ? meta.size : null,
        vram_bytes: null,
        context_length: m.context_length ?? (typeof meta?.n_ctx_train === "number" ? meta.n_ctx_train : null),
        expires_at: null,
      };
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * OpenAI SSE -> batches of chunk objects, one batch per upstream read. Chunks
 * that cannot carry usage or an error are not parsed: their JSON text rides along
 * (RAW_JSON) and is forwarded as is. An `error` payload mid-stream becomes a
 * thrown UpstreamError.
 *
 * The stream ends at `data: [DONE]`, in the same tick as the events before it, so
 * the client gets the end of its answer in the same write. The rest of the upstream
 * body (usually just the chunked-encoding terminator) goes by unread, which keeps
 * the connection reusable; aborting instead would close it.
 *
 * A body that is not an event stream (an HTML page, half a JSON body) fails with
 * `malformed` before the first batch, so the router can try elsewhere. A body that
 * ends without `[DONE]` fails with `reset` after the chunks it had, unless its
 * answer had already finished (a chunk with a finish_reason): it was cut short.
 */
export async function* openAIBatches(
  body: UpstreamBody,
  signal: AbortSignal,
  opts: { contentType?: string; redactor?: Redactor; provider?: string } = {},
): AsyncGenerator<ChunkBatch> {
  const parser = new SseParser({ requireSse: true, contentType: opts.contentType, errorField: true });
  let sawDone = false;
  let bodyEnded = false;
  // The events of the last two reads that had any: where a finish chunk (last, or before the usage chunk) would be.
  let lastEvents: SseEvent[] = NO_EVENTS;
  let earlierEvents: SseEvent[] = NO_EVENTS;
  let sawChunk = false;
  try {
    while (!sawDone && !bodyEnded) {
      const read = await body.next();
      bodyEnded = read.done === true;
      const carried = parser.hasPartialEvent;
      const events = bodyEnded ? parser.end() : parser.push(read.value);
      // Most reads carry plain token chunks: one search over the whole read says so,
      // in the bytes (native) unless an event began in an earlier read.
      const unusual = parser.unusual;
      const mayNeedParsing =
        unusual ||
        (carried || bodyEnded
          ? parser.lastText.includes('"usage"') || parser.lastText.includes('"error"')
          : read.value.indexOf(USAGE_KEY) >= 0 || read.value.indexOf(ERROR_KEY) >= 0);
      const batch: ChunkBatch = [];
      let fault: UpstreamError | undefined;
      for (const ev of events) {
        if (ev.data === "[DONE]") {
          sawDone = true;
          break;
        }
        if (ev.event === "error") {
          fault = streamError(ev.data);
          break;
        }
        try {
          // A payload spread over several data: lines holds newlines: it is re-serialised, never written raw.
          const chunk = unusual && ev.data.indexOf("\n") >= 0 ? parseChunk(ev.data) : toChunk(ev.data, mayNeedParsing);
          if (chunk) batch.push(chunk);
        } catch (err) {
          fault = err as UpstreamError;
          break;
        }
      }
      if (events.length > 0) {
        earlierEvents = lastEvents;
        lastEvents = events;
      }
      // What came before a fault in the same read still reaches the client.
      if (batch.length > 0) {
        sawChunk = true;
        yield batch;
      }
      if (fault) throw fault;
    }
    if (!sawDone && !finished(lastEvents, earlierEvents)) {
      if (signal.aborted) throw fromNetworkError(signal.reason, signal);
      throw !sawChunk
        ? new UpstreamError("malformed", "upstream's event stream ended without any event")
        : new UpstreamError("reset", "upstream's event stream ended before its end (no data: [DONE], no finish_reason): the answer was cut short");
    }
  } catch (err) {
    const e = err instanceof UpstreamError ? err : fromNetworkError(err, signal);
    throw opts.redactor ? opts.redactor.error(e, opts.provider) : e;
  } finally {
    if (bodyEnded) {
      // nothing left to release
    } else if (sawDone) body.dump();
    else body.destroy(); // the reader left early or the stream failed: drop the connection
  }
}

const NO_EVENTS: SseEvent[] = [];

/** Whether the last or the last but one payload is a chunk whose choice finished: `"finish_reason":"stop"` (not null). */
function finished(last: SseEvent[], earlier: SseEvent[]): boolean {
  const tail = last.length >= 2 ? last.slice(-2) : [...earlier.slice(-1), ...last];
  return tail.some((ev) => /"finish_reason"\s*:\s*"/.test(ev.data));
}
const USAGE_KEY = Buffer.from('"usage"');
const ERROR_KEY = Buffer.from('"error"');

function toChunk(data: string, mayNeedParsing: boolean): OpenAIChunk | undefined {
  if (data === "") return undefined;
  if (!mayNeedParsing || (!data.includes('"usage"') && !data.includes('"error"'))) {
    // Cheap shape check instead of a parse: catches cut or non-JSON payloads.
    if (data.charCodeAt(0) !== 123 /* { */ || data.charCodeAt(data.length - 1) !== 125 /* } */) throw malformed(data);
    return { [RAW_JSON]: data };
  }
  return parseChunk(data);
}

function parseChunk(data: string): OpenAIChunk {
  let chunk: OpenAIChunk;
  try {
    chunk = JSON.parse(data) as OpenAIChunk;
  } catch {
    throw malformed(data);
  }
  if (chunk === null || typeof chunk !== "object" || Array.isArray(chunk)) throw malformed(data);
  if (chunk.error !== undefined && chunk.error !== null) {
    const e = chunk.error as { message?: string };
    throw new UpstreamError("server_error", `upstream stream error: ${e?.message ?? JSON.stringify(chunk.error)}`);
  }
  return chunk;
}

/** An `error` event (llama.cpp's `error: {"code":500,"message":…}` line, or `event: error`). */
function streamError(data: string): UpstreamError {
  let message = data;
  try {
    const j = JSON.parse(data) as { message?: unknown; error?: { message?: unknown } | string };
    const m = typeof j.message === "string" ? j.message : typeof j.error === "string" ? j.error : j.error?.message;
    if (typeof m === "string") message = m;
  } catch {
    // not JSON: the text is the message
  }
  return new UpstreamError("server_error", `upstream stream error: ${message}`);
}

function malformed(data: string): UpstreamError {
  return new UpstreamError("malformed", `upstream sent invalid JSON in stream: ${data.slice(0, 120)}`);
}
