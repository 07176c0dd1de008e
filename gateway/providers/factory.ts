// Builds one adapter per configured provider. Adding a wire protocol means one
// folder under providers/ and one line here.
import type { ProviderConfig, ProviderType } from "../config/schema.ts";
import { DEMO_MODELS_DIR } from "../config/defaults.ts";
import type { SecretResolver } from "../config/secrets.ts";
import { createAnthropicAdapter } from "./anthropic/adapter.ts";
import { createAzureAdapter } from "./azure/adapter.ts";
import { createEmbeddedAdapter } from "./embedded/adapter.ts";
import { createOllamaAdapter } from "./ollama/adapter.ts";
import { OpenAICompatibleAdapter } from "./openai-compatible/adapter.ts";
import type { ProviderAdapter } from "./types.ts";

export const DEFAULT_BASE_URLS: Partial<Record<ProviderType, string>> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
  ollama: "http://127.0.0.1:11434",
  llamacpp: "http://127.0.0.1:8080",
  vllm: "http://127.0.0.1:8000",
};

export interface AdapterContext {
  name: string;
  config: ProviderConfig;
  /** Resolved secrets by field ("api_key", "header:<name>"). */
  secrets: Record<string, string>;
  /** Models folder for the embedded engine when the provider names none. */
  defaultModelsDir: string;
}

/** Appends /v1 unless the URL already names an API version path. */
export function openAIBase(url: string): string {
  const trimmed = url.replace(/\/+$/, "");
  return /\/v\d+(beta)?$/.test(trimmed) ? trimmed : `${trimmed}/v1`;
}

function origin(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v\d+$/, "");
}

export function createAdapter(ctx: AdapterContext): ProviderAdapter {
  const { name, config, secrets } = ctx;
  const baseUrl = config.base_url ?? DEFAULT_BASE_URLS[config.type] ?? "";
  const extraHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(secrets)) if (k.startsWith("header:")) extraHeaders[k.slice(7)] = v;
  switch (config.type) {
    case "openai":
    case "openai-compatible":
      return new OpenAICompatibleAdapter({ name, type: config.type, baseUrl: openAIBase(baseUrl), apiKey: secrets.api_key, extraHeaders });
    case "llamacpp":
    case "vllm":
      return new OpenAICompatibleAdapter({
        name,
        type: config.type,
        baseUrl: openAIBase(baseUrl),
        apiKey: secrets.api_key,
        extraHeaders,
        healthUrl: `${origin(baseUrl)}/health`,
      });
    case "azure":
      return createAzureAdapter({ name, baseUrl, apiVersion: config.api_version ?? "2024-10-21", apiKey: secrets.api_key ?? "" });
    case "anthropic":
      return createAnthropicAdapter({ name, baseUrl, apiKey: secrets.api_key ?? "", extraHeaders });
    case "ollama":
      return createOllamaAdapter({ name, baseUrl, extraHeaders });
    case "embedded":
      // The user's models folder; while it holds no GGUF, the demo model shipped with labgate
      // answers instead (only for the default folder: a models_dir named in the config is taken as meant).
      return createEmbeddedAdapter({
        name,
        config,
        modelsDir: config.models_dir ?? ctx.defaultModelsDir,
        ...(config.models_dir === undefined ? { demoDir: DEMO_MODELS_DIR } : {}),
      });
  }
}
