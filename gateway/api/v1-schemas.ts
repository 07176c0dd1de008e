// Request schemas of the OpenAI routes (fastify validates them before the handler runs).
// Field sizes a client could abuse are bounded here; nesting depth in body-limits.ts.
import { MAX_MESSAGES, MAX_MODEL_LENGTH } from "./body-limits.ts";

export const chatSchema = {
  body: {
    type: "object",
    required: ["model", "messages"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      messages: {
        type: "array",
        minItems: 1,
        maxItems: MAX_MESSAGES,
        items: { type: "object", required: ["role"], properties: { role: { type: "string", enum: ["system", "developer", "user", "assistant", "tool", "function"] } } },
      },
      stream: { type: "boolean" },
      stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
      max_tokens: { type: ["integer", "null"], minimum: 1 },
      max_completion_tokens: { type: ["integer", "null"], minimum: 1 },
      temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
      top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
      n: { type: ["integer", "null"], minimum: 1 },
      stop: { type: ["string", "array", "null"] },
      tools: { type: "array" },
    },
  },
} as const;

export const completionsSchema = {
  body: {
    type: "object",
    required: ["model", "prompt"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      prompt: { type: ["string", "array"] },
      stream: { type: "boolean" },
      stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
      max_tokens: { type: ["integer", "null"], minimum: 0 },
      temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
      top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
      stop: { type: ["string", "array", "null"] },
    },
  },
} as const;

export const embeddingsSchema = {
  body: {
    type: "object",
    required: ["model", "input"],
    properties: {
      model: { type: "string", minLength: 1, maxLength: MAX_MODEL_LENGTH },
      input: { type: ["string", "array"], minLength: 1, minItems: 1 },
      encoding_format: { type: "string", enum: ["float", "base64"] },
    },
  },
} as const;

