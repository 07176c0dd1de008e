// Pure mapping between labgate's OpenAI-shaped requests and an OpenAI-compatible upstream.
import type { OpenAIBody, Usage } from "../types.ts";

/** The body to send upstream: the client's, with the deployment's model and usage always asked in streams. */
export function upstreamBody(body: OpenAIBody, upstreamModel: string, stream: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: upstreamModel };
  if (stream) {
    const so = (body.stream_options ?? {}) as Record<string, unknown>;
    out.stream_options = { ...so, include_usage: true };
  }
  return out;
}

export function readUsage(obj: Record<string, unknown>): Usage | null {
  const u = obj.usage as Partial<Usage> | null | undefined;
  if (!u || typeof u !== "object") return null;
  const prompt = Number(u.prompt_tokens ?? 0);
  const completion = Number(u.completion_tokens ?? 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: Number(u.total_tokens ?? prompt + completion) };
}
