// PLACEHOLDER — being written (Anthropic Messages API adapter).
import type { ProviderAdapter } from "../types.ts";
export interface AnthropicOptions {
  name: string;
  /** https://api.anthropic.com (no /v1) */
  baseUrl: string;
  apiKey: string;
  extraHeaders?: Record<string, string>;
}
export function createAnthropicAdapter(_opts: AnthropicOptions): ProviderAdapter {
  throw new Error("anthropic adapter not written yet");
}
