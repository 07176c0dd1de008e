// Adapter for Anthropic's Messages API (POST /v1/messages, anthropic-version 2023-06-01),
// spoken over HTTP with undici. Translates OpenAI chat / completions requests into
// Messages requests and the answers (JSON or event stream) back into OpenAI shapes.
// Like every adapter it translates only: no routing, retries or logging.
// Here only the I/O: request.ts builds the request body, response.ts reads a whole
// answer, stream.ts an event stream, errors.ts Anthropic's errors; wire.ts types them.
import type { Agent } from "undici";
import { UpstreamError, fromNetworkError } from "../errors.ts";
import { createAgent, joinUrl, send, sendJson } from "../http.ts";
import { Redactor } from "../redact.ts";
import type { CallContext, CompletionResult, HealthResult, ModelCard, OpenAIBody, ProviderAdapter } from "../types.ts";
import { reclassifyBilling } from "./errors.ts";
import { completionToMessagesRequest, toMessagesRequest } from "./request.ts";
import { toChatCompletion, toModelCards, toTextCompletion } from "./response.ts";
import { anthropicBatches } from "./stream.ts";
import { ANTHROPIC_VERSION, type AnthropicMessagesRequest } from "./wire.ts";

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

  private async messages(request: AnthropicMessagesRequest, kind: "chat" | "text", stream: boolean, ctx: CallContext): Promise<CompletionResult> {
    try {
      return await this.exchangeMessages(request, kind, stream, ctx);
    } catch (err) {
      throw this.clean(err, ctx.signal);
    }
  }

  private async exchangeMessages(request: AnthropicMessagesRequest, kind: "chat" | "text", stream: boolean, ctx: CallContext): Promise<CompletionResult> {
    const call = {
      url: joinUrl(this.baseUrl, "/v1/messages"),
      headers: stream ? { ...this.headers, accept: "text/event-stream" } : this.headers,
      body: request,
      signal: ctx.signal,
      dispatcher: this.agent,
    };
    if (!stream) {
      const json = await sendJson(call).catch(reclassifyBilling);
      const { body, usage } = kind === "chat" ? toChatCompletion(json) : toTextCompletion(json);
      return { kind: "json", body, usage };
    }
    const res = await send(call).catch(reclassifyBilling);
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
