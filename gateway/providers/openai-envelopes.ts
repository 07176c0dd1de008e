// The OpenAI answer envelopes the translating adapters (Anthropic, Ollama, embedded)
// send back: `chat.completion`, `text_completion`, and the stream chunks
// (`chat.completion.chunk`, `text_completion`). One place for their field order,
// which clients and tests see byte for byte:
//
//   id, object, created, model, [system_fingerprint], choices, [usage]
//
// Stream chunks are built as object literals (one shape per kind, no keys added
// afterwards): they are on the hot path of every translated stream.
import type { Json, OpenAIChunk, Usage } from "./types.ts";

/** What every object of one answer shares. */
export interface EnvelopeMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  /**
   * Written after `model` when present (the embedded engine says `null`); absent
   * means no such field. Usage chunks never carry it.
   */
  system_fingerprint?: string | null;
}

export type CompletionObject = "chat.completion" | "text_completion";
export type ChunkObject = "chat.completion.chunk" | "text_completion";

// ---------------------------------------------------------------------------
// Choices

/** A chat.completion choice. */
export function messageChoice(message: Json, finishReason: string | null): Json {
  return { index: 0, message, logprobs: null, finish_reason: finishReason };
}

/** A chat.completion.chunk choice. */
export function deltaChoice(delta: Json, finishReason: string | null = null): Json {
  return { index: 0, delta, logprobs: null, finish_reason: finishReason };
}

/** A text_completion choice (whole answer or chunk). */
export function textChoice(text: string, finishReason: string | null = null): Json {
  return { text, index: 0, logprobs: null, finish_reason: finishReason };
}

// ---------------------------------------------------------------------------
// Whole answers

/** A non-streamed answer; `usage` is left out when undefined or null. */
export function completionBody(object: CompletionObject, meta: EnvelopeMeta, choice: Json, usage?: Usage | null): Json {
  const body: Json = { id: meta.id, object, created: meta.created, model: meta.model };
  if (meta.system_fingerprint !== undefined) body.system_fingerprint = meta.system_fingerprint;
  body.choices = [choice];
  if (usage) body.usage = usage;
  return body;
}

/** `chat.completion` with one choice. */
export function chatCompletion(meta: EnvelopeMeta, message: Json, finishReason: string, usage?: Usage | null): Json {
  return completionBody("chat.completion", meta, messageChoice(message, finishReason), usage);
}

/** `text_completion` with one choice. */
export function textCompletion(meta: EnvelopeMeta, text: string, finishReason: string, usage?: Usage | null): Json {
  return completionBody("text_completion", meta, textChoice(text, finishReason), usage);
}

// ---------------------------------------------------------------------------
// Stream chunks

/** A stream chunk with these choices. */
export function streamChunk(object: ChunkObject, meta: EnvelopeMeta, choices: Json[]): OpenAIChunk {
  return meta.system_fingerprint === undefined
    ? { id: meta.id, object, created: meta.created, model: meta.model, choices }
    : { id: meta.id, object, created: meta.created, model: meta.model, system_fingerprint: meta.system_fingerprint, choices };
}

/** A `chat.completion.chunk` with one delta. */
export function chatChunk(meta: EnvelopeMeta, delta: Json, finishReason: string | null = null): OpenAIChunk {
  return streamChunk("chat.completion.chunk", meta, [deltaChoice(delta, finishReason)]);
}

/** A streamed `text_completion` with one piece of text. */
export function textChunk(meta: EnvelopeMeta, text: string, finishReason: string | null = null): OpenAIChunk {
  return streamChunk("text_completion", meta, [textChoice(text, finishReason)]);
}

/** The usage chunk that ends a stream: `choices: []` and `usage`. */
export function usageChunk(object: ChunkObject, meta: EnvelopeMeta, usage: Usage): OpenAIChunk {
  return { id: meta.id, object, created: meta.created, model: meta.model, choices: [], usage };
}
