// The provider registry: providers from any source, one stream of events, and a
// router that follows it (removed providers take their discovered models along,
// replaced ones keep their deployments' breaker state).
import { describe, expect, it } from "vitest";
import { configSchema } from "../../gateway/config/schema.ts";
import { ProviderRegistry, type RegistryEvent } from "../../gateway/providers/registry.ts";
import type { ModelCard, ProviderAdapter } from "../../gateway/providers/types.ts";
import { Router } from "../../gateway/router/router.ts";
import { ProviderRuntime } from "../../gateway/router/runtime.ts";

const adapter = (name: string): ProviderAdapter => ({ name, type: "openai-compatible" }) as unknown as ProviderAdapter;
const runtime = (name: string, type: "openai-compatible" | "ollama" = "openai-compatible") =>
  new ProviderRuntime({ name, config: { type, base_url: "http://127.0.0.1:9/v1" }, adapter: adapter(name), enabled: true });

function setup() {
  const config = configSchema.parse({
    providers: { a: { type: "openai-compatible", base_url: "http://127.0.0.1:9/v1" } },
    models: { m: { deployments: [{ provider: "a", model: "x" }] } },
    router: { circuit_breaker: { consecutive_failures: 1 } },
  });
  const registry = ProviderRegistry.of([runtime("a")]);
  const events: RegistryEvent[] = [];
  registry.on((e) => events.push(e));
  const router = new Router(config, registry);
  return { registry, router, events };
}

describe("provider registry", () => {
  it("tells its listeners what was added, toggled, probed, replaced and removed, once per change", () => {
    const { registry, events } = setup();
    registry.add(runtime("lab-ollama", "ollama"), "discovery");
    expect(registry.sourceOf("lab-ollama")).toBe("discovery");
    expect(() => registry.add(runtime("a"), "config")).toThrow(/already registered/);
    expect(registry.setEnabled("a", false)).toBe(true);
    expect(registry.setEnabled("a", false)).toBe(true); // no change, no event
    expect(registry.setEnabled("nope", true)).toBe(false);
    registry.recordHealth("a", { ok: true, detail: "ok", latencyMs: 1, at: 1 });
    registry.recordHealth("a", { ok: true, detail: "ok", latencyMs: 2, at: 2 }); // same health: no event
    registry.recordHealth("a", { ok: false, detail: "refused", latencyMs: 0, at: 3 });
    expect(registry.lastHealth("a")).toMatchObject({ ok: false, detail: "refused" });
    registry.remove("lab-ollama");
    expect(registry.names()).toEqual(["a"]);
    expect(events).toEqual([
      { type: "added", provider: "lab-ollama", source: "discovery" },
      { type: "enabled", provider: "a", enabled: false },
      { type: "health", provider: "a", healthy: true, detail: "ok" },
      { type: "health", provider: "a", healthy: false, detail: "refused" },
      { type: "removed", provider: "lab-ollama" },
    ]);
  });

  it("a listener that throws stops neither the others nor the change", () => {
    const { registry } = setup();
    const seen: string[] = [];
    registry.on(() => {
      throw new Error("consumer bug");
    });
    registry.on((e) => seen.push(e.type));
    expect(registry.setEnabled("a", false)).toBe(true);
    expect(seen).toEqual(["enabled"]);
    expect(registry.get("a")!.enabled).toBe(false);
  });

  it("the router follows it: a replaced provider keeps its deployments' breaker state; breaker and panic changes are events", () => {
    const { registry, router, events } = setup();
    const d = router.group("m")!.deployments[0]!;
    const permit = d.breaker.tryAcquire()!;
    d.breaker.onFailure(permit);
    expect(d.breaker.state).toBe("open");
    router.groupHealth(router.group("m")!);
    expect(events).toContainEqual({ type: "breaker", provider: "a", deployment: "m#0", from: "closed", to: "open" });
    expect(events).toContainEqual({ type: "panic", group: "m", panic: true, enabledDeployments: 1, breakerNotOpen: 0 });
    const fresh = runtime("a");
    expect(registry.replace(fresh)).not.toBe(fresh);
    expect(d.provider).toBe(fresh);
    expect(d.breaker.state).toBe("open");
  });

  it("a removed provider's discovered models leave the router, with a models event", () => {
    const { registry, router, events } = setup();
    registry.add(runtime("lab-ollama", "ollama"), "discovery");
    const cards: ModelCard[] = [{ id: "llama3.2:latest", owned_by: "ollama" }, { id: "qwen3:8b", owned_by: "ollama" }];
    router.setDiscoveredModels("lab-ollama", cards);
    router.setDiscoveredModels("lab-ollama", cards); // nothing changed: no second event
    expect(router.group("qwen3:8b")).toBeDefined();
    registry.remove("lab-ollama");
    expect(router.group("qwen3:8b")).toBeUndefined();
    expect(events.filter((e) => e.type === "models")).toEqual([
      { type: "models", provider: "lab-ollama", models: ["llama3.2:latest", "qwen3:8b"] },
      { type: "models", provider: "lab-ollama", models: [] },
    ]);
  });
});
