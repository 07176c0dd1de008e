// The tray as a function of the lab's state (electron/tray-model.ts over electron/lab-state.ts):
// one test per lab state (healthy; degraded by a provider down, a breaker open, panic, a
// budget crossed, a crash-looping server; down when nothing can serve or the gateway is
// gone) and per kind of provider (cloud, Ollama, a supervised llama-server, the embedded
// engine). States are built the way the app builds them: a snapshot shaped like the
// gateway's, then its events.
import { describe, expect, it } from "vitest";
import { CLOUD_PROVIDER_TYPES } from "../../gateway/telemetry/budgets.ts";
import { pausePlan, resumePlan } from "../../electron/cloud-pause.ts";
import { applyEvent, applyLoadedModels, applySnapshot, CLOUD_TYPES, disconnected, emptyLabState, type LabState } from "../../electron/lab-state.ts";
import { toMenuTemplate } from "../../electron/menu-template.ts";
import { TOOLTIP_MAX, trayModel, type TrayAction, type TrayMenuItem, type TrayOptions } from "../../electron/tray-model.ts";

const OPTS: TrayOptions = { apiBase: "http://127.0.0.1:4000/v1", cloudPaused: false, startAtLogin: false, startAtLoginSupported: true };

type Json = Record<string, unknown>;

function provider(name: string, type: string, over: Json = {}, deployments: Json[] = [{ id: `${name}/m`, model_group: "chat", model: "m", overflow: false, breaker_state: "closed" }]): Json {
  return {
    name,
    type,
    source: "config",
    enabled: true,
    available: true,
    unavailable_reason: null,
    health: { healthy: true, detail: "ok", checked_at: "2026-12-01T10:00:00.000Z", latency_ms: 3 },
    in_flight: 0,
    requests: 0,
    failures: 0,
    deployments,
    ...over,
  };
}

/** The README's lab: an Ollama, a supervised llama-server, the embedded engine and a cloud overflow. */
function labSnapshot(): Json {
  return {
    data: [
      provider("ollama", "ollama"),
      provider("lab-llama", "llamacpp"),
      provider("embedded", "embedded"),
      provider("openai", "openai", {}, [{ id: "openai/gpt-4o-mini", model_group: "chat", model: "gpt-4o-mini", overflow: true, breaker_state: "closed" }]),
    ],
    groups: [{ name: "chat", strategy: "weighted", discovered: false, fallbacks: [], panic: false, enabled_deployments: 4, breaker_not_open: 4, deployments: 4 }],
    servers: [],
    processes: [
      { name: "lab-llama", provider: "lab-llama", state: "running", pid: 4242, restarts: 0, recentCrashes: 0, lastError: null, command: "llama-server", args: [], base_url: "http://127.0.0.1:8080", on_demand: false, since: "2026-12-01T10:00:00.000Z", last_exit: null, failure: null },
    ],
    gpus: [],
    budgets: [{ kind: "tier", name: "cloud", measure: "daily_usd", limit: 5, value: 1.2, exceeded: false }],
  };
}

function healthyLab(): LabState {
  let s = applySnapshot(emptyLabState(), labSnapshot());
  s = applyLoadedModels(s, {
    data: [
      { provider: "ollama", type: "ollama", can_unload: true, model: "qwen2.5:7b", size_bytes: 1, vram_bytes: 1, context_length: 4096, expires_at: null },
      { provider: "lab-llama", type: "llamacpp", can_unload: false, model: "llama-3.2-3b", size_bytes: null, vram_bytes: null, context_length: null, expires_at: null },
    ],
  });
  return applyEvent(s, "summary", {
    requests_per_s: 3.5,
    ttfb_p50_ms: 100,
    ttfb_p95_ms: 300,
    providers: { ollama: { requests_per_s: 2.5, ttfb_p95_ms: 240.4 }, "lab-llama": { requests_per_s: 1, ttfb_p95_ms: 410 } },
  });
}

const find = (items: TrayMenuItem[], id: string): TrayMenuItem | undefined => {
  for (const i of items) {
    if (i.id === id) return i;
    const inner = i.submenu && find(i.submenu, id);
    if (inner) return inner;
  }
  return undefined;
};
const must = (items: TrayMenuItem[], id: string): TrayMenuItem => {
  const i = find(items, id);
  if (!i) throw new Error(`no menu item ${id}; ids: ${JSON.stringify(items.map((x) => x.id))}`);
  return i;
};

describe("tray icon and tooltip per lab state", () => {
  it("healthy: every provider answers, nothing open, no budget crossed", () => {
    const m = trayModel(healthyLab(), OPTS);
    expect(m.icon).toBe("healthy");
    expect(m.tooltip).toBe("labgate: healthy · 4 providers · 3.5 req/s");
    expect(must(m.menu, "headline").label).toBe("labgate: all healthy");
  });

  it("degraded: a provider down says which one", () => {
    const s = applyEvent(healthyLab(), "provider", { change: "health", provider: "openai", healthy: false, detail: "HTTP 503 from upstream" });
    const m = trayModel(s, OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toBe("labgate: degraded: openai down");
    expect(must(m.menu, "provider:openai").label).toBe("✕ openai (openai)");
    expect(must(m.menu, "provider:openai:detail").label).toBe("HTTP 503 from upstream");
  });

  it("degraded: an open circuit breaker, with a reset in the provider's menu", () => {
    const s = applyEvent(healthyLab(), "breaker", { provider: "ollama", deployment: "ollama/m", from: "closed", to: "open" });
    const m = trayModel(s, OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toContain("breaker open on ollama");
    expect(must(m.menu, "provider:ollama:status").label).toMatch(/^breaker open · /);
    expect(must(m.menu, "provider:ollama:reset").action).toEqual({ kind: "reset-breakers", deployments: ["ollama/m"] });
  });

  it("degraded: a model group in panic", () => {
    const m = trayModel(applyEvent(healthyLab(), "panic", { model: "chat", panic: true, enabled_deployments: 4, breaker_not_open: 0 }), OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toBe("labgate: degraded: panic in chat");
  });

  it("degraded: a budget crossed", () => {
    const m = trayModel(applyEvent(healthyLab(), "budget", { kind: "tier", name: "cloud", measure: "daily_usd", limit: 5, value: 5.3, exceeded: true }), OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toBe("labgate: degraded: budget cloud crossed");
  });

  it("degraded: a supervised server that crashed and is being restarted", () => {
    const m = trayModel(applyEvent(healthyLab(), "process", { name: "lab-llama", from: "running", to: "backoff", reason: "exited with code 3" }), OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toBe("labgate: degraded: lab-llama crashed, restarting");
  });

  it("down: no provider can serve (all down or off)", () => {
    let s = healthyLab();
    for (const name of ["ollama", "lab-llama", "embedded"]) s = applyEvent(s, "provider", { change: "health", provider: name, healthy: false, detail: "connection refused" });
    s = applyEvent(s, "provider", { change: "enabled", provider: "openai", enabled: false });
    const m = trayModel(s, OPTS);
    expect(m.icon).toBe("down");
    expect(m.tooltip).toBe("labgate: down: no provider can serve");
  });

  it("down: the gateway is not reachable; the menu keeps Open dashboard and Quit but no providers", () => {
    const m = trayModel(disconnected(healthyLab(), "gateway not reachable"), OPTS);
    expect(m.icon).toBe("down");
    expect(m.tooltip).toBe("labgate: down: gateway not reachable");
    expect(find(m.menu, "provider:ollama")).toBeUndefined();
    expect(must(m.menu, "quit").enabled).toBe(true);
    expect(must(m.menu, "open-dashboard").enabled).toBe(true);
    expect(must(m.menu, "pause-cloud").enabled).toBe(false);
  });

  it("a tooltip with many problems stays one line within Windows' 127 characters", () => {
    let s = healthyLab();
    for (const name of ["ollama", "lab-llama", "embedded"]) s = applyEvent(s, "provider", { change: "health", provider: name, healthy: false, detail: "x".repeat(300) });
    s = applyEvent(s, "budget", { kind: "provider", name: "openai-with-a-very-long-name-".repeat(5), measure: "daily_usd", limit: 1, value: 2, exceeded: true });
    const m = trayModel(s, OPTS);
    expect(m.tooltip.length).toBeLessThanOrEqual(TOOLTIP_MAX);
    expect(m.tooltip).not.toContain("\n");
    expect(m.tooltip).toMatch(/\(\+\d+ more\)$/);
  });
});

describe("a provider's submenu per kind of provider", () => {
  it("cloud: status line, Enabled, no server controls and no models", () => {
    const p = must(trayModel(healthyLab(), OPTS).menu, "provider:openai");
    expect(p.submenu!.map((i) => i.label)).toEqual(["healthy · p95 TTFB – · 0.0 req/s", "Enabled"]);
    expect(must(p.submenu!, "provider:openai:enabled")).toMatchObject({ type: "checkbox", checked: true, action: { kind: "set-provider-enabled", provider: "openai", enabled: false } });
  });

  it("Ollama: its traffic on the status line and Unload for each loaded model", () => {
    const p = must(trayModel(healthyLab(), OPTS).menu, "provider:ollama");
    expect(p.label).toBe("✓ ollama (ollama)");
    expect(p.submenu![0]!.label).toBe("healthy · p95 TTFB 240 ms · 2.5 req/s");
    expect(must(p.submenu!, "provider:ollama:unload:qwen2.5:7b").action).toEqual({ kind: "unload", provider: "ollama", model: "qwen2.5:7b" });
    expect(find(p.submenu!, "provider:ollama:start")).toBeUndefined();
  });

  it("Ollama after the model was unloaded: the Unload item is gone", () => {
    const s = applyEvent(healthyLab(), "model", { change: "unloaded", provider: "ollama", model: "qwen2.5:7b" });
    const p = must(trayModel(s, OPTS).menu, "provider:ollama");
    expect(find(p.submenu!, "provider:ollama:unload:qwen2.5:7b")).toBeUndefined();
    expect(must(p.submenu!, "provider:ollama:no-models").enabled).toBe(false);
  });

  it("supervised llama-server: Start / Stop / Restart enabled by its state; its model cannot be unloaded", () => {
    const running = must(trayModel(healthyLab(), OPTS).menu, "provider:lab-llama").submenu!;
    expect(must(running, "provider:lab-llama:process").label).toBe("Server: running (pid 4242)");
    expect(running.filter((i) => ["Start", "Stop", "Restart"].includes(i.label)).map((i) => [i.label, i.enabled])).toEqual([
      ["Start", false],
      ["Stop", true],
      ["Restart", true],
    ]);
    expect(must(running, "provider:lab-llama:stop").action).toEqual({ kind: "process", name: "lab-llama", op: "stop" });
    expect(must(running, "provider:lab-llama:loaded:llama-3.2-3b")).toMatchObject({ enabled: false, label: "llama-3.2-3b (loaded; stop the server to free it)" });

    const failed = applyEvent(healthyLab(), "process", { name: "lab-llama", from: "backoff", to: "failed", reason: "crashed 3 times in 60 s" });
    const items = must(trayModel(failed, OPTS).menu, "provider:lab-llama").submenu!;
    expect(must(items, "provider:lab-llama:process").label).toBe("Server: failed: crashed 3 times in 60 s");
    expect(must(items, "provider:lab-llama:status").label).toMatch(/^failed · /);
    expect([must(items, "provider:lab-llama:start").enabled, must(items, "provider:lab-llama:stop").enabled]).toEqual([true, false]);
  });

  it("embedded engine: no server controls; says when nothing is loaded", () => {
    const p = must(trayModel(healthyLab(), OPTS).menu, "provider:embedded");
    expect(p.submenu!.map((i) => i.id)).toEqual(["provider:embedded:status", "provider:embedded:enabled", "provider:embedded:sep-models", "provider:embedded:no-models"]);
  });

  it("a disabled provider: unchecked, and the status says disabled", () => {
    const s = applyEvent(healthyLab(), "provider", { change: "enabled", provider: "ollama", enabled: false });
    const p = must(trayModel(s, OPTS).menu, "provider:ollama");
    expect(p.label).toBe("– ollama (ollama)");
    expect(must(p.submenu!, "provider:ollama:enabled")).toMatchObject({ checked: false, action: { enabled: true } });
    expect(p.submenu![0]!.label).toMatch(/^disabled · /);
  });
});

describe("the rest of the menu", () => {
  it("has the app's items in order, and each click carries its action", () => {
    const m = trayModel(healthyLab(), { ...OPTS, cloudPaused: true, startAtLogin: true });
    const top = m.menu.filter((i) => i.type !== "separator" && !i.id.startsWith("provider:")).map((i) => i.label);
    expect(top).toEqual(["labgate: all healthy", "Pause cloud overflow", "Open dashboard", "Copy API base URL (http://127.0.0.1:4000/v1)", "Start at login", "Quit labgate"]);
    expect(must(m.menu, "pause-cloud")).toMatchObject({ checked: true, action: { kind: "pause-cloud", pause: false } });
    expect(must(m.menu, "start-at-login")).toMatchObject({ checked: true, action: { kind: "start-at-login", enable: false } });
  });

  it("offers to start the gateway again only once the app gave up restarting it", () => {
    expect(find(trayModel(healthyLab(), OPTS).menu, "restart-gateway")).toBeUndefined();
    const m = trayModel(disconnected(healthyLab(), "the gateway exited with code 1; it crashed 6 times in 120 s, so it is not restarted again"), { ...OPTS, gatewayGaveUp: true });
    expect(m.icon).toBe("down");
    expect(must(m.menu, "restart-gateway")).toMatchObject({ label: "Start the gateway again", enabled: true, action: { kind: "restart-gateway" } });
  });

  it("Start at login is shown disabled where Electron cannot set it (Linux)", () => {
    expect(must(trayModel(healthyLab(), { ...OPTS, startAtLoginSupported: false }).menu, "start-at-login").enabled).toBe(false);
  });

  it("becomes Electron's template: checkboxes, submenus, and a click dispatches the item's action", () => {
    const got: TrayAction[] = [];
    const template = toMenuTemplate(trayModel(healthyLab(), OPTS).menu, (a) => got.push(a));
    const ollama = template.find((t) => t.id === "provider:ollama")!;
    const submenu = ollama.submenu as { id?: string; click?: () => void; type?: string; checked?: boolean }[];
    const enabled = submenu.find((t) => t.id === "provider:ollama:enabled")!;
    expect([enabled.type, enabled.checked]).toEqual(["checkbox", true]);
    enabled.click!();
    submenu.find((t) => t.id === "provider:ollama:unload:qwen2.5:7b")!.click!();
    (template.find((t) => t.id === "quit")!.click as () => void)();
    expect(got).toEqual([
      { kind: "set-provider-enabled", provider: "ollama", enabled: false },
      { kind: "unload", provider: "ollama", model: "qwen2.5:7b" },
      { kind: "quit" },
    ]);
    expect(template.find((t) => t.id === "headline")!.click).toBeUndefined();
  });
});

describe("Pause cloud overflow", () => {
  it("turns off the enabled cloud and all-overflow providers and turns back on only those", () => {
    let s = applySnapshot(emptyLabState(), {
      ...labSnapshot(),
      data: [
        ...(labSnapshot().data as Json[]),
        provider("anthropic", "anthropic", { enabled: false }),
        provider("spare-vllm", "vllm", {}, [{ id: "spare/m", model_group: "chat", model: "m", overflow: true, breaker_state: "closed" }]),
      ],
    });
    const paused = pausePlan(s);
    expect(paused).toEqual(["openai", "spare-vllm"]); // anthropic was off already: it stays off afterwards
    for (const name of paused) s = applyEvent(s, "provider", { change: "enabled", provider: name, enabled: false });
    expect(pausePlan(s)).toEqual([]);
    expect(resumePlan(paused, s)).toEqual(["openai", "spare-vllm"]);
  });

  it("counts as cloud exactly what the gateway's budgets count as cloud", () => {
    expect([...CLOUD_TYPES].sort()).toEqual([...CLOUD_PROVIDER_TYPES].sort());
  });
});
