// /admin/analytics through a real gateway: traffic to two fake upstreams (one of which
// fails now and then, so requests fall back to the other), then every route's JSON,
// the admin key, and validation errors in OpenAI's shape.
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab({ env: { ADMIN: "admin-secret", MASTER: "master-secret" } });

async function chat(v1: string, model: string, stream = false): Promise<Response> {
  const res = await fetch(`${v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer master-secret" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi there" }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }),
  });
  await res.arrayBuffer();
  return res;
}

describe("GET /admin/analytics/*", () => {
  it("answers spend, distribution, fallbacks, ttfb and errors for the traffic sent", async () => {
    const A = await lab.fake({ name: "A" });
    const B = await lab.fake({ name: "B" });
    const gw = await lab.gateway({
      server: { master_key: "env:MASTER", admin_key: "env:ADMIN" },
      providers: {
        pa: { type: "openai-compatible", base_url: A.v1 },
        pb: { type: "openai-compatible", base_url: B.v1 },
      },
      models: {
        chat: {
          strategy: "priority",
          deployments: [
            { provider: "pa", model: "a", tier: "local", price: { input_per_1m: 0, output_per_1m: 0 } },
            { provider: "pb", model: "b", tier: "premium", price: { input_per_1m: 1000, output_per_1m: 2000 } },
          ],
        },
        solo: { deployments: [{ provider: "pb", model: "b", tier: "premium", price: { input_per_1m: 1000, output_per_1m: 2000 } }] },
      },
      router: { retries: 0, circuit_breaker: { consecutive_failures: 1000, min_requests: 1000 } },
    });
    // 6 answered by pa; 3 where pa fails and pb answers (fallbacks pa -> pb); 2 where solo's pb fails (errors).
    for (let i = 0; i < 6; i++) expect((await chat(gw.v1, "chat", i % 2 === 0)).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      A.faultNext({ kind: "status", status: 503 });
      expect((await chat(gw.v1, "chat")).status).toBe(200);
    }
    B.faultNext({ kind: "status", status: 500 }, 2);
    for (let i = 0; i < 2; i++) expect((await chat(gw.v1, "solo")).status).toBeGreaterThanOrEqual(500);

    const get = async (path: string, key = "admin-secret"): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${gw.url}/admin/analytics/${path}`, { headers: { authorization: `Bearer ${key}` } });
      return { status: res.status, body: await res.json() };
    };
    // The outcome of the last request may still be on its way to the log.
    let spend: any;
    for (let i = 0; i < 50; i++) {
      spend = (await get("spend")).body;
      if (spend.series.reduce((a: number, s: any) => a + s.total.requests, 0) === 11) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(spend.object).toBe("analytics.spend");
    expect(spend.bucket).toBe("hour");
    // The last 24 hours, rounded out to whole hours: the current one included.
    expect([24, 25]).toContain(spend.buckets.length);
    expect(spend.to - spend.from).toBe(spend.buckets.length * 3_600_000);
    expect(spend.to).toBeGreaterThan(Date.now() - 60_000);
    const pb = spend.series.filter((s: any) => s.key.provider === "pb");
    // Tier is the answering deployment's: the failed requests have none.
    expect(pb.map((s: any) => [s.key.tier, s.total.requests]).sort()).toEqual([["premium", 3], [null, 2]].sort());
    expect(pb.reduce((a: number, s: any) => a + s.total.cost_usd, 0)).toBeGreaterThan(0);
    expect(spend.series.find((s: any) => s.key.provider === "pa").key).toEqual({ provider: "pa", model: "chat", tenant: expect.any(String), tier: "local" });
    for (const s of spend.series) expect(s.points.map((p: any) => p.t)).toEqual(spend.buckets);

    const dist = (await get("distribution?bucket=day")).body;
    expect(dist.bucket).toBe("day");
    const reqs = Object.fromEntries(dist.series.map((s: any) => [s.key.provider, s.total.requests]));
    expect(reqs).toEqual({ pa: 6, pb: 5 });

    const fb = (await get("fallbacks")).body;
    expect(fb.data).toEqual([{ from: "pa", to: "pb", count: 3, success: 3, failure: 0, success_rate: 1 }]);

    const t = (await get("ttfb")).body;
    const paTtfb = t.series.find((s: any) => s.key.provider === "pa");
    expect(paTtfb.total.count).toBe(6);
    expect(paTtfb.total.p50_ms).toBeGreaterThan(0);
    expect(paTtfb.total.p95_ms).toBeGreaterThanOrEqual(paTtfb.total.p50_ms);
    expect(t.precision).toBeCloseTo(0.044, 3);

    const errs = (await get("errors")).body;
    expect(errs.series.map((s: any) => [s.key.provider, s.key.error_class, s.total.errors])).toEqual([["pb", "server_error", 2]]);

    const grouped = (await get("spend?group_by=tier&bucket=day")).body;
    expect(Object.fromEntries(grouped.series.map((s: any) => [String(s.key.tier), s.total.requests]))).toEqual({ local: 6, premium: 3, null: 2 });

    // The admin key guards it; the master key does not open it when an admin key is set.
    expect((await get("spend", "master-secret")).status).toBe(401);
    // Validation errors in OpenAI's shape.
    const bad = await get("spend?bucket=week");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: "invalid_request_error", code: "invalid_value", param: "bucket" });
    const badFrom = await get(`ttfb?from=${encodeURIComponent("last tuesday")}`);
    expect(badFrom.status).toBe(400);
    expect(badFrom.body.error.param).toBe("from");
  });
});
