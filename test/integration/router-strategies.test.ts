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
    // The upstreams hold requests (hang) until the client gives up, so "still running" never depends on how
    // long a slow answer takes against how fast the next requests are sent.
    const [a, b] = [await fake(), await fake()];
    const gw = await gateway({
      providers: { a: openai(a), b: openai(b) },
      models: { m: { strategy: "least-busy", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
    });
    const inFlight = async (): Promise<Record<string, number>> => {
      const body = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; in_flight: number }[] };
      return Object.fromEntries(body.data.map((p) => [p.name, p.in_flight]));
    };
    const held = new AbortController();
    const hold = (n: number): Promise<unknown> =>
      Promise.all(
        Array.from({ length: n }, () =>
          fetch(`${gw.v1}/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
            signal: held.signal,
          }).catch((e: unknown) => e),
        ),
      );

    // 10 at once, all still running when the last arrives: 5 and 5 (random would rarely be this even).
    a.fault = b.fault = { kind: "hang" };
    const ten = hold(10);
    await expect.poll(() => a.hits() + b.hits(), { timeout: 5000 }).toBe(10);
    expect([a.hits(), b.hits()]).toEqual([5, 5]);
    expect(await inFlight()).toEqual({ a: 5, b: 5 });
    held.abort();
    await ten;
    await expect.poll(inFlight, { timeout: 3000 }).toEqual({ a: 0, b: 0 });

    // One long request occupies one deployment; the quick ones that follow all go to the other.
    const longHeld = new AbortController();
    const long = fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      signal: longHeld.signal,
    }).catch((e: unknown) => e);
    await expect.poll(() => a.hits() + b.hits(), { timeout: 3000 }).toBe(11);
    a.fault = b.fault = { kind: "none" }; // the long request keeps hanging; new ones are quick
    const occupied = a.hits() === 6 ? "a" : "b";
    const free = occupied === "a" ? "b" : "a";
    expect(await inFlight()).toEqual({ [occupied]: 1, [free]: 0 });
    const quick: string[] = [];
    for (let i = 0; i < 10; i++) quick.push((await chat(gw, "m")).provider!);
    expect(quick).toEqual(Array(10).fill(free));
    longHeld.abort();
    await long;
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
