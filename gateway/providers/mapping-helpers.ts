// Small pieces every request-mapping module needs, kept in one place.
import { UpstreamError } from "./errors.ts";
import type { Json } from "./types.ts";

export function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A request the upstream cannot take as written: never retried elsewhere. */
export function badRequest(message: string): UpstreamError {
  return new UpstreamError("bad_request", message);
}

/** OpenAI tool_call arguments (a JSON string, or already an object) -> the object native APIs want. */
export function parseToolArguments(args: unknown, name: string): Json {
  if (isRecord(args)) return args;
  if (args == null || args === "") return {};
  if (typeof args !== "string") throw badRequest(`tool call ${name}: arguments must be a JSON string`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw badRequest(`tool call ${name}: arguments are not valid JSON`);
  }
  if (!isRecord(parsed)) throw badRequest(`tool call ${name}: arguments must be a JSON object`);
  return parsed;
}

/** An embedding as OpenAI's `encoding_format: "base64"`: little-endian float32 bytes. */
export function embeddingToBase64(vector: Float32Array | number[]): string {
  const f32 = vector instanceof Float32Array ? vector : Float32Array.from(vector);
  return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString("base64");
}
