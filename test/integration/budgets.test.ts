// Costs and budgets through the gateway: a local deployment priced by its hardware's
// hourly cost, a cloud provider whose daily budget is crossed (said once in /metrics
// and the live events; with block_overflow, no more cloud traffic today while the
// local deployment keeps serving).
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";
import { openSse } from "../fixtures/sse-client.ts";

const lab = useLab();

const chat = (url: string, model: string) =>
  fetch(`${url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, messages: [{ role: "user", content: "one two three" }] }) }).then(
    async (r) => ({ status: r.status, provider: r.headers.get("x-routed-provider"), body: (await r.json()) as { error?: { message: string; code: string } } }),
  );

describe("costs and budgets", () => {
  it("hourly_cost charges each request its busy time", async () => {
    const local = await lab.fake({ name: "local", firstByteDelayMs: 20 });
    const gw = await lab.gateway({
      providers: { box: { type: "openai-compatible", base_url: local.v1 } },
      models: { l: { deployments: [{ provider: "box", model: "x", tier: "local", hourly_cost: 3.6 }] } },
    });
    expect((await chat(gw.v1, "l")).status).toBe(200);
    gw.gateway.requestLog.flush();
    const row = gw.gateway.db.prepare("SELECT cost_usd, total_ms FROM request_log").get() as { cost_usd: number; total_ms: number };
    // $3.60 an hour is $1e-6 a millisecond, for a request that ran alone.
    expect(row.cost_usd).toBeCloseTo(row.total_ms / 1e6, 12);
    expect(row.cost_usd).toBeGreaterThan(0);
  });

  it("a cloud provider past its daily budget: once in /metrics and the events, and with block_overflow no more cloud today", async () => {
    const local = await lab.fake({ name: "local" });
    const cloud = await lab.fake({ name: "cloud" });
    const gw = await lab.gateway({
      providers: { box: { type: "openai-compatible", base_url: local.v1 }, cloud: { type: "openai", base_url: cloud.v1 } },
      models: {
        l: { deployments: [{ provider: "box", model: "x", tier: "local" }] },
        c: { deployments: [{ provider: "cloud", model: "x", tier: "premium", price: { input_per_1m: 1000, output_per_1m: 1000 } }] },
      },
      budgets: { providers: { cloud: { daily_usd: 0.02 } }, on_exceed: "block_overflow" },
    });
    const events = await openSse(`${gw.url}/admin/events`);
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const r = await chat(gw.v1, "c");
      if (r.status !== 200) {
        expect(r.status).toBe(503);
        expect(r.body.error!.message).toMatch(/budget exceeded/);
        break;
      }
      served++;
    }
    // Each answer costs (prompt + completion tokens) × $1,000 / 1M: the budget goes within a few requests.
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(20);
    const hits = cloud.hits();
    expect((await chat(gw.v1, "c")).status).toBe(503);
    expect(cloud.hits()).toBe(hits);
    expect((await chat(gw.v1, "l")).status).toBe(200); // the lab's own keeps serving

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/budget_exceeded\{kind="provider",name="cloud",measure="daily_usd"\} 1/);
    expect(metrics).toMatch(/budget_limit\{kind="provider",name="cloud",measure="daily_usd"\} 0.02/);
    await events.waitFor((e) => e.event === "budget");
    expect(events.events.filter((e) => e.event === "budget")).toHaveLength(1);
    expect(events.events.find((e) => e.event === "budget")!.data).toMatchObject({ kind: "provider", name: "cloud", measure: "daily_usd", limit: 0.02, exceeded: true });
    events.close();
  });
});
