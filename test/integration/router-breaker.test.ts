// The circuit breaker as an operator sees it: it opens after consecutive
// failures, the upstream then gets no traffic, it half-opens after the cooldown,
// a good probe closes it; GET /admin/providers shows it and POST
// /admin/circuit-breaker/reset closes it at once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const COOLDOWN_MS = 500;

async function chat(gw: TestGateway, stream = false): Promise<{ status: number; provider: string | null; fallback: string | null; attempts: { provider: string; error_class: string | null }[] }> {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-debug-mode": "true" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream }),
  });
  await res.text();
  return {
    status: res.status,
    provider: res.headers.get("x-routed-provider"),
    fallback: res.headers.get("x-is-fallback"),
    attempts: JSON.parse(res.headers.get("x-labgate-attempts") ?? "[]") as { provider: string; error_class: string | null }[],
  };
}

async function breakerStates(gw: TestGateway): Promise<Record<string, string>> {
  const res = await fetch(`${gw.url}/admin/providers`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { name: string; deployments: { model_group: string; breaker_state: string }[] }[] };
  const out: Record<string, string> = {};
  for (const p of body.data) for (const d of p.deployments) if (d.model_group === "m") out[p.name] = d.breaker_state;
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("circuit breaker", () => {
  let A: FakeOpenAI;
  let B: FakeOpenAI;
  let gw: TestGateway;

  beforeAll(async () => {
    A = await startFakeOpenAI({ name: "A" });
    B = await startFakeOpenAI({ name: "B" });
    gw = await startGateway(
      JSON.stringify({
        providers: { a: { type: "openai-compatible", base_url: A.v1 }, b: { type: "openai-compatible", base_url: B.v1 } },
        models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
        router: {
          retries: 0,
          circuit_breaker: { consecutive_failures: 3, cooldown_s: COOLDOWN_MS / 1000, min_requests: 1000, half_open_probes: 1, panic_threshold: 0 },
        },
      }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await A?.close();
    await B?.close();
  });

  /** Fail A until its breaker opens; returns when it opened. */
  async function openA(): Promise<number> {
    A.fault = { kind: "status", status: 500 };
    for (let i = 0; i < 3; i++) {
      const r = await chat(gw, i === 1);
      expect([r.status, r.provider, r.fallback]).toEqual([200, "b", "true"]);
      expect(r.attempts.map((x) => [x.provider, x.error_class])).toEqual([
        ["a", "server_error"],
        ["b", null],
      ]);
    }
    const openedAt = performance.now();
    expect(await breakerStates(gw)).toEqual({ a: "open", b: "closed" });
    return openedAt;
  }

  it("opens after consecutive failures, sends the deployment no traffic while open, half-opens after the cooldown and closes on a good probe", async () => {
    const openedAt = await openA();
    const aHits = A.hits();
    // While open: A gets nothing at all, B answers directly.
    let n = 0;
    while (performance.now() - openedAt < COOLDOWN_MS * 0.6) {
      const r = await chat(gw, n % 2 === 0);
      expect([r.status, r.provider]).toEqual([200, "b"]);
      expect(r.attempts.map((x) => x.provider)).toEqual(["b"]);
      n++;
    }
    expect(n).toBeGreaterThan(2);
    expect(A.hits()).toBe(aHits);

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/labgate_circuit_breaker_state\{deployment="m#0",provider="a"\} 2/);

    // After the cooldown: half-open; A has recovered; one probe closes the breaker.
    await sleep(Math.max(0, COOLDOWN_MS - (performance.now() - openedAt)) + 50);
    expect(await breakerStates(gw)).toEqual({ a: "half_open", b: "closed" });
    A.fault = { kind: "none" };
    const probe = await chat(gw);
    expect([probe.status, probe.provider, probe.fallback]).toEqual([200, "a", "false"]);
    expect(A.hits()).toBe(aHits + 1);
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    for (let i = 0; i < 3; i++) expect((await chat(gw)).provider).toBe("a");
  });

  it("a failed probe opens it again for another cooldown", async () => {
    const openedAt = await openA();
    await sleep(Math.max(0, COOLDOWN_MS - (performance.now() - openedAt)) + 50);
    const aHits = A.hits();
    const probe = await chat(gw); // A still failing
    expect([probe.status, probe.provider]).toEqual([200, "b"]);
    expect(probe.attempts.map((x) => [x.provider, x.error_class])).toEqual([
      ["a", "server_error"],
      ["b", null],
    ]);
    expect(await breakerStates(gw)).toEqual({ a: "open", b: "closed" });
    expect((await chat(gw)).attempts.map((x) => x.provider)).toEqual(["b"]);
    expect(A.hits()).toBe(aHits + 1);
    // Leave it open for the next test.
  });

  it("POST /admin/circuit-breaker/reset closes it at once (no cooldown wait)", async () => {
    if ((await breakerStates(gw)).a !== "open") await openA();
    A.fault = { kind: "none" };
    const aHits = A.hits();
    expect((await chat(gw)).provider).toBe("b");
    const res = await fetch(`${gw.url}/admin/circuit-breaker/reset`, { method: "POST" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reset: number }).reset).toBeGreaterThanOrEqual(2);
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    const r = await chat(gw);
    expect([r.provider, r.fallback]).toEqual(["a", "false"]);
    expect(A.hits()).toBe(aHits + 1);
  });

  it("reset can target one deployment, and says 404 for an unknown one", async () => {
    await openA();
    const one = await fetch(`${gw.url}/admin/circuit-breaker/reset?deployment=${encodeURIComponent("m#0")}`, { method: "POST" });
    expect(await one.json()).toEqual({ reset: 1 });
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    const unknown = await fetch(`${gw.url}/admin/circuit-breaker/reset?deployment=nope%230`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("deployment_not_found");
    A.fault = { kind: "none" };
  });

  it("with panic off and every deployment open the client gets a clean 503 that says why", async () => {
    A.fault = { kind: "status", status: 500 };
    B.fault = { kind: "status", status: 500 };
    try {
      for (let i = 0; i < 3; i++) expect((await chat(gw)).status).toBe(502);
      expect(await breakerStates(gw)).toEqual({ a: "open", b: "open" });
      const hits = A.hits() + B.hits();
      const res = await fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { message: string; code: string; type: string } };
      expect(body.error.code).toBe("no_healthy_deployment");
      expect(body.error.message).toMatch(/2 circuit open/);
      expect(A.hits() + B.hits()).toBe(hits);
    } finally {
      A.fault = { kind: "none" };
      B.fault = { kind: "none" };
      await fetch(`${gw.url}/admin/circuit-breaker/reset`, { method: "POST" });
    }
  });
});
