// Builds one adapter per configured provider. Adding a wire protocol means one
// folder under providers/ and one line here.
import type { ProviderConfig, ProviderType } from "../config/schema.ts";
import { DEMO_MODELS_DIR } from "../config/defaults.ts";
import type { SecretResolver } from "../config/secrets.ts";
import type { IdSource } from "../store/ids.ts";
import { createAnthropicAdapter } from "./anthropic/adapter.ts";
import { createAzureAdapter } from "./azure/adapter.ts";
import { LazyAdapter } from "./lazy-adapter.ts";
import { OpenAICompatibleAdapter } from "./openai-compatible/adapter.ts";
import type { Redactor } from "./redact.ts";
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
  /** The demo model's folder (demoModelsDir(): LABGATE_DEMO_MODELS_DIR, else DEMO_MODELS_DIR). */
  demoModelsDir?: string;
  /** The gateway's redactor: cleans upstream error text (every resolved secret, tokens, paths, stacks) before clients see it. */
  redactor?: Redactor;
  /**
   * The heavy adapter modules this gateway has imported (loadAdapterModules). A
   * provider of a type not among them gets a LazyAdapter that imports it now.
   */
  modules?: AdapterModules;
  /** The gateway's one id source: adapters that make response or tool-call ids draw them from it. */
  ids?: IdSource;
}

/**
 * Adapters that not every configuration needs, imported only when a provider of
 * their type exists: the embedded one pulls in node-llama-cpp (its GGUF reader; the
 * engine itself runs in a worker thread started on first use), the Ollama one the
 * `ollama` npm client. The others are small and always imported.
 */
const HEAVY = {
  embedded: () => import("./embedded/adapter.ts"),
  ollama: () => import("./ollama/adapter.ts"),
};
type HeavyType = keyof typeof HEAVY;

/** The heavy adapter modules one gateway has imported, and why any could not be. */
export type AdapterModules = { -readonly [K in HeavyType]?: Awaited<ReturnType<(typeof HEAVY)[K]>> } & { failed: Partial<Record<HeavyType, string>> };

function isHeavy(type: string): type is HeavyType {
  return Object.hasOwn(HEAVY, type);
}

/**
 * Imports the adapter modules these provider types need, before the providers are
 * built, so a configured provider gets its real adapter and no request waits for an
 * import. A module that fails to import leaves its providers unavailable, not the gateway.
 */
export async function loadAdapterModules(types: Iterable<string>): Promise<AdapterModules> {
  const modules: AdapterModules = { failed: {} };
  const wanted = [...new Set(types)].filter(isHeavy);
  await Promise.all(
    wanted.map(async (type) => {
      try {
        Object.assign(modules, { [type]: await HEAVY[type]() });
      } catch (err) {
        modules.failed[type] = (err as Error)?.message ?? String(err);
      }
    }),
  );
  return modules;
}

/** The adapter built from its module: at once if the gateway has imported it, otherwise once the import is done. */
function heavyAdapter<K extends HeavyType>(ctx: AdapterContext, type: K, make: (m: NonNullable<AdapterModules[K]>) => ProviderAdapter): ProviderAdapter {
  const modules = ctx.modules;
  const loaded = modules?.[type];
  if (loaded) return make(loaded as NonNullable<AdapterModules[K]>);
  if (modules?.failed[type]) throw new Error(`the ${type} adapter could not be loaded: ${modules.failed[type]}`);
  return new LazyAdapter(ctx.name, type, async () => {
    const m = (await HEAVY[type]()) as NonNullable<AdapterModules[K]>;
    if (modules) Object.assign(modules, { [type]: m });
    return make(m);
  });
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
  const { name, config, secrets, redactor } = ctx;
  const baseUrl = config.base_url ?? DEFAULT_BASE_URLS[config.type] ?? "";
  const extraHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(secrets)) if (k.startsWith("header:")) extraHeaders[k.slice(7)] = v;
  switch (config.type) {
    case "openai":
    case "openai-compatible":
      return new OpenAICompatibleAdapter({ name, type: config.type, baseUrl: openAIBase(baseUrl), apiKey: secrets.api_key, extraHeaders, redactor });
    case "llamacpp":
    case "vllm":
      return new OpenAICompatibleAdapter({
        name,
        type: config.type,
        baseUrl: openAIBase(baseUrl),
        apiKey: secrets.api_key,
        extraHeaders,
        healthUrl: `${origin(baseUrl)}/health`,
        redactor,
      });
    case "azure":
      return createAzureAdapter({ name, baseUrl, apiVersion: config.api_version ?? "2024-10-21", apiKey: secrets.api_key ?? "", extraHeaders, redactor });
    case "anthropic":
      return createAnthropicAdapter({ name, baseUrl, apiKey: secrets.api_key ?? "", extraHeaders, redactor });
    case "ollama":
      return heavyAdapter(ctx, "ollama", (m) => m.createOllamaAdapter({ name, baseUrl, extraHeaders, redactor, ids: ctx.ids }));
    case "embedded":
      // The user's models folder; while it holds no GGUF, the demo model shipped with labgate
      // answers instead (only for the default folder: a models_dir named in the config is taken as meant).
      return heavyAdapter(ctx, "embedded", (m) =>
        m.createEmbeddedAdapter({
          name,
          config,
          modelsDir: config.models_dir ?? ctx.defaultModelsDir,
          ids: ctx.ids,
          ...(config.models_dir === undefined ? { demoDir: ctx.demoModelsDir ?? DEMO_MODELS_DIR } : {}),
        }),
      );
  }
}
