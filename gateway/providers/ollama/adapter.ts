// Adapter for Ollama's native API (/api/chat, /api/generate, /api/embed, /api/tags,
// /api/version, /api/ps). It translates; it never routes, retries or logs.
//
// The answers (chat, generate, embed) go over this provider's undici pool through
// the same exchange as the other HTTP adapters (providers/exchange.ts), and streams
// are read as NDJSON straight off it (ndjson.ts): measured against the `ollama` npm
// client (a client per request, web streams, every line re-encoded for its parser),
// the exchange takes about a quarter of the CPU per streamed chat (bench/ollama-path.ts).
//
// The client stays for the management calls (version, tags, ps, unload): built per
// call around a fetch that goes through the same pool and carries the call's
// AbortSignal (the client passes none for non-streaming calls).
import { Ollama, type ChatResponse, type EmbedResponse, type Fetch, type GenerateResponse } from "ollama";
import { fetch as undiciFetch, type Agent, type RequestInit as UndiciRequestInit } from "undici";
import { UpstreamError, classifyHttpError, fromNetworkError, parseRetryAfter } from "../errors.ts";
import { exchange, type UpstreamBody, type UpstreamResponse } from "../exchange.ts";
import { createAgent, upstreamErrorMessage } from "../http.ts";
import { Redactor } from "../redact.ts";
import { IdSource } from "../../store/ids.ts";
import type { CallContext, CompletionResult, HealthResult, LoadedModel, ModelCard, OpenAIBody, ProviderAdapter, Usage } from "../types.ts";
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
} from "./mapping.ts";
import { ndjsonBatches } from "./ndjson.ts";

export interface OllamaOptions {
  name: string;
  /** http://127.0.0.1:11434 */
  baseUrl: string;
  extraHeaders?: Record<string, string>;
  /** Cleans upstream error text before it can reach a client (default: one that knows only this provider's header values). */
  redactor?: Redactor;
  /** Where response and tool-call ids come from: the gateway's one id source (default: this adapter's own). */
  ids?: IdSource;
}

/** What one request's fetch learned that the client does not keep. */
interface CallState {
  retryAfterMs?: number;
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
  /** For chat, generate and embed: JSON in and out, the provider's headers (but not over these two). */
  private readonly postHeaders: Record<string, string>;
  private readonly agent: Agent;
  private readonly redactor: Redactor;
  private readonly ids: IdSource;

  constructor(opts: OllamaOptions) {
    this.name = opts.name;
    this.ids = opts.ids ?? new IdSource();
    this.redactor = opts.redactor ?? new Redactor({ secrets: Object.values(opts.extraHeaders ?? {}) });
    this.host = ollamaHost(opts.baseUrl);
    this.headers = { ...opts.extraHeaders };
    const own = Object.entries(this.headers).filter(([k]) => !/^(content-type|accept)$/i.test(k));
    this.postHeaders = { "content-type": "application/json", accept: "application/json", ...Object.fromEntries(own) };
    this.agent = createAgent();
  }

  /** A client (management calls) whose every request carries `signal` and goes through this provider's pool. */
  private client(signal: AbortSignal, state: CallState): Ollama {
    const agent = this.agent;
    const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const signals = init?.signal ? [init.signal, signal] : [signal];
      const res = await undiciFetch(String(input), {
        ...(init as UndiciRequestInit),
        signal: signals.length === 1 ? signal : AbortSignal.any(signals),
        dispatcher: agent,
      });
      if (!res.ok) state.retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
      return res as unknown as Response;
    };
    return new Ollama({ host: this.host, headers: this.headers, fetch: fetchFn as Fetch });
  }

  /** POSTs `request` as JSON; resolves with the body of a 2xx answer, throws an UpstreamError for any other. */
  private async post(path: string, request: object, signal: AbortSignal): Promise<UpstreamBody> {
    const payload = JSON.stringify(request);
    let res: UpstreamResponse;
    try {
      res = await exchange({ url: this.host + path, method: "POST", headers: this.postHeaders, body: payload, signal, dispatcher: this.agent });
    } catch (err) {
      throw fromNetworkError(err, signal);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res.body;
    let text = "";
    try {
      text = await res.body.text();
    } catch {
      // the body is only for the message
    }
    const status = res.statusCode;
    const message = upstreamErrorMessage(text) || `HTTP ${status}`;
    throw new UpstreamError(classifyHttpError(status, message), `Ollama answered ${status}: ${message}`, {
      upstreamStatus: status,
      retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
    });
  }

  /** POSTs `request` and parses the whole answer, which must be a JSON object that is not Ollama's error. */
  private async postJson<T>(path: string, request: object, signal: AbortSignal): Promise<T> {
    const body = await this.post(path, request, signal);
    let text: string;
    try {
      text = await body.text();
    } catch (err) {
      throw fromNetworkError(err, signal);
    }
    let res: unknown;
    try {
      res = JSON.parse(text);
    } catch (err) {
      throw new UpstreamError("malformed", `Ollama sent invalid JSON: ${(err as Error).message}`, { cause: err });
    }
    checkBody(res);
    return res as T;
  }

  private meta(prefix: string, upstreamModel: string): ResponseMeta {
    return { id: this.randomId(prefix), created: Math.floor(Date.now() / 1000), model: upstreamModel, newToolCallId: () => this.randomId("call_") };
  }

  /** prefix and 24 hex digits (12 random bytes). */
  private randomId(prefix: string): string {
    return prefix + this.ids.token(12, "hex");
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
    if (!stream) {
      const res = await this.postJson<ChatResponse>("/api/chat", request, ctx.signal);
      return { kind: "json", ...toChatCompletion(res, meta) };
    }
    const upstream = await this.post("/api/chat", request, ctx.signal);
    const mapper = new ChatStreamMapper(meta);
    return { kind: "stream", batches: ndjsonBatches(upstream, (m) => mapper.push(m as unknown as ChatResponse), ctx.signal, (e) => this.redactor.error(e, this.name)) };
  }

  private async completionsCall(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    const request = toOllamaGenerateRequest(body, ctx.upstreamModel, stream);
    const meta = this.meta("cmpl-", ctx.upstreamModel);
    if (!stream) {
      const res = await this.postJson<GenerateResponse>("/api/generate", request, ctx.signal);
      return { kind: "json", ...toTextCompletion(res, meta) };
    }
    const upstream = await this.post("/api/generate", request, ctx.signal);
    const mapper = new CompletionStreamMapper(meta);
    return { kind: "stream", batches: ndjsonBatches(upstream, (m) => mapper.push(m as unknown as GenerateResponse), ctx.signal, (e) => this.redactor.error(e, this.name)) };
  }

  private async embeddingsCall(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }> {
    const request = toOllamaEmbedRequest(body, ctx.upstreamModel);
    const res = await this.postJson<EmbedResponse>("/api/embed", request, ctx.signal);
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
