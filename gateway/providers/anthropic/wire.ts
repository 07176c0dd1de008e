// Anthropic's Messages API on the wire (https://docs.anthropic.com/en/api/messages,
// anthropic-version 2023-06-01): what labgate sends and what it reads back. Only
// the fields labgate writes or reads are typed; answers are still read defensively
// (they come off the network), so the response types describe, they do not promise.
import type { Json } from "../types.ts";

export const ANTHROPIC_VERSION = "2023-06-01";

// ---------------------------------------------------------------------------
// Requests (POST /v1/messages)

export type AnthropicSource = { type: "base64"; media_type: string; data: string } | { type: "url"; url: string };

export interface AnthropicTextBlock {
  type: "text";
  text: string;
}
export interface AnthropicImageBlock {
  type: "image";
  source: AnthropicSource;
}
export interface AnthropicDocumentBlock {
  type: "document";
  source: AnthropicSource;
}
export interface AnthropicToolUseBlock {
  type: "tool_use";
  id: string;
  name: string;
  input: Json;
}
export interface AnthropicToolResultBlock {
  type: "tool_result";
  tool_use_id: string;
  content?: string | AnthropicContentBlock[];
}

/** A content block labgate sends. */
export type AnthropicContentBlock = AnthropicTextBlock | AnthropicImageBlock | AnthropicDocumentBlock | AnthropicToolUseBlock | AnthropicToolResultBlock;

export interface AnthropicMessage {
  role: "user" | "assistant";
  content: string | AnthropicContentBlock[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Json;
}

export type AnthropicToolChoice =
  | { type: "auto" | "any"; disable_parallel_tool_use?: boolean }
  | { type: "none" }
  | { type: "tool"; name: string; disable_parallel_tool_use?: boolean };

export interface AnthropicMessagesRequest {
  model: string;
  messages: AnthropicMessage[];
  system?: string;
  max_tokens: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
  metadata?: { user_id: string };
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  stream?: true;
}

// ---------------------------------------------------------------------------
// Answers

export type AnthropicStopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" | "pause_turn" | "refusal" | "model_context_window_exceeded";

export interface AnthropicUsage {
  input_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  output_tokens?: number;
}

/** A Message (the non-streamed answer, and message_start's `message`). */
export interface AnthropicResponseMessage {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: Json[];
  stop_reason: AnthropicStopReason | null;
  stop_sequence?: string | null;
  usage: AnthropicUsage;
}

/** The error object of an error body or an `error` stream event. */
export interface AnthropicErrorObject {
  type: string;
  message: string;
}

/** The events of a streamed answer, by their `type` (https://docs.anthropic.com/en/api/messages-streaming). */
export type AnthropicStreamEvent =
  | { type: "message_start"; message: AnthropicResponseMessage }
  | { type: "content_block_start"; index: number; content_block: Json }
  | {
      type: "content_block_delta";
      index: number;
      delta:
        | { type: "text_delta"; text: string }
        | { type: "input_json_delta"; partial_json: string }
        | { type: "thinking_delta"; thinking: string }
        | { type: "signature_delta"; signature: string }
        | { type: "citations_delta"; citation: Json };
    }
  | { type: "content_block_stop"; index: number }
  | { type: "message_delta"; delta: { stop_reason?: AnthropicStopReason | null; stop_sequence?: string | null }; usage?: AnthropicUsage }
  | { type: "message_stop" }
  | { type: "ping" }
  | { type: "error"; error: AnthropicErrorObject };

/** One entry of GET /v1/models. */
export interface AnthropicModelInfo {
  id: string;
  type: "model";
  display_name?: string;
  created_at?: string;
  max_input_tokens?: number;
}

/** A page of GET /v1/models. */
export interface AnthropicModelPage {
  data: AnthropicModelInfo[];
  has_more: boolean;
  first_id?: string | null;
  last_id?: string | null;
}
