// Anthropic answers (a Message, a page of models) -> OpenAI shapes. Pure: no I/O.
import { UpstreamError } from "../errors.ts";
import { isRecord } from "../mapping-helpers.ts";
import { chatCompletion, textCompletion, type EnvelopeMeta } from "../openai-envelopes.ts";
import type { Json, ModelCard, Usage } from "../types.ts";
import { anthropicError } from "./errors.ts";

/** Anthropic usage -> OpenAI usage. Cache reads and writes are input tokens too. */
export function readAnthropicUsage(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const prompt = n(u.input_tokens) + n(u.cache_creation_input_tokens) + n(u.cache_read_input_tokens);
  const completion = n(u.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Anthropic stop_reason -> OpenAI finish_reason. */
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

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The content blocks of a Message (an AnthropicResponseMessage, read defensively); throws on an error body. */
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

function envelopeMeta(msg: Json): EnvelopeMeta {
  return { id: String(msg.id ?? ""), created: nowSeconds(), model: String(msg.model ?? "") };
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
  return { body: chatCompletion(envelopeMeta(msg), message, finishReason(msg.stop_reason), usage), usage };
}

/** An Anthropic Message -> OpenAI text_completion. */
export function toTextCompletion(msg: Json): { body: Json; usage: Usage | null } {
  const text = joinedText(assertMessage(msg));
  const usage = readAnthropicUsage(msg.usage);
  return { body: textCompletion(envelopeMeta(msg), text, finishReason(msg.stop_reason), usage), usage };
}

/** One page of GET /v1/models (an AnthropicModelPage, read defensively) -> ModelCards. */
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
