// Checks that span more than one field: names referenced but not defined,
// cycles in fallback chains, fields a provider type cannot work without.
import type { LabgateConfig } from "./schema.ts";

export interface ConfigProblem {
  path: (string | number)[];
  message: string;
}

/** Also safe on a document that failed the schema: anything malformed is skipped here. */
export function checkReferences(input: LabgateConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const config = normalise(input);
  const providerNames = new Set(Object.keys(config.providers));
  const modelNames = new Set(Object.keys(config.models));

  for (const [name, provider] of Object.entries(config.providers)) {
    if (!provider || typeof provider !== "object") continue;
    if (provider.type === "azure" && !provider.base_url) {
      problems.push({ path: ["providers", name, "base_url"], message: "azure needs base_url (https://<resource>.openai.azure.com)" });
    }
    if (provider.type === "azure" && !provider.api_version) {
      problems.push({ path: ["providers", name, "api_version"], message: "azure needs api_version (for example 2024-10-21)" });
    }
    const local = provider.type === "ollama" || provider.type === "llamacpp" || provider.type === "vllm" || provider.type === "openai-compatible";
    if (local && !provider.base_url) {
      problems.push({ path: ["providers", name, "base_url"], message: `${provider.type} needs base_url` });
    }
  }

  for (const [group, model] of Object.entries(config.models)) {
    model.deployments.forEach((d, i) => {
      if (d && typeof d.provider === "string" && !providerNames.has(d.provider)) {
        problems.push({
          path: ["models", group, "deployments", i, "provider"],
          message: `provider "${d.provider}" is not defined under providers (defined: ${[...providerNames].join(", ") || "none"})`,
        });
      }
    });
    model.fallbacks.forEach((f, i) => {
      if (typeof f !== "string") return;
      if (!modelNames.has(f)) {
        problems.push({ path: ["models", group, "fallbacks", i], message: `fallback model "${f}" is not defined under models` });
      } else if (f === group) {
        problems.push({ path: ["models", group, "fallbacks", i], message: `model "${group}" lists itself as a fallback` });
      }
    });
  }

  // The cloud overflow sends items through an openai provider's Files and Batch APIs: only that type has them.
  for (const [profile, p] of Object.entries(config.batchProfiles)) {
    const name = p.overflow_provider;
    if (typeof name !== "string") continue;
    const path = ["batch_profiles", profile, "overflow_provider"];
    const provider = config.providers[name];
    if (!providerNames.has(name)) {
      problems.push({ path, message: `provider "${name}" is not defined under providers (defined: ${[...providerNames].join(", ") || "none"})` });
    } else if (provider && typeof provider === "object" && provider.type !== "openai") {
      problems.push({ path, message: `provider "${name}" is of type ${String(provider.type)}: the overflow needs an openai provider (its Batch API)` });
    }
  }

  for (const cycle of findFallbackCycles(config)) {
    problems.push({
      path: ["models", cycle[0]!, "fallbacks"],
      message: `fallback chain has a cycle: ${cycle.join(" -> ")}`,
    });
  }
  return problems;
}

interface LooseConfig {
  providers: Record<string, LabgateConfig["providers"][string]>;
  models: Record<string, { deployments: { provider?: unknown }[]; fallbacks: unknown[] }>;
  batchProfiles: Record<string, { overflow_provider?: unknown }>;
}

function normalise(input: unknown): LooseConfig {
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const root = obj(input);
  const models: LooseConfig["models"] = {};
  for (const [name, m] of Object.entries(obj(root.models))) {
    const mm = obj(m);
    models[name] = {
      deployments: Array.isArray(mm.deployments) ? mm.deployments.map((d) => obj(d)) : [],
      fallbacks: Array.isArray(mm.fallbacks) ? mm.fallbacks : [],
    };
  }
  const batchProfiles: LooseConfig["batchProfiles"] = {};
  for (const [name, p] of Object.entries(obj(root.batch_profiles))) batchProfiles[name] = obj(p);
  return { providers: obj(root.providers) as LooseConfig["providers"], models, batchProfiles };
}

/** Every distinct cycle in the fallback graph, each as the path that closes it. */
export function findFallbackCycles(config: LooseConfig): string[][] {
  const cycles: string[][] = [];
  const seenCycleKeys = new Set<string>();
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];

  const visit = (name: string): void => {
    state.set(name, "visiting");
    stack.push(name);
    for (const next of config.models[name]?.fallbacks ?? []) {
      if (typeof next !== "string" || !(next in config.models) || next === name) continue; // reported elsewhere
      const s = state.get(next);
      if (s === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        const key = [...cycle.slice(0, -1)].sort().join("\u0000");
        if (!seenCycleKeys.has(key)) {
          seenCycleKeys.add(key);
          cycles.push(cycle);
        }
      } else if (s === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(name, "done");
  };
  for (const name of Object.keys(config.models)) if (!state.has(name)) visit(name);
  return cycles;
}
