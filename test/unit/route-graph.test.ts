// The Routes page's graph model (renderer/src/pages/routes/route-graph.ts): the router's
// fallback order drawn as chains left to right, health colours, and fallback counts from
// the analytics (per provider pair) placed on the arrows they crossed.
import { describe, expect, it } from "vitest";
import {
  buildRouteGraph,
  fallbackChains,
  type FallbackEdge,
  type GroupNode,
  type RouteGraph,
} from "../../renderer/src/pages/routes/route-graph.ts";
import type { DeploymentView, GroupView, ProviderView } from "../../renderer/src/types.ts";

function deployment(id: string, group: string, model: string, extra: Partial<DeploymentView> = {}): DeploymentView {
  return { id, model_group: group, model, tier: null, overflow: false, weight: 1, breaker_state: "closed", error_rate: 0, in_flight: 0, ewma_ttfb_ms: null, requests: 0, failures: 0, ...extra };
}

function provider(name: string, deployments: DeploymentView[], extra: Partial<ProviderView> = {}): ProviderView {
  return {
    name,
    type: "openai-compatible",
    source: "config",
    enabled: true,
    available: true,
    unavailable_reason: null,
    health: { healthy: true, detail: "ok", checked_at: "2026-12-01T00:00:00.000Z" },
    in_flight: 0,
    requests: 0,
    failures: 0,
    deployments,
    ...extra,
  };
}

function group(name: string, fallbacks: string[] = [], extra: Partial<GroupView> = {}): GroupView {
  return { name, strategy: "simple-shuffle", discovered: false, fallbacks, panic: false, enabled_deployments: 1, breaker_not_open: 1, deployments: 1, ...extra };
}

/** resources/labgate.example.yaml's groups and providers. */
function exampleLab(over: { ollama?: Partial<ProviderView>; llama?: Partial<ProviderView>; openai?: Partial<ProviderView> } = {}) {
  const providers = [
    provider("ollama", [deployment("llama3.1:latest#0", "llama3.1:latest", "llama3.1:latest", { tier: "local" })], { type: "ollama", ...over.ollama }),
    provider("llama-cpp-native", [deployment("llama-cpp-default#0", "llama-cpp-default", "default", { tier: "local" })], { type: "llamacpp", ...over.llama }),
    provider(
      "openai",
      [
        deployment("gpt-4-turbo#0", "gpt-4-turbo", "gpt-4-turbo", { weight: 60 }),
        deployment("gpt-oss:20b-cloud#0", "gpt-oss:20b-cloud", "gpt-oss-20b", { tier: "standard" }),
      ],
      { type: "openai", ...over.openai },
    ),
    provider("azure", [deployment("gpt-4-turbo#1", "gpt-4-turbo", "gpt-4-turbo", { weight: 25 })], { type: "azure" }),
    provider("anthropic", [deployment("gpt-4-turbo#2", "gpt-4-turbo", "claude-3-opus-20240229", { weight: 15 })], { type: "anthropic" }),
  ];
  const groups = [
    group("gpt-4-turbo", [], { strategy: "weighted", deployments: 3 }),
    group("llama3.1:latest", ["llama-cpp-default", "gpt-oss:20b-cloud"]),
    group("llama-cpp-default"),
    group("gpt-oss:20b-cloud"),
  ];
  return { providers, groups };
}

const groupNode = (g: RouteGraph, name: string): GroupNode => g.nodes.find((n): n is GroupNode => n.type === "modelGroup" && n.data.name === name)!;
const fallbackEdges = (g: RouteGraph): FallbackEdge[] => g.edges.filter((e): e is FallbackEdge => e.type === "fallback");
const healthOf = (g: RouteGraph, testid: string): string | undefined => g.nodes.find((n) => n.domAttributes["data-testid"] === testid)?.domAttributes["data-health"];

describe("route graph", () => {
  it("draws the example config's chain left to right in the router's order", () => {
    const { providers, groups } = exampleLab();
    const g = buildRouteGraph(providers, groups, []);
    expect(g.chains).toContainEqual(["llama3.1:latest", "llama-cpp-default", "gpt-oss:20b-cloud"]);
    expect(fallbackEdges(g).map((e) => [e.data.from, e.data.to])).toEqual([
      ["llama3.1:latest", "llama-cpp-default"],
      ["llama-cpp-default", "gpt-oss:20b-cloud"],
    ]);
    const [a, b, c] = ["llama3.1:latest", "llama-cpp-default", "gpt-oss:20b-cloud"].map((n) => groupNode(g, n).position);
    expect(a!.y).toBe(b!.y);
    expect(b!.y).toBe(c!.y);
    expect(a!.x).toBeLessThan(b!.x);
    expect(b!.x).toBeLessThan(c!.x);
    // The group without fallbacks gets a row of its own, not in the chain's row.
    expect(groupNode(g, "gpt-4-turbo").position.y).not.toBe(a!.y);
    // Nodes come in reading order: the chain's groups before the standalone group.
    const order = g.nodes.filter((n) => n.type === "modelGroup").map((n) => n.data.name);
    expect(order.indexOf("llama3.1:latest")).toBeLessThan(order.indexOf("llama-cpp-default"));
    expect(order.indexOf("llama-cpp-default")).toBeLessThan(order.indexOf("gpt-oss:20b-cloud"));
  });

  it("gives every deployment a node inside its group, with provider, upstream model and test ids", () => {
    const { providers, groups } = exampleLab();
    const g = buildRouteGraph(providers, groups, []);
    const d = g.nodes.find((n) => n.id === "deployment:gpt-oss:20b-cloud#0")!;
    expect(d.type).toBe("deployment");
    expect(d.type === "deployment" && d.parentId).toBe("group:gpt-oss:20b-cloud");
    expect(d.data).toMatchObject({ provider: "openai", model: "gpt-oss-20b", health: "ok" });
    expect(d.domAttributes["data-testid"]).toBe("deployment-node-gpt-oss:20b-cloud#0");
    expect(groupNode(g, "gpt-4-turbo").domAttributes["data-testid"]).toBe("route-node-gpt-4-turbo");
    // The weighted group lists the heaviest deployment first.
    const turbo = g.nodes.filter((n) => n.type === "deployment" && n.data.group === "gpt-4-turbo").map((n) => n.data.provider);
    expect(turbo).toEqual(["openai", "azure", "anthropic"]);
  });

  it("colours deployments and groups by health: down, degraded, disabled, ok", () => {
    const { providers, groups } = exampleLab({
      ollama: { health: { healthy: false, detail: "connect ECONNREFUSED", checked_at: "2026-12-01T00:00:00.000Z" } },
      llama: { enabled: false },
    });
    providers.find((p) => p.name === "azure")!.deployments[0]!.breaker_state = "open";
    providers.find((p) => p.name === "anthropic")!.available = false;
    const g = buildRouteGraph(providers, groups, []);
    expect(healthOf(g, "deployment-node-llama3.1:latest#0")).toBe("down");
    expect(healthOf(g, "route-node-llama3.1:latest")).toBe("down");
    expect(healthOf(g, "deployment-node-llama-cpp-default#0")).toBe("off");
    expect(healthOf(g, "route-node-llama-cpp-default")).toBe("off");
    expect(healthOf(g, "deployment-node-gpt-4-turbo#1")).toBe("degraded");
    expect(healthOf(g, "deployment-node-gpt-4-turbo#2")).toBe("down");
    expect(healthOf(g, "route-node-gpt-4-turbo")).toBe("degraded");
    expect(healthOf(g, "route-node-gpt-oss:20b-cloud")).toBe("ok");
    expect(g.nodes.find((n) => n.id === "deployment:llama3.1:latest#0")!.ariaLabel).toContain("down, health check failed: connect ECONNREFUSED");
    // A group in panic is degraded even with healthy deployments.
    const panicked = buildRouteGraph(providers, groups.map((x) => (x.name === "gpt-oss:20b-cloud" ? { ...x, panic: true } : x)), []);
    expect(healthOf(panicked, "route-node-gpt-oss:20b-cloud")).toBe("degraded");
  });

  it("colours a deployment whose breaker is half-open (the gateway's \"half_open\") degraded, and its group with it", () => {
    const { providers, groups } = exampleLab();
    providers.find((p) => p.name === "azure")!.deployments[0]!.breaker_state = "half_open";
    const g = buildRouteGraph(providers, groups, []);
    expect(healthOf(g, "deployment-node-gpt-4-turbo#1")).toBe("degraded");
    expect(healthOf(g, "deployment-node-gpt-4-turbo#0")).toBe("ok");
    expect(healthOf(g, "route-node-gpt-4-turbo")).toBe("degraded");
    expect(g.nodes.find((n) => n.id === "deployment:gpt-4-turbo#1")!.ariaLabel).toContain("half-open");
  });

  it("puts each provider pair's fallback count on every arrow it crossed", () => {
    const { providers, groups } = exampleLab();
    const g = buildRouteGraph(providers, groups, [
      { from: "ollama", to: "llama-cpp-native", count: 4 }, // one step
      { from: "ollama", to: "openai", count: 3 }, // past both arrows
      { from: "openai", to: "azure", count: 2 }, // inside gpt-4-turbo
      { from: "gone", to: "openai", count: 1 }, // a provider no longer configured
    ]);
    const counts = Object.fromEntries(fallbackEdges(g).map((e) => [`${e.data.from}->${e.data.to}`, e.data.count]));
    expect(counts).toEqual({ "llama3.1:latest->llama-cpp-default": 7, "llama-cpp-default->gpt-oss:20b-cloud": 3 });
    expect(fallbackEdges(g)[0]!.domAttributes["data-count"]).toBe("7");
    expect(groupNode(g, "gpt-4-turbo").data.withinGroup).toBe(2);
    expect(g.unattributed).toBe(1);
  });

  it("marks overflow deployments after the regular ones, with an overflow edge between", () => {
    const providers = [
      provider("lab", [deployment("chat#0", "chat", "tiny")]),
      provider("cloud", [deployment("chat#1", "chat", "gpt-4o-mini", { overflow: true })]),
    ];
    const g = buildRouteGraph(providers, [group("chat", [], { deployments: 2 })], []);
    const overflow = g.edges.filter((e) => e.type === "overflow");
    expect(overflow.map((e) => [e.source, e.target])).toEqual([["deployment:chat#0", "deployment:chat#1"]]);
    const [lab, cloud] = ["deployment:chat#0", "deployment:chat#1"].map((id) => g.nodes.find((n) => n.id === id)!);
    expect(lab!.position.y).toBeLessThan(cloud!.position.y);
    expect(cloud!.data).toMatchObject({ overflow: true });
    // The group is tall enough for both, so the overflow node is inside it.
    expect(cloud!.position.y + cloud!.height).toBeLessThanOrEqual(groupNode(g, "chat").height);
  });

  it("follows the router's breadth-first plan, each group once, within the depth limit, cycles included", () => {
    const groups = [group("a", ["b", "c"]), group("b", ["d"]), group("c", ["d"]), group("d"), group("x", ["y"]), group("y", ["x"])];
    expect(fallbackChains(groups, 5)).toEqual([
      ["a", "b", "c", "d"],
      ["x", "y"],
    ]);
    expect(fallbackChains(groups, 1)[0]).toEqual(["a", "b", "c"]);
    const g = buildRouteGraph([], groups, []);
    // The chains' arrows, then those only a request for a group inside a chain takes (b's own plan is b, d).
    expect(fallbackEdges(g).map((e) => e.id)).toEqual(["fallback:a->b", "fallback:b->c", "fallback:c->d", "fallback:x->y", "fallback:b->d", "fallback:y->x"]);
    expect(fallbackEdges(g).find((e) => e.id === "fallback:c->d")!.data.chains).toEqual(["a", "c"]);
    expect(healthOf(g, "route-node-a")).toBe("off");
  });

  it("draws chains to the gateway's max_fallback_depth when given (the config's 5 otherwise)", () => {
    const groups = [group("a", ["b"]), group("b", ["c"]), group("c")];
    expect(buildRouteGraph([], groups, []).chains).toEqual([["a", "b", "c"]]);
    const shallow = buildRouteGraph([], groups, [], { maxFallbackDepth: 1 });
    expect(shallow.chains[0]).toEqual(["a", "b"]);
    // b's own plan still reaches c: its arrow is drawn, but a is never planned to c.
    expect(fallbackEdges(shallow).map((e) => e.id)).toEqual(["fallback:a->b", "fallback:b->c"]);
    expect(fallbackEdges(shallow).find((e) => e.id === "fallback:b->c")!.data.chains).not.toContain("a");
  });

  it("counts arrows per group asked for when the requests per (group, provider that answered) are given", () => {
    // Two groups share their providers: from the provider pairs alone, qwen's fallbacks to the
    // cloud cannot be told from llama3.1's; from what answered each group's requests they can.
    const { providers, groups } = exampleLab();
    providers[0]!.deployments.push(deployment("qwen#0", "qwen", "qwen2.5-coder:7b"));
    const withQwen = [...groups, group("qwen", ["gpt-oss:20b-cloud"])];
    const pairs = [{ from: "ollama", to: "openai", count: 5 }];
    const answered = [
      { group: "qwen", provider: "openai", requests: 5 }, // fell back to the cloud
      { group: "qwen", provider: "ollama", requests: 40 }, // answered at home
      { group: "llama3.1:latest", provider: "ollama", requests: 9 },
      { group: "llama3.1:latest", provider: "gone", requests: 2 }, // a provider no longer configured
      { group: "gpt-oss:20b-cloud", provider: null, requests: 1 }, // nothing was tried
    ];
    const counts = (g: RouteGraph) => Object.fromEntries(fallbackEdges(g).map((e) => [`${e.data.from}->${e.data.to}`, e.data.count]));
    const exact = buildRouteGraph(providers, withQwen, pairs, { answered });
    expect(counts(exact)).toEqual({ "llama3.1:latest->llama-cpp-default": 0, "llama-cpp-default->gpt-oss:20b-cloud": 0, "qwen->gpt-oss:20b-cloud": 5 });
    expect(exact.unattributed).toBe(2);
    // Pairs only: the first chain that explains the pair gets it.
    expect(counts(buildRouteGraph(providers, withQwen, pairs))).toEqual({ "llama3.1:latest->llama-cpp-default": 5, "llama-cpp-default->gpt-oss:20b-cloud": 5, "qwen->gpt-oss:20b-cloud": 0 });
    // Down the whole chain: every arrow on the way counts the request.
    const deep = buildRouteGraph(providers, withQwen, [], { answered: [{ group: "llama3.1:latest", provider: "openai", requests: 3 }, { group: "llama3.1:latest", provider: "llama-cpp-native", requests: 4 }] });
    expect(counts(deep)).toMatchObject({ "llama3.1:latest->llama-cpp-default": 7, "llama-cpp-default->gpt-oss:20b-cloud": 3 });
  });
});
