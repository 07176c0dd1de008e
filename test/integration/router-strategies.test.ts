// Routing strategies through a real gateway and real loopback upstreams: the
// traffic each upstream actually receives.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

async function chat(gw: TestGateway, model: string, opts: { stream?: boolean } = {}): Promise<{ status: number; provider: string | null; fallback: string | null; body: string }> {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], stream: opts.stream ?? false }),
  });
  const body = await res.text();
  return { status: res.status, provider: res.headers.get("x-routed-provider"), fallback: res.headers.get("x-is-fallback"), body };
}

/** n requests, `concurrency` at a time; returns how many each provider answered. */
async function load(gw: TestGateway, model: string, n: number, concurrency: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await chat(gw, model);
      expect(r.status).toBe(200);
      counts[r.provider!] = (counts[r.provider!] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

const openai = (f: FakeOpenAI) => ({ type: "openai-compatible", base_url: f.v1 });
const { fake, gateway } = useLab();

describe("weighted", () => {
  let gw: TestGateway;
  let up: Record<string, FakeOpenAI>;
  beforeAll(async () => {
    up = { openai: await startFakeOpenAI({ name: "openai" }), azure: await startFakeOpenAI({ name: "azure" }), anthropic: await startFakeOpenAI({ name: "anthropic" }) };
    gw = await startGateway(
      JSON.stringify({
        providers: { openai: openai(up.openai!), azure: openai(up.azure!), anthropic: openai(up.anthropic!) },
        models: {
          "gpt-4-turbo": {
            strategy: "weighted",
            deployments: [
              { provider: "openai", model: "gpt-4-turbo", weight: 60 },
              { provider: "azure", model: "gpt-4-turbo", weight: 25 },
              { provider: "anthropic", model: "claude-3-opus-20240229", weight: 15 },
            ],
          },
        },
      }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all(Object.values(up ?? {}).map((f) => f.close()));
  });

  it("60/25/15 over 2,000 requests: each upstream's share within 5 points of its weight", async () => {
    const counts = await load(gw, "gpt-4-turbo", 2000, 16);
    const hits = { openai: up.openai!.hits(), azure: up.azure!.hits(), anthropic: up.anthropic!.hits() };
    // What the headers say is what the upstreams saw.
    expect(hits).toEqual({ openai: counts.openai ?? 0, azure: counts.azure ?? 0, anthropic: counts.anthropic ?? 0 });
    expect(hits.openai + hits.azure + hits.anthropic).toBe(2000);
    expect(Math.abs(hits.openai / 2000 - 0.6)).toBeLessThan(0.05);
    expect(Math.abs(hits.azure / 2000 - 0.25)).toBeLessThan(0.05);
    expect(Math.abs(hits.anthropic / 2000 - 0.15)).toBeLessThan(0.05);
    // Each upstream got the model its deployment names.
    expect(up.anthropic!.requests.at(-1)?.body?.model).toBe("claude-3-opus-20240229");
  });
});

describe("priority", () => {
  it("the first healthy deployment in listed order takes everything; the next one when it is disabled", async () => {
    const [a, b, c] = [await fake(), await fake(), await fake()];
    const gw = await gateway({
      providers: { first: openai(a), second: openai(b), third: openai(c) },
      models: { m: { strategy: "priority", deployments: [{ provider: "first", model: "x" }, { provider: "second", model: "x" }, { provider: "third", model: "x" }] } },
    });
    expect(await load(gw, "m", 30, 4)).toEqual({ first: 30 });
    expect(await (await fetch(`${gw.url}/admin/providers/first/disable`, { method: "POST" })).json()).toEqual({ name: "first", enabled: false });
    expect(await load(gw, "m", 30, 4)).toEqual({ second: 30 });
    expect([a.hits(), b.hits(), c.hits()]).toEqual([30, 30, 0]);
  });
});

describe("least-busy", () => {
  it("requests in flight spread evenly, and a new request goes where nothing is running", async () => {
    const slow = { firstByteDelayMs: 500 };
    const [a, b] = [await fake(slow), await fake(slow)];
    const gw = await gateway({
      providers: { a: openai(a), b: openai(b) },
      models: { m: { strategy: "least-busy", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
    });
    // 10 at once, all still running when the last arrives: 5 and 5 (random would rarely be this even).
    const r = await Promise.all(Array.from({ length: 10 }, () => chat(gw, "m")));
    const counts = { a: r.filter((x) => x.provider === "a").length, b: r.filter((x) => x.provider === "b").length };
    expect(counts).toEqual({ a: 5, b: 5 });

    // One long request occupies one deployment; the quick ones that follow all go to the other.
    a.options.firstByteDelayMs = 600;
    b.options.firstByteDelayMs = 600;
    const long = chat(gw, "m");
    await new Promise((res) => setTimeout(res, 50));
    a.options.firstByteDelayMs = 0; // the long request keeps sleeping; new ones are quick
    b.options.firstByteDelayMs = 0;
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; in_flight: number }[] };
    const occupied = providers.data.filter((p) => p.in_flight > 0).map((p) => p.name);
    expect(occupied).toHaveLength(1);
    const free = occupied[0] === "a" ? "b" : "a";
    const quick: string[] = [];
    for (let i = 0; i < 10; i++) quick.push((await chat(gw, "m")).provider!);
    expect(quick).toEqual(Array(10).fill(free));
    expect((await long).provider).toBe(occupied[0]);
  });
});

describe("latency", () => {
  it("an upstream with a slow first byte gets less traffic (EWMA of TTFB)", async () => {
    const [fast, slow] = [await fake({ firstByteDelayMs: 5 }), await fake({ firstByteDelayMs: 250 })];
    const gw = await gateway({
      providers: { fast: openai(fast), slow: openai(slow) },
      models: { m: { strategy: "latency", deployments: [{ provider: "slow", model: "x" }, { provider: "fast", model: "x" }] } },
    });
    const counts = await load(gw, "m", 40, 1);
    // Each is measured once, then the fast one takes the rest.
    expect(counts.slow).toBe(1);
    expect(counts.fast).toBe(39);
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; deployments: { ewma_ttfb_ms: number }[] }[] };
    const ewma = Object.fromEntries(providers.data.map((p) => [p.name, p.deployments[0]!.ewma_ttfb_ms]));
    expect(ewma.slow).toBeGreaterThan(200);
    expect(ewma.fast).toBeLessThan(ewma.slow! / 2);
  });
});

describe("usage", () => {
  it("traffic follows RPM headroom: a deployment with 10x the limit takes ~10x the requests, and nobody hits 429", async () => {
    const [big, small] = [await fake(), await fake()];
    const gw = await gateway({
      providers: { big: openai(big), small: openai(small) },
      models: { m: { strategy: "usage", deployments: [{ provider: "small", model: "x", rpm: 10 }, { provider: "big", model: "x", rpm: 100 }] } },
    });
    const counts = await load(gw, "m", 55, 1);
    expect((counts.big ?? 0) + (counts.small ?? 0)).toBe(55);
    expect(counts.big).toBeGreaterThanOrEqual(49);
    expect(counts.big).toBeLessThanOrEqual(51);
  });
});

describe("cost", () => {
  it("the cheapest healthy deployment first; the next cheapest when it is down, never the premium one", async () => {
    const [premium, standard, budget] = [await fake(), await fake(), await fake()];
    const gw = await gateway({
      providers: { premium: openai(premium), standard: openai(standard), budget: openai(budget) },
      models: {
        m: {
          strategy: "cost",
          deployments: [
            { provider: "premium", model: "x", price: { input_per_1m: 10, output_per_1m: 30 } },
            { provider: "standard", model: "x", price: { input_per_1m: 1, output_per_1m: 2 } },
            { provider: "budget", model: "x", price: { input_per_1m: 0.1, output_per_1m: 0.2 } },
          ],
        },
      },
      router: { retries: 0 },
    });
    expect(await load(gw, "m", 20, 4)).toEqual({ budget: 20 });
    budget.fault = { kind: "status", status: 503 };
    const r = await chat(gw, "m");
    expect([r.status, r.provider, r.fallback]).toEqual([200, "standard", "true"]);
    expect(premium.hits()).toBe(0);
  });
});
