// Pure mapping between OpenAI request/response shapes and the embedded engine's
// requests (native/protocol.ts).
import type { ChatMessage, FinishReason, Prompt, SamplingParams } from "../../../native/protocol.ts";
import { UpstreamError } from "../errors.ts";
import type { OpenAIBody, Usage } from "../types.ts";
import type { IdSource } from "../../store/ids.ts";

/** OpenAI's default for the legacy completions endpoint. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

function bad(message: string): UpstreamError {
  return new UpstreamError("bad_request", message, { upstreamStatus: 400 });
}

function optNumber(body: OpenAIBody, key: string, min?: number, max?: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`${key} must be a number`);
  if ((min !== undefined && v < min) || (max !== undefined && v > max)) throw bad(`${key} must be between ${min} and ${max}`);
  return v;
}

function optInt(body: OpenAIBody, key: string, min: number): number | undefined {
  const v = optNumber(body, key);
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min) throw bad(`${key} must be an integer >= ${min}`);
  return v;
}

export function samplingParams(body: OpenAIBody, op: "chat" | "completions"): SamplingParams {
  const n = optInt(body, "n", 1);
  if (n !== undefined && n > 1) throw bad("the embedded engine generates one choice per request (n must be 1)");
  const maxTokens =
    optInt(body, "max_completion_tokens", 0) ?? optInt(body, "max_tokens", 0) ?? (op === "completions" ? COMPLETIONS_DEFAULT_MAX_TOKENS : undefined);
  const stop = body.stop;
  let stops: string[] = [];
  if (typeof stop === "string") stops = [stop];
  else if (Array.isArray(stop)) {
    if (!stop.every((s) => typeof s === "string")) throw bad("stop must be a string or an array of strings");
    stops = stop as string[];
  } else if (stop !== undefined && stop !== null) throw bad("stop must be a string or an array of strings");

  const logitBias = body.logit_bias;
  if (logitBias !== undefined && logitBias !== null && (typeof logitBias !== "object" || Array.isArray(logitBias))) {
    throw bad("logit_bias must be an object of token id -> bias");
  }
  const seed = optInt(body, "seed", Number.MIN_SAFE_INTEGER);
  const params: SamplingParams = {
    temperature: optNumber(body, "temperature", 0, 2) ?? 1,
    stop: stops,
    stream: body.stream === true,
  };
  if (maxTokens !== undefined) params.maxTokens = maxTokens;
  const topP = optNumber(body, "top_p", 0, 1);
  if (topP !== undefined) params.topP = topP;
  // llama.cpp extensions many clients send to local servers.
  const topK = optInt(body, "top_k", 0);
  if (topK !== undefined) params.topK = topK;
  const minP = optNumber(body, "min_p", 0, 1);
  if (minP !== undefined) params.minP = minP;
  const repeatPenalty = optNumber(body, "repeat_penalty", 0);
  if (repeatPenalty !== undefined) params.repeatPenalty = repeatPenalty;
  if (body.ignore_eos === true) params.ignoreEos = true;
  const fp = optNumber(body, "frequency_penalty", -2, 2);
  if (fp !== undefined && fp !== 0) params.frequencyPenalty = fp;
  const pp = optNumber(body, "presence_penalty", -2, 2);
  if (pp !== undefined && pp !== 0) params.presencePenalty = pp;
  if (seed !== undefined) params.seed = seed >>> 0;
  if (logitBias && Object.keys(logitBias).length > 0) params.logitBias = logitBias as Record<string, number>;
  return params;
}

function textOf(content: unknown, role: string): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const parts: string[] = [];
    for (const p of content as { type?: string; text?: unknown }[]) {
      if (p && (p.type === "text" || p.type === "input_text") && typeof p.text === "string") parts.push(p.text);
      else if (p && typeof p.type === "string" && p.type !== "text") throw bad(`the embedded engine takes text only (a ${role} message has a ${p.type} part)`);
      else throw bad(`invalid content part in a ${role} message`);
    }
    return parts.join("\n");
  }
  throw bad(`invalid content in a ${role} message`);
}

/** OpenAI messages -> the engine's chat history (the chat template is applied in the worker). */
export function chatMessages(body: OpenAIBody): ChatMessage[] {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw bad("messages must be a non-empty array");
  const out: ChatMessage[] = [];
  for (const m of messages as Record<string, unknown>[]) {
    if (!m || typeof m !== "object") throw bad("each message must be an object");
    const role = m.role;
    switch (role) {
      case "system":
      case "developer":
        out.push({ role: "system", content: textOf(m.content, role) });
        break;
      case "user":
        out.push({ role: "user", content: textOf(m.content, role) });
        break;
      case "assistant": {
        let content = textOf(m.content, role);
        if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
          const calls = JSON.stringify(m.tool_calls.map((c: { function?: unknown }) => c?.function ?? c));
          content = content ? `${content}\n${calls}` : calls;
        }
        out.push({ role: "assistant", content });
        break;
      }
      case "tool":
      case "function":
        out.push({ role: "user", content: textOf(m.content, role) });
        break;
      default:
        throw bad(`unknown message role ${JSON.stringify(role)}`);
    }
  }
  return out;
}

/** The completions prompt: one string or one token array. */
export function completionPrompt(body: OpenAIBody): Prompt {
  let p = body.prompt;
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === "string" || Array.isArray(p[0]))) p = p[0];
  if (typeof p === "string") return { kind: "text", text: p };
  if (Array.isArray(p) && p.length > 0 && p.every((t) => typeof t === "number")) return { kind: "tokens", tokens: p as number[] };
  if (Array.isArray(p) && p.length > 1) throw bad("the embedded engine takes one prompt per request");
  throw bad("prompt must be a string or an array of token ids");
}

/** Embeddings input: strings or token arrays. */
export function embeddingInputs(body: OpenAIBody): (string | number[])[] {
  const input = body.input;
  let items: unknown[];
  if (typeof input === "string") items = [input];
  else if (Array.isArray(input) && input.length > 0 && input.every((t) => typeof t === "number")) items = [input];
  else if (Array.isArray(input)) items = input;
  else throw bad("input must be a string, an array of strings, or token arrays");
  if (items.length === 0) throw bad("input must not be empty");
  return items.map((item, i) => {
    if (typeof item === "string") {
      if (item === "") throw bad(`input[${i}] must not be empty`);
      return item;
    }
    if (Array.isArray(item) && item.length > 0 && item.every((t) => typeof t === "number")) return item as number[];
    throw bad(`input[${i}] must be a non-empty string or token array`);
  });
}

/** A response id: prefix, a dash and 16 base64url characters (12 random bytes from the gateway's id source). */
export function newId(ids: IdSource, prefix: string): string {
  return `${prefix}-${ids.token(12, "base64url")}`;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

export function openAIFinish(reason: FinishReason): "stop" | "length" {
  return reason === "length" ? "length" : "stop";
}

/** Float32 vector -> OpenAI's base64 encoding (little-endian float32 bytes). */
