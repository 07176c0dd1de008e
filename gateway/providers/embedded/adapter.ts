// PLACEHOLDER — being written (embedded llama.cpp engine in native/).
import type { ProviderConfig } from "../../config/schema.ts";
import type { ProviderAdapter } from "../types.ts";
export interface EmbeddedOptions {
  name: string;
  config: ProviderConfig;
  modelsDir: string;
}
export function createEmbeddedAdapter(_opts: EmbeddedOptions): ProviderAdapter {
  throw new Error("embedded adapter not written yet");
}
