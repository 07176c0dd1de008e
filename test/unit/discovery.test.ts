import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../gateway/config/load.ts";
import { startDiscovery } from "../../gateway/lab/discovery.ts";
import type { ModelCard, ProviderAdapter } from "../../gateway/providers/types.ts";
import { Router } from "../../gateway/router/router.ts";
import { ProviderRegistry } from "../../gateway/providers/registry.ts";
import { ProviderRuntime } from "../../gateway/router/runtime.ts";

function setup() {
  const parsed = parseConfigText(`providers: {ollama: {type: ollama, base_url: "http://127.0.0.1:1"}}`);
  if (!parsed.ok) throw new Error("config");
  let answer: () => Promise<ModelCard[]> = async () => [{ id: "llama3.2:latest", owned_by: "ollama" }];
  const adapter = { name: "ollama", type: "ollama", listModels: () => answer() } as unknown as ProviderAdapter;
  const provider = new ProviderRuntime({ name: "ollama", config: parsed.config.providers.ollama!, adapter, enabled: true });
  const router = new Router(parsed.config, ProviderRegistry.of([provider]));
  const discovery = startDiscovery(router, pino({ level: "silent" }), { intervalMs: 3_600_000 });
  return { router, discovery, set: (f: () => Promise<ModelCard[]>) => (answer = f) };
}

describe("model discovery", () => {
  it("keeps models and their runtime state through failed rounds; drops them after three in a row", async () => {
    const { router, discovery, set } = setup();
    await discovery.ready;
    const before = router.group("llama3.2:latest");
    expect(before).toBeDefined();
    set(() => Promise.reject(new Error("timeout while Ollama loads a model")));
    await discovery.refresh();
    await discovery.refresh();
    // Same group object: its breaker, EWMA and in-flight counts survive.
    expect(router.group("llama3.2:latest")).toBe(before);
    await discovery.refresh();
    expect(router.group("llama3.2:latest")).toBeUndefined();
    set(async () => [{ id: "llama3.2:latest", owned_by: "ollama" }]);
    await discovery.refresh();
    expect(router.group("llama3.2:latest")).toBeDefined();
    discovery.stop();
  });

  it("a model the server no longer lists goes at once", async () => {
    const { router, discovery, set } = setup();
    await discovery.ready;
    set(async () => []);
    await discovery.refresh();
    expect(router.group("llama3.2:latest")).toBeUndefined();
    discovery.stop();
  });
});
