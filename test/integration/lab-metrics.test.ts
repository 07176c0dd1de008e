// The lab's metric names and labels after real traffic through the gateway: the
// series its alerts and boards query, with values that match what was sent, and
// no user text in any label.
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

/** The value of one series (exact labels, in exposition order), or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("lab metric names", () => {
  it("router_*, billing_*, provider_up and batch_* series carry what the traffic did", async () => {
    const local = await lab.fake({ name: "local" });
    const cloud = await lab.fake({ name: "cloud" });
    const gw = await lab.gateway({
      providers: { local: { type: "openai-compatible", base_url: local.v1 }, cloud: { type: "openai-compatible", base_url: cloud.v1 } },
      models: {
        m: {
          strategy: "priority",
          deployments: [
            { provider: "local", model: "x", weight: 3, tier: "local", price: { input_per_1m: 0, output_per_1m: 0 } },
            { provider: "cloud", model: "x", weight: 1, tier: "premium", price: { input_per_1m: 2, output_per_1m: 8 } },
          ],
        },
      },
      router: { retries: 0 },
    });
    const chat = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "one two three" }], ...body }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { usage?: { prompt_tokens: number; completion_tokens: number } } }));

    const a = await chat({}); // local answers
    const b = await chat({ user: "alice@example.com" }, {}); // attributed by the user field
    local.faultNext({ kind: "status", status: 500 });
    const c = await chat({}, { "x-labgate-tenant": "team-a" }); // local fails, cloud answers: a fallback that succeeded
    local.faultNext({ kind: "status", status: 500 });
    cloud.faultNext({ kind: "status", status: 500 });
    const d = await chat({}); // both fail: a fallback that failed, and an error
    const e = await chat({ model: 'evil"model{with}labels' }); // unknown model
    expect([a.status, b.status, c.status, d.status, e.status]).toEqual([200, 200, 200, 502, 404]);

    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(value(text, 'router_requests_total{provider="local",model="m",status="200"}')).toBe(2);
    expect(value(text, 'router_requests_total{provider="cloud",model="m",status="200"}')).toBe(1);
    expect(value(text, 'router_requests_total{provider="cloud",model="m",status="502"}')).toBe(1);
    expect(value(text, 'router_requests_total{provider="none",model="(unknown)",status="404"}')).toBe(1);
    expect(value(text, 'router_errors_total{provider="cloud",reason="server_error"}')).toBe(1);
    expect(value(text, 'router_errors_total{provider="none",reason="model_not_found"}')).toBe(1);
    expect(value(text, 'router_fallback_total{model="m"}')).toBe(2);
    expect(value(text, 'router_fallback_success_total{model="m"}')).toBe(1);
    expect(value(text, "router_requests_attributed_total")).toBe(2);
    expect(value(text, 'router_configured_weight{provider="local",model="m"}')).toBe(3);
    expect(value(text, 'router_configured_weight{provider="cloud",model="m"}')).toBe(1);
    expect(value(text, 'router_circuit_breaker_state{provider="local",deployment="m#0"}')).toBe(0);
    expect(value(text, 'provider_up{provider="local"}')).toBe(1);
    expect(value(text, 'router_latency_seconds_count{component="routing"}')).toBe(4); // not the request whose attempts all failed
    expect(value(text, 'router_latency_seconds_count{component="gateway"}')).toBe(3);
    expect(value(text, 'router_ttfb_seconds_count{provider="local",model="m"}')).toBe(2);
    expect(value(text, 'router_request_duration_seconds_count{provider="cloud",model="m"}')).toBe(1);

    // Billing: tokens by tier and direction, and cost only where priced (premium: $2 in, $8 out per 1M).
    const cu = c.body.usage!;
    expect(value(text, 'billing_tokens_total{route_tier="premium",provider="cloud",direction="input"}')).toBe(cu.prompt_tokens);
    expect(value(text, 'billing_tokens_total{route_tier="premium",provider="cloud",direction="output"}')).toBe(cu.completion_tokens);
    expect(value(text, 'billing_tokens_total{route_tier="local",provider="local",direction="input"}')).toBe(a.body.usage!.prompt_tokens + b.body.usage!.prompt_tokens);
    expect(value(text, 'billing_cost_total{route_tier="premium",provider="cloud"}')).toBeCloseTo((cu.prompt_tokens * 2 + cu.completion_tokens * 8) / 1e6, 12);
    expect(value(text, 'billing_cost_total{route_tier="local",provider="local"}')).toBeUndefined();
    expect(value(text, "batch_queue_depth")).toBe(0);
    expect(value(text, "batch_completed_total")).toBe(0);
    expect(value(text, "batch_completed_success_total")).toBe(0);

    // No user text in any label.
    expect(text).not.toContain("alice");
    expect(text).not.toContain("team-a");
    expect(text).not.toContain("evil");

    // A provider turned off by the operator is not up.
    await fetch(`${gw.url}/admin/providers/cloud/disable`, { method: "POST" });
    expect(value(await (await fetch(`${gw.url}/metrics`)).text(), 'provider_up{provider="cloud"}')).toBe(0);
  });
});
