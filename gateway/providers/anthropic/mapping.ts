// Pure translation between OpenAI shapes and Anthropic's Messages API
// (https://docs.anthropic.com/en/api/messages, anthropic-version 2023-06-01).
// No I/O here: the adapter sends, this module only reshapes.
import { UpstreamError, classifyHttpError } from "../errors.ts";
import type { ModelCard, OpenAIBody, OpenAIChunk, Usage } from "../types.ts";
import { badRequest, isRecord, parseToolArguments } from "../mapping-helpers.ts";

type Json = Record<string, unknown>;

export const ANTHROPIC_VERSION = "2023-06-01";
/** Anthropic requires max_tokens; used when the client sent none. */
export const DEFAULT_MAX_TOKENS = 4096;

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

export interface AnthropicMessage {
  role: "user" | "assistant";
  content: string | Json[];
}



/** The text of an OpenAI content value (string or parts), for places that only take text (system). */
function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (isRecord(p) && typeof p.text === "string" ? p.text : ""))
      .filter((t) => t !== "")
      .join("\n");
  }
  return "";
}

/** `data:<media>;base64,<data>` or an http(s) URL -> an Anthropic source object. */
export function sourceFromUrl(url: string): Json {
  const m = /^data:([^;,]+)((?:;[^;,]+)*),(.*)$/s.exec(url);
  if (m) {
    const mediaType = m[1];
    const isBase64 = m[2].split(";").includes("base64");
    const data = isBase64 ? m[3] : Buffer.from(decodeURIComponent(m[3]), "utf8").toString("base64");
    return { type: "base64", media_type: mediaType, data };
  }
  if (/^https?:\/\//i.test(url)) return { type: "url", url };
  throw badRequest(`unsupported image URL for anthropic (need data: or http(s):): ${url.slice(0, 40)}`);
}

/** OpenAI message content (string or parts) -> Anthropic content blocks. Empty text is dropped (Anthropic rejects it). */
export function contentBlocks(content: unknown): Json[] {
  if (content == null) return [];
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw badRequest("message content must be a string or an array of parts");
  const out: Json[] = [];
  for (const part of content) {
    if (typeof part === "string") {
      if (part !== "") out.push({ type: "text", text: part });
      continue;
    }
    if (!isRecord(part)) throw badRequest("message content parts must be objects");
    switch (part.type) {
      case "text":
      case "input_text":
        if (typeof part.text === "string" && part.text !== "") out.push({ type: "text", text: part.text });
        break;
      case "refusal":
        if (typeof part.refusal === "string" && part.refusal !== "") out.push({ type: "text", text: part.refusal });
        break;
      case "image_url": {
        const iu = part.image_url;
        const url = typeof iu === "string" ? iu : isRecord(iu) && typeof iu.url === "string" ? iu.url : undefined;
        if (!url) throw badRequest("image_url part without a url");
        out.push({ type: "image", source: sourceFromUrl(url) });
        break;
      }
      case "file": {
        const f = isRecord(part.file) ? part.file : {};
        if (typeof f.file_data !== "string") throw badRequest("file parts need file_data (a data: URL) for anthropic");
        out.push({ type: "document", source: sourceFromUrl(f.file_data) });
        break;
      }
      default:
        throw badRequest(`unsupported content part for anthropic: ${String(part.type)}`);
    }
  }
  return out;
}


function toolResultBlock(m: Json): Json {
  const id = m.tool_call_id;
  if (typeof id !== "string" || id === "") throw badRequest("tool message without tool_call_id");
  const block: Json = { type: "tool_result", tool_use_id: id };
  if (typeof m.content === "string") {
    if (m.content !== "") block.content = m.content;
  } else if (m.content != null) {
    const blocks = contentBlocks(m.content);
    if (blocks.length > 0) block.content = blocks;
  }
  return block;
}

/**
 * OpenAI messages -> Anthropic `system` + strictly alternating `messages`.
 * System (and developer) messages are pulled out and joined; tool results become
 * user tool_result blocks; consecutive same-role messages are merged.
 */
export function toAnthropicMessages(messages: unknown): { system: string | undefined; messages: AnthropicMessage[] } {
  if (!Array.isArray(messages)) throw badRequest("messages must be an array");
  const system: string[] = [];
  const merged: { role: "user" | "assistant"; blocks: Json[] }[] = [];
  for (const raw of messages) {
    if (!isRecord(raw)) throw badRequest("each message must be an object");
    const role = raw.role;
    let target: "user" | "assistant";
    let blocks: Json[];
    if (role === "system" || role === "developer") {
      const t = textOf(raw.content);
      if (t !== "") system.push(t);
      continue;
    } else if (role === "user") {
      target = "user";
      blocks = contentBlocks(raw.content);
    } else if (role === "assistant") {
      target = "assistant";
      blocks = contentBlocks(raw.content);
      const calls = Array.isArray(raw.tool_calls) ? raw.tool_calls : [];
      for (const c of calls) {
        if (!isRecord(c) || !isRecord(c.function)) throw badRequest("assistant tool_calls entries need a function");
        const name = String(c.function.name ?? "");
        blocks.push({ type: "tool_use", id: String(c.id ?? ""), name, input: parseToolArguments(c.function.arguments, name) });
      }
    } else if (role === "tool") {
      target = "user";
      blocks = [toolResultBlock(raw)];
    } else if (role === "function") {
      // Legacy function results carry no call id; the best Anthropic can take is text.
      target = "user";
      blocks = contentBlocks(raw.content);
    } else {
      throw badRequest(`unsupported message role for anthropic: ${String(role)}`);
    }
    if (blocks.length === 0) continue;
    const last = merged[merged.length - 1];
    if (last && last.role === target) last.blocks.push(...blocks);
    else merged.push({ role: target, blocks });
  }
  return {
    system: system.length > 0 ? system.join("\n\n") : undefined,
    messages: merged.map((m) => ({
      role: m.role,
      // A lone text block travels as a plain string, like a hand-written request.
      content: m.blocks.length === 1 && m.blocks[0].type === "text" ? (m.blocks[0].text as string) : m.blocks,
    })),
  };
}

/** OpenAI tools (function tools, or legacy `functions`) -> Anthropic tools. */
export function toAnthropicTools(body: OpenAIBody): Json[] | undefined {
  const out: Json[] = [];
  const fromFn = (fn: unknown) => {
    if (!isRecord(fn) || typeof fn.name !== "string") throw badRequest("function tools need a name");
    const tool: Json = { name: fn.name };
    if (typeof fn.description === "string") tool.description = fn.description;
    tool.input_schema = isRecord(fn.parameters) ? fn.parameters : { type: "object", properties: {} };
    out.push(tool);
  };
  if (Array.isArray(body.tools)) {
    for (const t of body.tools) {
      if (!isRecord(t) || (t.type !== undefined && t.type !== "function")) {
        throw badRequest(`unsupported tool type for anthropic: ${isRecord(t) ? String(t.type) : typeof t}`);
      }
      fromFn(t.function);
    }
  } else if (Array.isArray(body.functions)) {
    for (const f of body.functions) fromFn(f);
  }
  return out.length > 0 ? out : undefined;
}

/** OpenAI tool_choice (+ parallel_tool_calls) -> Anthropic tool_choice. */
export function toAnthropicToolChoice(body: OpenAIBody): Json | undefined {
  const choice = body.tool_choice ?? body.function_call;
  let out: Json | undefined;
  if (choice === "auto") out = { type: "auto" };
  else if (choice === "none") out = { type: "none" };
  else if (choice === "required" || choice === "any") out = { type: "any" };
  else if (isRecord(choice)) {
    const fn = isRecord(choice.function) ? choice.function : choice; // {type:"function",function:{name}} or legacy {name}
    if (typeof fn.name !== "string") throw badRequest("tool_choice names no function");
    out = { type: "tool", name: fn.name };
  } else if (choice !== undefined && choice !== null) {
    throw badRequest(`unsupported tool_choice: ${String(choice)}`);
  }
  if (body.parallel_tool_calls === false) {
    out ??= { type: "auto" };
    if (out.type !== "none") out.disable_parallel_tool_use = true;
  }
  return out;
}

function maxTokens(body: OpenAIBody): number {
  const v = body.max_completion_tokens ?? body.max_tokens;
  if (v == null) return DEFAULT_MAX_TOKENS;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw badRequest("max_tokens must be a positive integer");
  return v;
}

/** The sampling and bookkeeping parameters shared by chat and completions. */
function commonParams(body: OpenAIBody, out: Json): void {
  out.max_tokens = maxTokens(body);
  if (typeof body.temperature === "number") out.temperature = Math.min(1, Math.max(0, body.temperature)); // OpenAI 0..2, Anthropic 0..1
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  if (typeof body.top_k === "number") out.top_k = body.top_k;
  if (typeof body.stop === "string") out.stop_sequences = [body.stop];
  else if (Array.isArray(body.stop) && body.stop.length > 0) out.stop_sequences = body.stop.filter((s) => typeof s === "string");
  if (typeof body.user === "string" && body.user !== "") out.metadata = { user_id: body.user };
}

/** An OpenAI chat.completions body -> an Anthropic POST /v1/messages body. */
export function toMessagesRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): Json {
  const { system, messages } = toAnthropicMessages(body.messages);
  const out: Json = { model: upstreamModel, messages };
  if (system !== undefined) out.system = system;
  commonParams(body, out);
  const tools = toAnthropicTools(body);
  if (tools) {
    out.tools = tools;
    const choice = toAnthropicToolChoice(body);
    if (choice) out.tool_choice = choice;
  }
  if (stream) out.stream = true;
  return out;
}

/** An OpenAI /v1/completions body -> a Messages body with the prompt as the single user message. */
export function completionToMessagesRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): Json {
  let prompt = body.prompt;
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1 || typeof prompt[0] !== "string") {
      throw badRequest("anthropic takes exactly one text prompt per completions request");
    }
    prompt = prompt[0];
  }
  if (typeof prompt !== "string" || prompt === "") throw badRequest("prompt must be a non-empty string");
  const out: Json = { model: upstreamModel, messages: [{ role: "user", content: prompt }] };
  commonParams(body, out);
  if (stream) out.stream = true;
  return out;
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/** Anthropic usage -> OpenAI usage. Cache reads and writes are input tokens too. */
export function readAnthropicUsage(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const prompt = n(u.input_tokens) + n(u.cache_creation_input_tokens) + n(u.cache_read_input_tokens);
  const completion = n(u.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function finishReason(stopReason: unknown): string {
  switch (stopReason) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "refusal":
      return "content_filter";
    default: // end_turn, stop_sequence, pause_turn
      return "stop";
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function assertMessage(msg: Json): Json[] {
  if (msg.type === "error") throw anthropicError(msg.error);
  if (!Array.isArray(msg.content)) throw new UpstreamError("malformed", "upstream answer is not an Anthropic message (no content array)");
  return msg.content.filter(isRecord);
}

/** The text blocks of a message, joined. */
function joinedText(blocks: Json[]): string {
  return blocks
    .filter((b) => b.type === "text" && typeof b.text === "string")
    .map((b) => b.text as string)
    .join("");
}

/** An Anthropic Message -> OpenAI chat.completion. */
export function toChatCompletion(msg: Json): { body: Json; usage: Usage | null } {
  const blocks = assertMessage(msg);
  const text = joinedText(blocks);
  const toolCalls = blocks
    .filter((b) => b.type === "tool_use")
    .map((b) => ({ id: String(b.id ?? ""), type: "function", function: { name: String(b.name ?? ""), arguments: JSON.stringify(b.input ?? {}) } }));
  const message: Json = { role: "assistant", content: text === "" && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const usage = readAnthropicUsage(msg.usage);
  const body: Json = {
    id: String(msg.id ?? ""),
    object: "chat.completion",
    created: nowSeconds(),
    model: String(msg.model ?? ""),
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(msg.stop_reason) }],
  };
  if (usage) body.usage = usage;
  return { body, usage };
}

/** An Anthropic Message -> OpenAI text_completion. */
export function toTextCompletion(msg: Json): { body: Json; usage: Usage | null } {
  const blocks = assertMessage(msg);
  const text = joinedText(blocks);
  const usage = readAnthropicUsage(msg.usage);
  const body: Json = {
    id: String(msg.id ?? ""),
    object: "text_completion",
    created: nowSeconds(),
    model: String(msg.model ?? ""),
    choices: [{ text, index: 0, logprobs: null, finish_reason: finishReason(msg.stop_reason) }],
  };
  if (usage) body.usage = usage;
  return { body, usage };
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** The HTTP status Anthropic uses for each error type (https://docs.anthropic.com/en/api/errors). */
const STATUS_BY_ERROR_TYPE: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/** An Anthropic `error` object (from an `error` stream event or a 200 error body) -> UpstreamError. */
export function anthropicError(error: unknown): UpstreamError {
  const e = isRecord(error) ? error : {};
  const type = typeof e.type === "string" ? e.type : "api_error";
  const message = typeof e.message === "string" ? e.message : type;
  const status = STATUS_BY_ERROR_TYPE[type] ?? 500;
  const cls = type === "billing_error" ? "auth" : classifyHttpError(status, message);
  return new UpstreamError(cls, `anthropic ${type}: ${message}`, { upstreamStatus: status });
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

export interface StreamTranslator {
  /** Translates one Anthropic event; returns the OpenAI chunks to send now. Throws UpstreamError on an `error` event. */
  push(type: string, data: Json): OpenAIChunk[];
  /** Whether message_stop arrived (nothing more will come). */
  readonly stopped: boolean;
  /** Call when the upstream body ended: the closing chunks, or throws when the answer is incomplete. */
  end(): OpenAIChunk[];
}

/**
 * Anthropic event stream -> OpenAI chunks (`chat.completion.chunk` or `text_completion`).
 * Always ends with a usage chunk (`choices: []`), whether the client asked for it or not.
 */
export function createStreamTranslator(kind: "chat" | "text"): StreamTranslator {
  const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  let id = "";
  let model = "";
  const created = nowSeconds();
  let started = false;
  let stopped = false;
  let finish: string | undefined;
  let usageSent = false;
  let usageIn: Json = {};
  let outputTokens = 0;
  const toolIndexByBlock = new Map<number, number>();

  const chunk = (choice: Json | undefined, extra?: Json): OpenAIChunk => ({
    id,
    object,
    created,
    model,
    choices: choice ? [choice] : [],
    ...extra,
  });
  const chatChoice = (delta: Json, finishReason: string | null = null): Json => ({ index: 0, delta, logprobs: null, finish_reason: finishReason });
  const textChoice = (text: string, finishReason: string | null = null): Json => ({ text, index: 0, logprobs: null, finish_reason: finishReason });
  const usageChunk = (): OpenAIChunk => {
    usageSent = true;
    const u = readAnthropicUsage({ ...usageIn, output_tokens: outputTokens }) as Usage;
    return chunk(undefined, { usage: u });
  };
  const mergeUsage = (u: unknown) => {
    if (!isRecord(u)) return;
    for (const k of ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]) {
      if (typeof u[k] === "number") usageIn[k] = u[k];
    }
    if (typeof u.output_tokens === "number") outputTokens = u.output_tokens; // cumulative per the docs
  };

  return {
    get stopped() {
      return stopped;
    },
    push(type, data) {
      switch (type) {
        case "message_start": {
          const m = isRecord(data.message) ? data.message : {};
          id = String(m.id ?? id);
          model = String(m.model ?? model);
          usageIn = {};
          mergeUsage(m.usage);
          started = true;
          return kind === "chat" ? [chunk(chatChoice({ role: "assistant", content: "" }))] : [];
        }
        case "content_block_start": {
          const b = isRecord(data.content_block) ? data.content_block : {};
          const index = typeof data.index === "number" ? data.index : -1;
          if (b.type === "tool_use" && kind === "chat") {
            const toolIndex = toolIndexByBlock.size;
            toolIndexByBlock.set(index, toolIndex);
            return [
              chunk(
                chatChoice({
                  tool_calls: [{ index: toolIndex, id: String(b.id ?? ""), type: "function", function: { name: String(b.name ?? ""), arguments: "" } }],
                }),
              ),
            ];
          }
          if (b.type === "text" && typeof b.text === "string" && b.text !== "") {
            return [chunk(kind === "chat" ? chatChoice({ content: b.text }) : textChoice(b.text))];
          }
          return [];
        }
        case "content_block_delta": {
          const d = isRecord(data.delta) ? data.delta : {};
          if (d.type === "text_delta" && typeof d.text === "string" && d.text !== "") {
            return [chunk(kind === "chat" ? chatChoice({ content: d.text }) : textChoice(d.text))];
          }
          if (d.type === "input_json_delta" && typeof d.partial_json === "string" && d.partial_json !== "") {
            const toolIndex = toolIndexByBlock.get(typeof data.index === "number" ? data.index : -1);
            if (toolIndex === undefined) return [];
            return [chunk(chatChoice({ tool_calls: [{ index: toolIndex, function: { arguments: d.partial_json } }] }))];
          }
          return []; // thinking_delta, signature_delta, citations_delta: nothing OpenAI-shaped to say
        }
        case "message_delta": {
          mergeUsage(data.usage);
          const d = isRecord(data.delta) ? data.delta : {};
          if (d.stop_reason != null && finish === undefined) {
            finish = finishReason(d.stop_reason);
            return [chunk(kind === "chat" ? chatChoice({}, finish) : textChoice("", finish))];
          }
          return [];
        }
        case "message_stop":
          stopped = true;
          return usageSent ? [] : [usageChunk()];
        case "error":
          throw anthropicError(data.error);
        default: // ping, content_block_stop, and event types added later
          return [];
      }
    },
    end() {
      if (!started) throw new UpstreamError("malformed", "upstream sent no Anthropic event stream (no message_start)");
      // message_stop is the end marker: without it the answer may be cut short, whatever came before.
      if (!stopped) throw new UpstreamError("reset", "upstream stream ended before the answer was complete (no message_stop)");
      return usageSent ? [] : [usageChunk()];
    },
  };
}

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

/** One page of GET /v1/models -> ModelCards. */
export function toModelCards(json: Json): ModelCard[] {
  const data = Array.isArray(json.data) ? json.data.filter(isRecord) : [];
  return data
    .filter((m) => typeof m.id === "string")
    .map((m) => {
      const card: ModelCard = { id: m.id as string, owned_by: "anthropic" };
      const t = typeof m.created_at === "string" ? Date.parse(m.created_at) : NaN;
      if (Number.isFinite(t)) card.created = Math.floor(t / 1000);
      if (typeof m.display_name === "string") card.display_name = m.display_name;
      if (typeof m.max_input_tokens === "number") card.context_length = m.max_input_tokens;
      return card;
    });
}
