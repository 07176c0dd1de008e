// OpenAI chat / completions requests -> Anthropic Messages requests. Pure: no I/O.
import { badRequest, isRecord, parseToolArguments } from "../mapping-helpers.ts";
import type { Json, OpenAIBody } from "../types.ts";
import type {
  AnthropicContentBlock,
  AnthropicMessage,
  AnthropicMessagesRequest,
  AnthropicSource,
  AnthropicTool,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
} from "./wire.ts";

/** Anthropic requires max_tokens; used when the client sent none. */
export const DEFAULT_MAX_TOKENS = 4096;

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
export function sourceFromUrl(url: string): AnthropicSource {
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
export function contentBlocks(content: unknown): AnthropicContentBlock[] {
  if (content == null) return [];
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw badRequest("message content must be a string or an array of parts");
  const out: AnthropicContentBlock[] = [];
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

function toolResultBlock(m: Json): AnthropicToolResultBlock {
  const id = m.tool_call_id;
  if (typeof id !== "string" || id === "") throw badRequest("tool message without tool_call_id");
  const block: AnthropicToolResultBlock = { type: "tool_result", tool_use_id: id };
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
  const merged: { role: "user" | "assistant"; blocks: AnthropicContentBlock[] }[] = [];
  for (const raw of messages) {
    if (!isRecord(raw)) throw badRequest("each message must be an object");
    const role = raw.role;
    let target: "user" | "assistant";
    let blocks: AnthropicContentBlock[];
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
    messages: merged.map((m) => {
      const only = m.blocks.length === 1 ? m.blocks[0] : undefined;
      // A lone text block travels as a plain string, like a hand-written request.
      return { role: m.role, content: only?.type === "text" ? only.text : m.blocks };
    }),
  };
}

/** OpenAI tools (function tools, or legacy `functions`) -> Anthropic tools. */
export function toAnthropicTools(body: OpenAIBody): AnthropicTool[] | undefined {
  const out: AnthropicTool[] = [];
  const fromFn = (fn: unknown) => {
    if (!isRecord(fn) || typeof fn.name !== "string") throw badRequest("function tools need a name");
    out.push({
      name: fn.name,
      ...(typeof fn.description === "string" ? { description: fn.description } : {}),
      input_schema: isRecord(fn.parameters) ? fn.parameters : { type: "object", properties: {} },
    });
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
export function toAnthropicToolChoice(body: OpenAIBody): AnthropicToolChoice | undefined {
  const choice = body.tool_choice ?? body.function_call;
  let out: AnthropicToolChoice | undefined;
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
    if (out.type !== "none") out = { ...out, disable_parallel_tool_use: true };
  }
  return out;
}

function maxTokens(body: OpenAIBody): number {
  const v = body.max_completion_tokens ?? body.max_tokens;
  if (v == null) return DEFAULT_MAX_TOKENS;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw badRequest("max_tokens must be a positive integer");
  return v;
}

type CommonParams = Pick<AnthropicMessagesRequest, "max_tokens" | "temperature" | "top_p" | "top_k" | "stop_sequences" | "metadata">;

/** The sampling and bookkeeping parameters shared by chat and completions. */
function commonParams(body: OpenAIBody): CommonParams {
  const out: CommonParams = { max_tokens: maxTokens(body) };
  if (typeof body.temperature === "number") out.temperature = Math.min(1, Math.max(0, body.temperature)); // OpenAI 0..2, Anthropic 0..1
  if (typeof body.top_p === "number") out.top_p = body.top_p;
  if (typeof body.top_k === "number") out.top_k = body.top_k;
  if (typeof body.stop === "string") out.stop_sequences = [body.stop];
  else if (Array.isArray(body.stop) && body.stop.length > 0) out.stop_sequences = body.stop.filter((s): s is string => typeof s === "string");
  if (typeof body.user === "string" && body.user !== "") out.metadata = { user_id: body.user };
  return out;
}

/** An OpenAI chat.completions body -> an Anthropic POST /v1/messages body. */
export function toMessagesRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): AnthropicMessagesRequest {
  const { system, messages } = toAnthropicMessages(body.messages);
  const out: AnthropicMessagesRequest = { model: upstreamModel, messages, ...(system !== undefined ? { system } : {}), ...commonParams(body) };
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
export function completionToMessagesRequest(body: OpenAIBody, upstreamModel: string, stream: boolean): AnthropicMessagesRequest {
  let prompt = body.prompt;
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1 || typeof prompt[0] !== "string") {
      throw badRequest("anthropic takes exactly one text prompt per completions request");
    }
    prompt = prompt[0];
  }
  if (typeof prompt !== "string" || prompt === "") throw badRequest("prompt must be a non-empty string");
  const out: AnthropicMessagesRequest = { model: upstreamModel, messages: [{ role: "user", content: prompt }], ...commonParams(body) };
  if (stream) out.stream = true;
  return out;
}
