// Where labgate keeps its state and which config it uses when told nothing.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LabgateConfig } from "./schema.ts";
import type { SecretResolver } from "./secrets.ts";

export const DEFAULT_CONFIG_FILE = new URL("../../resources/labgate.yaml", import.meta.url);

/** The tiny demo model shipped with labgate, served while the models folder holds no GGUF of its own. */
export const DEMO_MODELS_DIR = fileURLToPath(new URL("../../resources/models", import.meta.url));

/**
 * The demo model's folder: LABGATE_DEMO_MODELS_DIR when set, else the one beside the
 * sources. The desktop app sets it: packaged, the sources sit inside an asar archive,
 * which the native engine cannot open a model from, so the model is unpacked beside it.
 */
export function demoModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.LABGATE_DEMO_MODELS_DIR;
  return given ? resolveDir(given) : DEMO_MODELS_DIR;
}

export function expandHome(p: string): string {
  return p === "~" ? homedir() : p.startsWith("~/") ? join(homedir(), p.slice(2)) : p;
}

/** ~/.labgate unless XDG_DATA_HOME says otherwise. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_DATA_HOME ? join(env.XDG_DATA_HOME, "labgate") : join(homedir(), ".labgate");
}

export function resolveDir(p: string): string {
  return resolve(expandHome(p));
}

/** The built-in config keeps cloud providers only when their key is present. */
export function pruneUnconfiguredCloud(config: LabgateConfig, secrets: SecretResolver): LabgateConfig {
  const providers = Object.fromEntries(
    Object.entries(config.providers).filter(([, p]) => !p.api_key || secrets.resolve(p.api_key).ok),
  );
  return { ...config, providers };
}
