// Limits on the shape of a request body, checked before routing so that nothing
// a client sends can make labgate's own encoding fail (a 20 KB body nested 5,000
// levels deep overflowed JSON.stringify's stack and was blamed on the upstream).
// Sizes of single fields are limited by the route schemas (maxLength, maxItems).

/** Deepest nesting of objects and arrays a body may have (tool schemas rarely pass 10). */
export const MAX_BODY_DEPTH = 64;
/** Longest model name accepted (LiteLLM and OpenAI names are far shorter). */
export const MAX_MODEL_LENGTH = 256;
/** Longest tenant name kept (X-Labgate-Tenant, OpenAI's `user`). */
export const MAX_TENANT_LENGTH = 128;
/** Most messages in one chat request. */
export const MAX_MESSAGES = 10_000;

/**
 * The nesting depth of a parsed JSON value, stopping as soon as it passes `limit`
 * (so a hostile body costs at most `limit` frames). Scalars are depth 0.
 */
export function depthExceeds(value: unknown, limit: number = MAX_BODY_DEPTH): boolean {
  return exceeds(value, limit);
}

function exceeds(value: unknown, remaining: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (remaining === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (exceeds(value[i], remaining - 1)) return true;
    return false;
  }
  for (const key in value) if (exceeds((value as Record<string, unknown>)[key], remaining - 1)) return true;
  return false;
}
