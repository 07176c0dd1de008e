// Adapter for Anthropic's Messages API (POST /v1/messages, anthropic-version 2023-06-01),
// spoken over HTTP with undici. Translates OpenAI chat / completions requests into
// Messages requests and the answers (JSON or event stream) back into OpenAI shapes.
// Like every adapter it translates only: no routing, retries or logging.
import type { Agent } from "undici";
import { UpstreamError, fromNetworkError } from "../errors.ts";
import { createAgent, joinUrl, send, sendJson } from "../http.ts";
import { Redactor } from "../redact.ts";
import { parseSseBatches, type SseEvent } from "../sse.ts";
import type { CallContext, ChunkBatch, CompletionResult, HealthResult, ModelCard, OpenAIBody, OpenAIChunk, ProviderAdapter } from "../types.ts";
import {
  ANTHROPIC_VERSION,
  completionToMessagesRequest,
  createStreamTranslator,
  toChatCompletion,
  toMessagesRequest,
  toModelCards,
  toTextCompletion,
} from "./mapping.ts";

export interface AnthropicOptions {
  name: string;
  /** https://api.anthropic.com (no /v1) */
  baseUrl: string;
  apiKey: string;
  extraHeaders?: Record<string, string>;
  /** Cleans upstream error text before it can reach a client (default: one that knows only this provider's key). */
  redactor?: Redactor;
}

export function createAnthropicAdapter(opts: AnthropicOptions): ProviderAdapter {
  return new AnthropicAdapter(opts);
}

/** Anthropic's 402 billing_error means the account cannot pay: a provider problem, not the request's. */
function reclassify(err: unknown): never {
  if (err instanceof UpstreamError && err.upstreamStatus === 402) {
    throw new UpstreamError("auth", err.message, { upstreamStatus: 402, retryAfterMs: err.retryAfterMs, cause: err });
  }
  throw err;
}

class AnthropicAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type = "anthropic";
  private readonly baseUrl: string;
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;
  private readonly redactor: Redactor;

  constructor(opts: AnthropicOptions) {
    this.name = opts.name;
    this.redactor = opts.redactor ?? new Redactor({ secrets: [opts.apiKey, ...Object.values(opts.extraHeaders ?? {})] });
    this.baseUrl = opts.baseUrl;
    this.agent = createAgent();
    this.headers = {
      "x-api-key": opts.apiKey,
      "anthropic-version": ANTHROPIC_VERSION,
      ...opts.extraHeaders,
    };
  }

  // async: a request Anthropic cannot take rejects the promise rather than throwing synchronously.
  async chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    return this.messages(toMessagesRequest(body, ctx.upstreamModel, stream), "chat", stream, ctx);
  }

  async completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    const stream = body.stream === true;
    return this.messages(completionToMessagesRequest(body, ctx.upstreamModel, stream), "text", stream, ctx);
  }

  async embeddings(): Promise<never> {
    throw new UpstreamError("bad_request", "anthropic provides no embeddings");
  }

  /** An error as a client may see it: an UpstreamError whose text holds no secret, path or stack. */
  private clean(err: unknown, signal: AbortSignal): UpstreamError {
    return this.redactor.error(err instanceof UpstreamError ? err : fromNetworkError(err, signal), this.name);
  }

  private async messages(request: Record<string, unknown>, kind: "chat" | "text", stream: boolean, ctx: CallContext): Promise<CompletionResult> {
    try {
      return await this.exchangeMessages(request, kind, stream, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  private async exchangeMessages(request: Record<string, unknown>, kind: "chat" | "text", stream: boolean, ctx: CallContext): Promise<CompletionResult> {
    const call = {
      url: joinUrl(this.baseUrl, "/v1/messages"),
      headers: stream ? { ...this.headers, accept: "text/event-stream" } : this.headers,
      body: request,
      signal: ctx.signal,
      dispatcher: this.agent,
    };
    if (!stream) {
      const json = await sendJson(call).catch(reclassify);
      const { body, usage } = kind === "chat" ? toChatCompletion(json) : toTextCompletion(json);
      return { kind: "json", body, usage };
    }
    const res = await send(call).catch(reclassify);
    const contentType = res.headers["content-type"];
    return {
      kind: "stream",
      batches: anthropicBatches(res.body, kind, ctx.signal, { contentType: Array.isArray(contentType) ? contentType[0] : contentType, redactor: this.redactor, provider: this.name }),
    };
  }

  async health(signal: AbortSignal): Promise<HealthResult> {
    const started = performance.now();
    try {
      const json = await sendJson({ url: joinUrl(this.baseUrl, "/v1/models?limit=1000"), method: "GET", headers: this.headers, signal, dispatcher: this.agent });
      return { ok: true, detail: "ok", latencyMs: performance.now() - started, models: toModelCards(json).map((m) => m.id) };
    } catch (err) {
      return { ok: false, detail: this.clean(err, signal).message, latencyMs: performance.now() - started };
    }
  }

  async listModels(signal: AbortSignal): Promise<ModelCard[]> {
    try {
      return await this.modelPages(signal);
    } catch (err) {
      throw this.clean(err, signal);
    }
  }

  private async modelPages(signal: AbortSignal): Promise<ModelCard[]> {
    const cards: ModelCard[] = [];
    let after: string | undefined;
    // Pages of up to 1000 (the API's maximum); a handful of pages is every model Anthropic has.
    for (let page = 0; page < 20; page++) {
      const query = `limit=1000${after ? `&after_id=${encodeURIComponent(after)}` : ""}`;
      const json = await sendJson({ url: joinUrl(this.baseUrl, `/v1/models?${query}`), method: "GET", headers: this.headers, signal, dispatcher: this.agent });
      cards.push(...toModelCards(json));
      if (json.has_more !== true || typeof json.last_id !== "string" || json.last_id === after) break;
      after = json.last_id;
    }
    return cards;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * Anthropic event stream -> OpenAI chunks, one batch per upstream read.
 * An `error` event, a dropped connection or a stream that ends before its
 * `message_stop` is thrown as an UpstreamError, and a body that is not an event
 * stream as `malformed` before the first batch; the upstream body is released on
 * every way out (including the consumer stopping early).
 */
export async function* anthropicBatches(
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void },
  kind: "chat" | "text",
  signal: AbortSignal,
  opts: { contentType?: string; redactor?: Redactor; provider?: string } = {},
): AsyncGenerator<ChunkBatch> {
  const translator = createStreamTranslator(kind);
  let complete = false;
  try {
    for await (const events of parseSseBatches(body, { requireSse: true, contentType: opts.contentType })) {
      const batch: ChunkBatch = [];
      let fault: unknown;
      for (const ev of events) {
        // After message_stop, read on to the body's end rather than breaking out:
        // leaving early aborts the exchange, and the keep-alive connection is lost.
        if (translator.stopped || ev.data === "") continue;
        try {
          batch.push(...translateEvent(translator, ev));
        } catch (err) {
          fault = err;
          break;
        }
      }
      // What came before a fault in the same read still reaches the client.
      if (batch.length > 0) yield batch;
      if (fault !== undefined) throw fault;
    }
    if (signal.aborted) throw fromNetworkError(signal.reason, signal);
    const last = translator.end();
    if (last.length > 0) yield last;
    complete = true;
  } catch (err) {
    const e = err instanceof UpstreamError ? err : fromNetworkError(err, signal);
    throw opts.redactor ? opts.redactor.error(e, opts.provider) : e;
  } finally {
    if (!complete) body.destroy?.();
  }
}

function translateEvent(translator: ReturnType<typeof createStreamTranslator>, ev: SseEvent): OpenAIChunk[] {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(ev.data) as Record<string, unknown>;
  } catch {
    throw new UpstreamError("malformed", `upstream sent invalid JSON in stream: ${ev.data.slice(0, 120)}`);
  }
  const type = ev.event ?? (typeof data.type === "string" ? data.type : "");
  return translator.push(type, data);
}
