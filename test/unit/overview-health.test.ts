// renderer/src/pages/overview/health.ts: a provider tile's colour and word. The gateway
// spells a probing breaker "half_open" (gateway/router/circuit-breaker.ts): such a
// provider is degraded, not healthy.
import { describe, expect, it } from "vitest";
import { breakerSummary, providerHealth } from "../../renderer/src/pages/overview/health.ts";
import type { BreakerState, DeploymentView, GroupView, ProviderView } from "../../renderer/src/types.ts";

function deployment(id: string, breaker_state: BreakerState): DeploymentView {
  return { id, model_group: "chat", model: "tiny", tier: null, overflow: false, weight: 1, breaker_state, error_rate: 0, in_flight: 0, ewma_ttfb_ms: null, requests: 0, failures: 0 };
}

function provider(deployments: DeploymentView[], extra: Partial<ProviderView> = {}): ProviderView {
  return {
    name: "alpha",
    type: "openai-compatible",
    source: "config",
    enabled: true,
    available: true,
    unavailable_reason: null,
    health: { healthy: true, checked_at: "2026-12-01T00:00:00.000Z" },
    in_flight: 0,
    requests: 0,
    failures: 0,
    deployments,
    ...extra,
  };
}

const group: GroupView = { name: "chat", strategy: "simple-shuffle", discovered: false, fallbacks: [], panic: false, enabled_deployments: 1, breaker_not_open: 1, deployments: 1 };
const quiet = { errors: 0, windowS: 10 };

describe("overview provider health", () => {
  it("is healthy with closed breakers and no failures", () => {
    expect(providerHealth(provider([deployment("chat#0", "closed")]), [group], quiet)).toEqual({ health: "ok", label: "Healthy", reasons: [] });
  });

  it("is degraded while a breaker is half-open (the gateway's half_open), and says so in words", () => {
    const v = providerHealth(provider([deployment("chat#0", "closed"), deployment("chat#1", "half_open")]), [group], quiet);
    expect(v.health).toBe("degraded");
    expect(v.label).toBe("Degraded");
    expect(v.reasons).toEqual(["Breaker half-open for chat (tiny)."]);
    expect(breakerSummary(provider([deployment("chat#0", "closed"), deployment("chat#1", "half_open")]))).toBe("1 closed · 1 half-open");
  });

  it("is degraded with an open breaker, a group in panic or recent failures", () => {
    expect(providerHealth(provider([deployment("chat#0", "open")]), [group], quiet).reasons).toEqual(["Breaker open for chat (tiny)."]);
    expect(providerHealth(provider([deployment("chat#0", "closed")]), [{ ...group, panic: true }], quiet).health).toBe("degraded");
    expect(providerHealth(provider([deployment("chat#0", "closed")]), [group], { errors: 2, windowS: 10 }).reasons).toEqual(["2 failed requests in the last 10 s."]);
  });

  it("is down when unavailable or its probe failed, off when disabled", () => {
    expect(providerHealth(provider([deployment("chat#0", "half_open")], { enabled: false }), [group], quiet).health).toBe("off");
    expect(providerHealth(provider([], { available: false, unavailable_reason: "secret missing" }), [group], quiet)).toMatchObject({ health: "down", reasons: ["secret missing"] });
    expect(providerHealth(provider([], { health: { healthy: false, detail: "ECONNREFUSED", checked_at: "x" } }), [group], quiet).reasons).toEqual(["Health check failed: ECONNREFUSED"]);
  });
});
