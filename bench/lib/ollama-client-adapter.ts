// The Ollama adapter's chat path as it was before the switch to the undici exchange
// (gateway/providers/ollama/adapter.ts at d446a67): the `ollama` npm client built per
// request around undici's fetch, each NDJSON line checked and re-encoded by
// guardNdjson for the client's parser. Kept only so bench/ollama-path.ts can measure
// it against the adapter as it is now; nothing in gateway/ imports it.
//
// Its original header:
// | Adapter for Ollama's native API (/api/chat, /api/generate, /api/embed, /api/tags,
// | /api/version) through the `ollama` npm client. It translates; it never routes,
// | retries or logs.
// |
// | The client is built per request around a fetch that (1) goes through this
// | provider's own undici pool, (2) carries the call's AbortSignal (the client passes
// | no signal for non-streaming calls and only its own for streams), and (3) for
// | streams, checks each NDJSON line before the client parses it, because the client
// | drops malformed lines with a console warning and turns `{"error": …}` lines and
// | truncated streams into plain Errors that cannot be told from each other.
import { randomBytes } from "node:crypto";
import { Ollama, type AbortableAsyncIterator, type ChatResponse, type Fetch, type GenerateResponse } from "ollama";
import { fetch as undiciFetch, type Agent, type RequestInit as UndiciRequestInit } from "undici";
import { UpstreamError, classifyHttpError, fromNetworkError, parseRetryAfter } from "../../gateway/providers/errors.ts";
import { createAgent } from "../../gateway/providers/http.ts";
import { Redactor } from "../../gateway/providers/redact.ts";
import type { CallContext, ChunkBatch, CompletionResult, HealthResult, LoadedModel, ModelCard, OpenAIBody, OpenAIChunk, ProviderAdapter, Usage } from "../../gateway/providers/types.ts";
import {
  ChatStreamMapper,
  CompletionStreamMapper,
  toChatCompletion,
  toEmbeddingList,
  toModelCards,
  toOllamaChatRequest,
  toOllamaEmbedRequest,
  toOllamaGenerateRequest,
  toTextCompletion,
  type ResponseMeta,
} from "../../gateway/providers/ollama/mapping.ts";

export interface OllamaOptions {
  name: string;
  /** http://127.0.0.1:11434 */
  baseUrl: string;
  extraHeaders?: Record<string, string>;
  /** Cleans upstream error text before it can reach a client (default: one that knows only this provider's header values). */
  redactor?: Redactor;
}

/** What one request's fetch learned that the client does not keep. */
interface CallState {
  retryAfterMs?: number;
}

function randomId(prefix: string): string {
  return prefix + randomBytes(12).toString("hex");
}

/** The server root: trailing slashes and an /api or /v1 suffix are not part of Ollama's host. */
export function ollamaHost(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, "").replace(/\/(api|v1)$/, "");
}

export class OllamaAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type = "ollama";
  private readonly host: string;
  private readonly headers: Record<string, string>;
  private readonly agent: Agent;
  private readonly redactor: Redactor;

  constructor(opts: OllamaOptions) {
    this.name = opts.name;
    this.redactor = opts.redactor ?? new Redactor({ secrets: Object.values(opts.extraHeaders ?? {}) });
    this.host = ollamaHost(opts.baseUrl);
    this.headers = { ...opts.extraHeaders };
    this.agent = createAgent();
  }

  /** A client whose every request carries `signal` and goes through this provider's pool. */
  private client(signal: AbortSignal, state: CallState, guardStream = false): Ollama {
    const agent = this.agent;
    const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const signals = init?.signal ? [init.signal, signal] : [signal];
      const res = await undiciFetch(String(input), {
        ...(init as UndiciRequestInit),
        signal: signals.length === 1 ? signal : AbortSignal.any(signals),
        dispatcher: agent,
      });
      if (!res.ok) {
        state.retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        return res as unknown as Response;
      }
      if (!guardStream || !res.body) return res as unknown as Response;
      const guarded = guardNdjson(res.body as unknown as ReadableStream<Uint8Array>);
      return new Response(guarded, { status: res.status, statusText: res.statusText, headers: res.headers as unknown as Headers });
    };
    return new Ollama({ host: this.host, headers: this.headers, fetch: fetchFn as Fetch });
  }

  private meta(prefix: string, upstreamModel: string): ResponseMeta {
    return { id: randomId(prefix), created: Math.floor(Date.now() / 1000), model: upstreamModel, newToolCallId: () => randomId("call_") };
  }

  /** An error as a client may see it: an UpstreamError whose text holds no secret, path or stack. */
  private clean(err: unknown, signal: AbortSignal): UpstreamError {
    return this.redactor.error(toUpstreamError(err, signal), this.name);
  }

  async chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    try {
      return await this.chatCall(body, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  async completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    try {
      return await this.completionsCall(body, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  async embeddings(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }> {
    try {
      return await this.embeddingsCall(body, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  private async chatCall(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    const request = toOllamaChatRequest(body, ctx.upstreamModel, stream);
    const meta = this.meta("chatcmpl-", ctx.upstreamModel);
    const state: CallState = {};
    const client = this.client(ctx.signal, state, stream);
    if (!stream) {
      const res = await guard(ctx.signal, state, () => client.chat({ ...request, stream: false }));
      checkBody(res);
      return { kind: "json", ...toChatCompletion(res, meta) };
    }
    const upstream = await guard(ctx.signal, state, () => client.chat({ ...request, stream: true }));
    const mapper = new ChatStreamMapper(meta);
    return { kind: "stream", batches: mapStream(upstream, (m) => mapper.push(m), ctx.signal, (e) => this.redactor.error(e, this.name)) };
  }

  private async completionsCall(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    const request = toOllamaGenerateRequest(body, ctx.upstreamModel, stream);
    const meta = this.meta("cmpl-", ctx.upstreamModel);
    const state: CallState = {};
    const client = this.client(ctx.signal, state, stream);
    if (!stream) {
      const res = await guard(ctx.signal, state, () => client.generate({ ...request, stream: false }));
      checkBody(res);
      return { kind: "json", ...toTextCompletion(res, meta) };
    }
    const upstream = await guard(ctx.signal, state, () => client.generate({ ...request, stream: true }));
    const mapper = new CompletionStreamMapper(meta);
    return { kind: "stream", batches: mapStream(upstream, (m) => mapper.push(m), ctx.signal, (e) => this.redactor.error(e, this.name)) };
  }

  private async embeddingsCall(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }> {
    const request = toOllamaEmbedRequest(body, ctx.upstreamModel);
    const state: CallState = {};
    const client = this.client(ctx.signal, state);
    const res = await guard(ctx.signal, state, () => client.embed(request));
    checkBody(res);
    if (!Array.isArray(res.embeddings)) throw new UpstreamError("malformed", "Ollama /api/embed answered without embeddings");
    return toEmbeddingList(res, ctx.upstreamModel, body.encoding_format);
  }

  async health(signal: AbortSignal): Promise<HealthResult> {
    const started = performance.now();
    const state: CallState = {};
    const client = this.client(signal, state);
    try {
      const { version } = await guard(signal, state, () => client.version());
      let models: string[] | undefined;
      try {
        models = toModelCards((await client.list()).models).map((m) => m.id);
      } catch {
        // liveness is the version answer; the model list is a bonus
      }
      return { ok: true, detail: `ollama ${version ?? "(unknown version)"}`, latencyMs: performance.now() - started, ...(models ? { models } : {}) };
    } catch (err) {
      return { ok: false, detail: this.clean(err, signal).message, latencyMs: performance.now() - started };
    }
  }

  async listModels(signal: AbortSignal): Promise<ModelCard[]> {
    const state: CallState = {};
    const client = this.client(signal, state);
    const res = await guard(signal, state, () => client.list()).catch((err: unknown) => {
      throw this.clean(err, signal);
    });
    return toModelCards(res.models);
  }

  /** Ollama's /api/ps: the models in memory, their size and VRAM share, and when keep_alive unloads them. */
  async loadedModels(signal: AbortSignal): Promise<LoadedModel[]> {
    const state: CallState = {};
    const res = await guard(signal, state, () => this.client(signal, state).ps());
    return (res.models ?? []).map((m) => {
      const x = m as unknown as { name: string; model?: string; size?: number; size_vram?: number; expires_at?: string | Date; context_length?: number };
      // Ollama writes local time with an offset and nanoseconds; one form (UTC, ISO 8601) for every provider.
      const at = x.expires_at === undefined ? NaN : new Date(x.expires_at).getTime();
      const expires = Number.isFinite(at) ? new Date(at).toISOString() : null;
      return { model: x.name ?? x.model ?? "", size_bytes: x.size ?? null, vram_bytes: x.size_vram ?? null, context_length: x.context_length ?? null, expires_at: expires };
    });
  }

  /** Ollama unloads a model when asked to generate nothing with keep_alive 0. */
  async unloadModel(model: string, signal: AbortSignal): Promise<boolean> {
    const loaded = await this.loadedModels(signal);
    if (!loaded.some((m) => m.model === model || m.model === `${model}:latest`)) return false;
    const state: CallState = {};
    await guard(signal, state, () => this.client(signal, state).generate({ model, prompt: "", keep_alive: 0, stream: false }));
    return true;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

export function createOllamaAdapter(opts: OllamaOptions): ProviderAdapter {
  return new OllamaAdapter(opts);
}

// ---------------------------------------------------------------------------

/** Runs one client call and turns whatever it throws into an UpstreamError. */
async function guard<T>(signal: AbortSignal, state: CallState, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toUpstreamError(err, signal, state);
  }
}

function toUpstreamError(err: unknown, signal: AbortSignal, state: CallState = {}): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (signal.aborted) return fromNetworkError(err, signal);
  const re = err as { name?: unknown; status_code?: unknown; error?: unknown; message?: unknown };
  if (err instanceof Error && re.name === "ResponseError" && typeof re.status_code === "number") {
    const status = re.status_code;
    const message = typeof re.error === "string" && re.error !== "" ? re.error : `HTTP ${status}`;
    return new UpstreamError(classifyHttpError(status, message), `Ollama answered ${status}: ${message}`, {
      upstreamStatus: status,
      retryAfterMs: state.retryAfterMs,
      cause: err,
    });
  }
  if (err instanceof SyntaxError) return new UpstreamError("malformed", `Ollama sent invalid JSON: ${err.message}`, { cause: err });
  return fromNetworkError(err, signal);
}

/** A 200 answer that is Ollama's error object (or not an object at all). */
function checkBody(res: unknown): void {
  if (res === null || typeof res !== "object" || Array.isArray(res)) throw new UpstreamError("malformed", "Ollama answered something that is not a JSON object");
  const e = (res as { error?: unknown }).error;
  if (e !== undefined) throw new UpstreamError("server_error", `Ollama error: ${typeof e === "string" ? e : JSON.stringify(e)}`);
}

/**
 * Maps the client's stream object by object, as they arrive: the chunks of one
 * Ollama object make one batch. Leaving early (the consumer stops, or an error)
 * aborts the upstream request.
 */
async function* mapStream<T extends object>(
  upstream: AbortableAsyncIterator<T>,
  map: (msg: T) => OpenAIChunk[],
  signal: AbortSignal,
  clean: (err: UpstreamError) => UpstreamError = (e) => e,
): AsyncGenerator<ChunkBatch> {
  try {
    for await (const msg of upstream) {
      let chunks: OpenAIChunk[];
      try {
        chunks = map(msg);
      } catch (err) {
        throw new UpstreamError("malformed", `Ollama sent an unexpected stream object: ${(err as Error).message}`);
      }
      if (chunks.length > 0) yield chunks;
    }
  } catch (err) {
    throw clean(toUpstreamError(err, signal));
  } finally {
    // After `done` the body is complete and this is a no-op; otherwise it closes the connection.
    upstream.abort();
  }
}

/**
 * Passes an NDJSON body through line by line, each line as soon as it is complete
 * and only when the reader asks for it (back-pressure is kept). The stream fails with
 * the right error class on a malformed line, on an `{"error": …}` line (Ollama keeps
 * HTTP 200 for errors after the first byte) and on an end without `done`, and only
 * once every line before the fault has been read: an errored stream drops what is
 * still queued, so the fault must not be raised ahead of the reader.
 */
export function guardNdjson(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const lines: string[] = [];
  let buffer = "";
  let sawDone = false;
  let ended = false;

  /** The line to pass on, or undefined for a blank line; throws on a fault. */
  const check = (line: string): Uint8Array | undefined => {
    const text = line.trim();
    if (text === "") return undefined;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new UpstreamError("malformed", `Ollama sent an invalid NDJSON line: ${text.slice(0, 120)}`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      throw new UpstreamError("malformed", `Ollama sent a stream line that is not an object: ${text.slice(0, 120)}`);
    }
    const error = (obj as { error?: unknown }).error;
    if (error !== undefined) {
      throw new UpstreamError("server_error", `Ollama stream error: ${typeof error === "string" ? error : JSON.stringify(error)}`);
    }
    if ((obj as { done?: unknown }).done === true) sawDone = true;
    return encoder.encode(text + "\n");
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            const line = lines.shift();
            if (line !== undefined) {
              const out = check(line);
              if (out) {
                controller.enqueue(out);
                return;
              }
              continue;
            }
            if (ended) {
              if (!sawDone) throw new UpstreamError("reset", "Ollama's stream ended before its final (done) object");
              controller.close();
              return;
            }
            const { value, done } = await reader.read();
            if (done) {
              ended = true;
              buffer += decoder.decode();
              if (buffer !== "") lines.push(buffer);
              buffer = "";
              continue;
            }
            buffer += decoder.decode(value, { stream: true });
            const parts = buffer.split("\n");
            buffer = parts.pop() ?? "";
            lines.push(...parts);
          }
        } catch (err) {
          reader.cancel(err).catch(() => {});
          throw err;
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
