// PLACEHOLDER — being written (Ollama native API adapter through the `ollama` npm client).
import type { ProviderAdapter } from "../types.ts";
export interface OllamaOptions {
  name: string;
  /** http://127.0.0.1:11434 */
  baseUrl: string;
  extraHeaders?: Record<string, string>;
}
export function createOllamaAdapter(_opts: OllamaOptions): ProviderAdapter {
  throw new Error("ollama adapter not written yet");
}
