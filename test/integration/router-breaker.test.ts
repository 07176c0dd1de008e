// The circuit breaker as an operator sees it: it opens after consecutive
// failures, the upstream then gets no traffic, it half-opens after the cooldown,
// a good probe closes it and a failed one re-opens it; GET /admin/providers shows
// it and POST /admin/circuit-breaker/reset closes it at once.
//
// Each test has its own gateway and fakes (useLab closes them after it), so no
// test depends on what another left behind. Time is not waited for: the breakers
// read the wall clock through Date.now, which these tests fake (Date only; timers
// and performance.now stay real), so the cooldown is long and passes when a test
// moves the clock past it. Nothing here depends on how fast the machine is.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FakeOpenAI } from "../fixtures/fake-openai.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

const COOLDOWN_MS = 60_000;

const lab = useLab();

// Installed before each gateway is built, so its router and breakers read this clock.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Moves the breakers' clock on (no real time passes). */
function advanceClock(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

interface Answer {
  status: number;
  provider: string | null;
  fallback: string | null;
  attempts: { provider: string; error_class: string | null }[];
}

async function chat(gw: TestGateway, stream = false): Promise<Answer> {
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
    attempts: JSON.parse(res.headers.get("x-labgate-attempts") ?? "[]") as Answer["attempts"],
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

/** Polls /admin/providers (bounded) until the breakers are in these states. */
async function untilStates(gw: TestGateway, want: Record<string, string>): Promise<void> {
  await expect.poll(() => breakerStates(gw), { timeout: 3000, interval: 20 }).toEqual(want);
}

interface Setup {
  A: FakeOpenAI;
  B: FakeOpenAI;
  gw: TestGateway;
}

/** Two fakes behind one priority group; panic off, so an open breaker really keeps traffic away. */
async function setup(): Promise<Setup> {
  const A = await lab.fake({ name: "A" });
  const B = await lab.fake({ name: "B" });
  const gw = await lab.gateway({
    providers: { a: { type: "openai-compatible", base_url: A.v1 }, b: { type: "openai-compatible", base_url: B.v1 } },
    models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
    router: {
      retries: 0,
      circuit_breaker: { consecutive_failures: 3, cooldown_s: COOLDOWN_MS / 1000, min_requests: 1000, half_open_probes: 1, panic_threshold: 0 },
    },
  });
  return { A, B, gw };
}

/** Fails A until its breaker opens (B answers each time); A keeps failing. */
async function openA({ A, gw }: Setup): Promise<void> {
  A.fault = { kind: "status", status: 500 };
  for (let i = 0; i < 3; i++) {
    const r = await chat(gw, i === 1);
    expect([r.status, r.provider, r.fallback]).toEqual([200, "b", "true"]);
    expect(r.attempts.map((x) => [x.provider, x.error_class])).toEqual([
      ["a", "server_error"],
      ["b", null],
    ]);
  }
  await untilStates(gw, { a: "open", b: "closed" });
}

describe("circuit breaker", () => {
  it("opens after consecutive failures and sends the deployment no traffic for the whole cooldown", async () => {
    const s = await setup();
    const { A, gw } = s;
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    await openA(s);
    const aHits = A.hits();
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/labgate_circuit_breaker_state\{deployment="m#0",provider="a"\} 2/);

    // While open (up to the last millisecond of the cooldown): A gets nothing at all, B answers directly.
    for (const step of [0, COOLDOWN_MS / 2, COOLDOWN_MS / 2 - 1]) {
      advanceClock(step);
      for (const stream of [false, true]) {
        const r = await chat(gw, stream);
        expect([r.status, r.provider, r.fallback]).toEqual([200, "b", "false"]);
        expect(r.attempts.map((x) => x.provider)).toEqual(["b"]);
      }
      expect(await breakerStates(gw)).toEqual({ a: "open", b: "closed" });
    }
    expect(A.hits()).toBe(aHits);
  });

  it("half-opens after the cooldown: a failed probe opens it again for another full cooldown, a good one closes it", async () => {
    const s = await setup();
    const { A, gw } = s;
    await openA(s);
    const aHits = A.hits();
    advanceClock(COOLDOWN_MS);
    await untilStates(gw, { a: "half_open", b: "closed" });

    // A still failing: the probe fails, B answers, and the breaker is open again.
    const failed = await chat(gw);
    expect([failed.status, failed.provider]).toEqual([200, "b"]);
    expect(failed.attempts.map((x) => [x.provider, x.error_class])).toEqual([
      ["a", "server_error"],
      ["b", null],
    ]);
    await untilStates(gw, { a: "open", b: "closed" });
    // The new cooldown counts from the failed probe.
    advanceClock(COOLDOWN_MS - 1);
    expect((await chat(gw)).attempts.map((x) => x.provider)).toEqual(["b"]);
    expect(await breakerStates(gw)).toEqual({ a: "open", b: "closed" });
    expect(A.hits()).toBe(aHits + 1);
    advanceClock(1);
    await untilStates(gw, { a: "half_open", b: "closed" });

    // A has recovered: one good probe closes the breaker, and A takes the traffic again.
    A.fault = { kind: "none" };
    const probe = await chat(gw);
    expect([probe.status, probe.provider, probe.fallback]).toEqual([200, "a", "false"]);
    expect(probe.attempts.map((x) => [x.provider, x.error_class])).toEqual([["a", null]]);
    expect(A.hits()).toBe(aHits + 2);
    await untilStates(gw, { a: "closed", b: "closed" });
    for (let i = 0; i < 3; i++) expect((await chat(gw)).provider).toBe("a");
    expect(A.hits()).toBe(aHits + 5);
  });

  it("POST /admin/circuit-breaker/reset closes it at once (no cooldown wait); ?deployment= resets one, 404 for an unknown one", async () => {
    const s = await setup();
    const { A, gw } = s;
    await openA(s);
    A.fault = { kind: "none" };
    const aHits = A.hits();
    expect((await chat(gw)).provider).toBe("b");
    expect(A.hits()).toBe(aHits);

    const res = await fetch(`${gw.url}/admin/circuit-breaker/reset`, { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ reset: 2 });
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    const r = await chat(gw);
    expect([r.provider, r.fallback]).toEqual(["a", "false"]);
    expect(A.hits()).toBe(aHits + 1);

    // Open again, then reset that one deployment by its id.
    await openA(s);
    A.fault = { kind: "none" };
    const one = await fetch(`${gw.url}/admin/circuit-breaker/reset?deployment=${encodeURIComponent("m#0")}`, { method: "POST" });
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ reset: 1 });
    expect(await breakerStates(gw)).toEqual({ a: "closed", b: "closed" });
    expect((await chat(gw)).provider).toBe("a");

    const unknown = await fetch(`${gw.url}/admin/circuit-breaker/reset?deployment=nope%230`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("deployment_not_found");
  });

  it("with panic off and every deployment open the client gets a clean 503 that says why", async () => {
    const { A, B, gw } = await setup();
    A.fault = { kind: "status", status: 500 };
    B.fault = { kind: "status", status: 500 };
    for (let i = 0; i < 3; i++) expect((await chat(gw)).status).toBe(502);
    await untilStates(gw, { a: "open", b: "open" });
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
  });
});
