// Pure mapping between labgate's OpenAI-shaped requests/answers and Ollama's native
// API (/api/chat, /api/generate, /api/embed, /api/tags). No I/O here: ids and clocks
// come in through `ResponseMeta`, so every function is deterministic under test.
import type {
  ChatRequest,
  ChatResponse,
  EmbedRequest,
  EmbedResponse,
  GenerateRequest,
  GenerateResponse,
  Message,
  ModelResponse,
  Options,
  Tool,
  ToolCall,
} from "ollama";
import type { Json, ModelCard, OpenAIBody, OpenAIChunk, Usage } from "../types.ts";
import { badRequest, embeddingToBase64, isRecord, parseToolArguments } from "../mapping-helpers.ts";
import { chatChunk, chatCompletion, textChunk, textCompletion, usageChunk, type EnvelopeMeta } from "../openai-envelopes.ts";

/** What the adapter fixes per request: the id and clock of the answer, and the upstream model. */
export interface ResponseMeta extends EnvelopeMeta {
  /** `chatcmpl-…` for chat, `cmpl-…` for completions. */
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  /** Makes an id for a tool call Ollama gave none (`call_…`). */
  newToolCallId: () => string;
}


function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}


// ---------------------------------------------------------------------------
// OpenAI request -> Ollama request

/**
 * Sampling parameters -> Ollama `options`. Server-side knobs (num_ctx, num_gpu,
 * keep_alive, …) are the operator's, not the API client's: they are not passed through.
 */
export function toOllamaOptions(body: OpenAIBody): Partial<Options> {
  const out: Json = {};
  const maxTokens = num(body.max_completion_tokens) ?? num(body.max_tokens);
  if (maxTokens !== undefined) out.num_predict = maxTokens;
  for (const key of ["temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "top_k", "min_p"] as const) {
    const v = num(body[key]);
    if (v !== undefined) out[key] = v;
  }
  const stop = body.stop;
  if (typeof stop === "string") out.stop = [stop];
  else if (Array.isArray(stop)) {
    const list = stop.filter((s): s is string => typeof s === "string");
    if (list.length > 0) out.stop = list;
  }
  return out as Partial<Options>;
}

/** response_format -> Ollama `format`: json_object -> "json", json_schema -> the schema itself. */
export function toOllamaFormat(responseFormat: unknown): string | object | undefined {
  if (!isRecord(responseFormat)) return undefined;
  if (responseFormat.type === "json_object") return "json";
  if (responseFormat.type === "json_schema") {
    const js = responseFormat.json_schema;
    return isRecord(js) && isRecord(js.schema) ? js.schema : "json";
  }
  return undefined;
}

/**
 * A `data:` URL's image as the base64 Ollama takes, decoded and encoded again, so
 * what goes upstream is always the canonical base64 of the image's bytes, never the
 * client's string itself. (The `ollama` npm client, which labgate keeps for
 * management calls only, would even read a string image as a file path when such a
 * file exists: a client-supplied string must never reach it.)
 */
function imageBase64(part: Json): string {
  const iu = part.image_url;
  const url = typeof iu === "string" ? iu : isRecord(iu) && typeof iu.url === "string" ? iu.url : undefined;
  if (url === undefined) throw badRequest("image_url content part without a url");
  const m = /^data:[^,]*?;base64,(.*)$/s.exec(url);
  if (!m) throw badRequest("Ollama takes images only as base64 data: URLs, not remote URLs");
  return Buffer.from(m[1], "base64").toString("base64");
}

/** OpenAI message content (string, null or content-part array) -> text + images. */
export function splitContent(content: unknown): { text: string; images: string[] } {
  if (typeof content === "string") return { text: content, images: [] };
  if (content == null) return { text: "", images: [] };
  if (!Array.isArray(content)) throw badRequest("message content must be a string or an array of content parts");
  const texts: string[] = [];
  const images: string[] = [];
  for (const part of content) {
    if (typeof part === "string") texts.push(part);
    else if (isRecord(part) && (part.type === "text" || part.type === "input_text") && typeof part.text === "string") texts.push(part.text);
    else if (isRecord(part) && part.type === "image_url") images.push(imageBase64(part));
    else throw badRequest(`content part type ${JSON.stringify(isRecord(part) ? part.type : typeof part)} is not supported by Ollama`);
  }
  return { text: texts.join("\n"), images };
}


/** OpenAI messages -> Ollama messages (developer -> system, tool_calls with object arguments, tool_call_id -> tool_name). */
export function toOllamaMessages(messages: unknown): Message[] {
  if (!Array.isArray(messages)) throw badRequest("messages must be an array");
  const toolNames = new Map<string, string>();
  const out: Message[] = [];
  for (const raw of messages) {
    if (!isRecord(raw) || typeof raw.role !== "string") throw badRequest("each message needs a role");
    const role = raw.role === "developer" ? "system" : raw.role === "function" ? "tool" : raw.role;
    if (!["system", "user", "assistant", "tool"].includes(role)) throw badRequest(`message role ${JSON.stringify(raw.role)} is not supported`);
    const { text, images } = splitContent(raw.content);
    const msg: Message = { role, content: text };
    if (images.length > 0) msg.images = images;
    if (role === "assistant" && Array.isArray(raw.tool_calls) && raw.tool_calls.length > 0) {
      msg.tool_calls = raw.tool_calls.map((tc): ToolCall => {
        const fn = isRecord(tc) && isRecord(tc.function) ? tc.function : undefined;
        if (!fn || typeof fn.name !== "string") throw badRequest("assistant tool_calls need function.name");
        if (isRecord(tc) && typeof tc.id === "string") toolNames.set(tc.id, fn.name);
        return { function: { name: fn.name, arguments: parseToolArguments(fn.arguments, fn.name) } };
      });
    }
    if (role === "tool") {
      const name = (typeof raw.tool_call_id === "string" ? toolNames.get(raw.tool_call_id) : undefined) ?? (typeof raw.name === "string" ? raw.name : undefined);
      if (name !== undefined) msg.tool_name = name;
    }
    out.push(msg);
  }
  return out;
}

/** OpenAI tools -> Ollama tools (the same function shape). */
export function toOllamaTools(tools: unknown): Tool[] | undefined {
  if (tools == null) return undefined;
  if (!Array.isArray(tools)) throw badRequest("tools must be an array");
  if (tools.length === 0) return undefined;
  return tools.map((t): Tool => {
    if (!isRecord(t) || t.type !== "function" || !isRecord(t.function) || typeof t.function.name !== "string") {
      throw badRequest("Ollama supports only function tools with a name");
    }
    return { type: "function", function: t.function as Tool["function"] };
  });
}

/** Fields both /api/chat and /api/generate share. */
function commonFields(body: OpenAIBody): { options?: Partial<Options>; format?: string | object } {
  const out: { options?: Partial<Options>; format?: string | object } = {};
  if (num(body.n) !== undefined && (body.n as number) > 1) throw badRequest("Ollama returns one choice per request (n > 1 is not supported)");
  const options = toOllamaOptions(body);
  if (Object.keys(options).length > 0) out.options = options;
  const format = toOllamaFormat(body.response_format);
  if (format !== undefined) out.format = format;
  return out;
}

export function toOllamaChatRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): ChatRequest {
  const req: ChatRequest = { model: upstreamModel, messages: toOllamaMessages(body.messages), stream, ...commonFields(body) };
  const tools = body.tool_choice === "none" ? undefined : toOllamaTools(body.tools);
  if (tools) req.tools = tools;
  return req;
}

/** The completions prompt: a string, or an array holding one string. */
export function toOllamaPrompt(prompt: unknown): string {
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") return prompt[0];
  if (Array.isArray(prompt) && prompt.length > 1 && prompt.every((p) => typeof p === "string")) {
    throw badRequest("Ollama completes one prompt per request (got an array of several)");
  }
  throw badRequest("prompt must be a string (token arrays are not supported by Ollama)");
}

export function toOllamaGenerateRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): GenerateRequest {
  const req: GenerateRequest = { model: upstreamModel, prompt: toOllamaPrompt(body.prompt), raw: false, stream, ...commonFields(body) };
  if (typeof body.suffix === "string") req.suffix = body.suffix;
  return req;
}

export function toOllamaEmbedRequest(body: OpenAIBody, upstreamModel: string): EmbedRequest {
  const input = body.input;
  const ok = typeof input === "string" || (Array.isArray(input) && input.length > 0 && input.every((s) => typeof s === "string"));
  if (!ok) throw badRequest("input must be a string or a non-empty array of strings (token arrays are not supported by Ollama)");
  const req: EmbedRequest = { model: upstreamModel, input: input as string | string[] };
  const dims = num(body.dimensions);
  if (dims !== undefined) req.dimensions = dims;
  return req;
}

// ---------------------------------------------------------------------------
// Ollama answer -> OpenAI answer

/** prompt_eval_count / eval_count -> usage; null when Ollama reported neither. */
export function usageFromOllama(res: { prompt_eval_count?: unknown; eval_count?: unknown }): Usage | null {
  const prompt = num(res.prompt_eval_count);
  const completion = num(res.eval_count);
  if (prompt === undefined && completion === undefined) return null;
  return { prompt_tokens: prompt ?? 0, completion_tokens: completion ?? 0, total_tokens: (prompt ?? 0) + (completion ?? 0) };
}

const ZERO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

export function finishReason(doneReason: unknown, sawToolCalls: boolean): "stop" | "length" | "tool_calls" {
  if (sawToolCalls) return "tool_calls";
  return doneReason === "length" ? "length" : "stop";
}

/** Ollama tool calls -> OpenAI tool calls (ids generated when Ollama has none; arguments as a JSON string). */
export function toOpenAIToolCalls(calls: unknown, meta: Pick<ResponseMeta, "newToolCallId">): Json[] {
  if (!Array.isArray(calls)) return [];
  return calls.filter(isRecord).map((tc) => {
    const fn = isRecord(tc.function) ? tc.function : {};
    const args = fn.arguments;
    return {
      id: typeof tc.id === "string" && tc.id !== "" ? tc.id : meta.newToolCallId(),
      type: "function",
      function: { name: typeof fn.name === "string" ? fn.name : "", arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}) },
    };
  });
}

export function toChatCompletion(res: ChatResponse, meta: ResponseMeta): { body: Json; usage: Usage | null } {
  const m = (isRecord(res.message) ? res.message : {}) as Partial<Message> & Json;
  const toolCalls = toOpenAIToolCalls(m.tool_calls, meta);
  const content = typeof m.content === "string" ? m.content : "";
  const message: Json = { role: "assistant", content: toolCalls.length > 0 && content === "" ? null : content };
  if (typeof m.thinking === "string" && m.thinking !== "") message.reasoning_content = m.thinking;
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const usage = usageFromOllama(res);
  return { body: chatCompletion(meta, message, finishReason(res.done_reason, toolCalls.length > 0), usage ?? ZERO_USAGE), usage };
}

export function toTextCompletion(res: GenerateResponse, meta: ResponseMeta): { body: Json; usage: Usage | null } {
  const usage = usageFromOllama(res);
  const text = typeof res.response === "string" ? res.response : "";
  return { body: textCompletion(meta, text, finishReason(res.done_reason, false), usage ?? ZERO_USAGE), usage };
}

/** Float vector -> OpenAI's base64 form (little-endian float32), which the OpenAI SDKs ask for by default. */
export function toEmbeddingList(res: EmbedResponse, model: string, encodingFormat: unknown): { body: Json; usage: Usage | null } {
  const vectors = Array.isArray(res.embeddings) ? res.embeddings : [];
  const base64 = encodingFormat === "base64";
  const prompt = num(res.prompt_eval_count);
  const usage = prompt === undefined ? null : { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt };
  return {
    body: {
      object: "list",
      data: vectors.map((v, index) => ({ object: "embedding", index, embedding: base64 ? embeddingToBase64(v) : v })),
      model,
      usage: { prompt_tokens: prompt ?? 0, total_tokens: prompt ?? 0 },
    },
    usage,
  };
}

/** /api/tags entries -> model cards. */
export function toModelCards(models: unknown): ModelCard[] {
  if (!Array.isArray(models)) return [];
  return models.filter(isRecord).map((m) => {
    const r = m as Partial<ModelResponse> & Json;
    const id = typeof r.name === "string" ? r.name : String(r.model ?? "");
    const card: ModelCard = { id, object: "model", owned_by: "ollama" };
    const modified = typeof r.modified_at === "string" ? Date.parse(r.modified_at) : NaN;
    if (Number.isFinite(modified)) card.created = Math.floor(modified / 1000);
    if (isRecord(r.details)) card.details = r.details;
    if (typeof r.size === "number") card.size = r.size;
    return card;
  });
}

// ---------------------------------------------------------------------------
// Streams: one Ollama NDJSON object in, zero or more OpenAI chunks out.

/**
 * /api/chat stream -> chat.completion.chunk objects. The role chunk goes out with the
 * first upstream object (so the first chunk marks the upstream's first byte); the
 * `done` object yields the finish chunk and then the usage chunk (`choices: []`).
 */
export class ChatStreamMapper {
  private readonly meta: ResponseMeta;
  private started = false;
  private toolIndex = 0;

  constructor(meta: ResponseMeta) {
    this.meta = meta;
  }

  private delta(delta: Json, finish: string | null = null): OpenAIChunk {
    return chatChunk(this.meta, delta, finish);
  }

  push(res: ChatResponse): OpenAIChunk[] {
    const out: OpenAIChunk[] = [];
    if (!this.started) {
      this.started = true;
      out.push(this.delta({ role: "assistant", content: "" }));
    }
    const m = (isRecord(res.message) ? res.message : {}) as Partial<Message> & Json;
    if (typeof m.thinking === "string" && m.thinking !== "") out.push(this.delta({ reasoning_content: m.thinking }));
    if (typeof m.content === "string" && m.content !== "") out.push(this.delta({ content: m.content }));
    const calls = toOpenAIToolCalls(m.tool_calls, this.meta);
    if (calls.length > 0) out.push(this.delta({ tool_calls: calls.map((c) => ({ index: this.toolIndex++, ...c })) }));
    if (res.done) {
      out.push(this.delta({}, finishReason(res.done_reason, this.toolIndex > 0)));
      out.push(usageChunk("chat.completion.chunk", this.meta, usageFromOllama(res) ?? ZERO_USAGE));
    }
    return out;
  }
}

/** /api/generate stream -> text_completion chunks, then a finish chunk and the usage chunk. */
export class CompletionStreamMapper {
  private readonly meta: ResponseMeta;

  constructor(meta: ResponseMeta) {
    this.meta = meta;
  }

  push(res: GenerateResponse): OpenAIChunk[] {
    const out: OpenAIChunk[] = [];
    if (typeof res.response === "string" && res.response !== "") {
      out.push(textChunk(this.meta, res.response));
    }
    if (res.done) {
      out.push(textChunk(this.meta, "", finishReason(res.done_reason, false)));
      out.push(usageChunk("text_completion", this.meta, usageFromOllama(res) ?? ZERO_USAGE));
    }
    return out;
  }
}
