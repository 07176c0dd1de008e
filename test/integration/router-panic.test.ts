// Panic mode through the gateway, as a lab sees it on its worst day: two
// deployments failing half their requests must not turn into a total outage,
// a dead group answers fast with one call per deployment, a single dead
// deployment is left alone while the other serves, and panic ends by itself.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import type { FakeOpenAI } from "../fixtures/fake-openai.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

interface Answer {
  status: number;
  body: { object?: string; error?: { message: string; type: string; code: string | null } };
  provider: string | null;
  attempts: { provider: string; error_class: string | null }[];
}

async function chat(gw: TestGateway, model = "m"): Promise<Answer> {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-debug-mode": "true" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
  return {
    status: res.status,
    body: (await res.json()) as Answer["body"],
    provider: res.headers.get("x-routed-provider"),
    attempts: JSON.parse(res.headers.get("x-labgate-attempts") ?? "[]") as Answer["attempts"],
  };
}

const concurrently = (gw: TestGateway, n: number, model = "m"): Promise<Answer[]> => Promise.all(Array.from({ length: n }, () => chat(gw, model)));

function expectOpenAIError(a: Answer): void {
  expect(Object.keys(a.body)).toEqual(["error"]);
  expect(a.body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
  expect("code" in a.body.error!).toBe(true);
}

interface GroupView {
  name: string;
  panic: boolean;
  enabled_deployments: number;
  breaker_not_open: number;
}

async function admin(gw: TestGateway): Promise<{ groups: GroupView[]; breakers: Record<string, string> }> {
  const body = (await (await fetch(`${gw.url}/admin/providers`)).json()) as {
    data: { name: string; deployments: { model_group: string; breaker_state: string }[] }[];
    groups: GroupView[];
  };
  const breakers: Record<string, string> = {};
  for (const p of body.data) for (const d of p.deployments) if (d.model_group === "m") breakers[p.name] = d.breaker_state;
  return { groups: body.groups, breakers };
}

const panicOf = async (gw: TestGateway, model = "m"): Promise<boolean | undefined> => (await admin(gw)).groups.find((g) => g.name === model)?.panic;

function twoDeployments(a: FakeOpenAI | string, b: FakeOpenAI | string, router: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const url = (x: FakeOpenAI | string) => (typeof x === "string" ? x : x.v1);
  return {
    providers: { a: { type: "openai-compatible", base_url: url(a) }, b: { type: "openai-compatible", base_url: url(b) }, ...((extra.providers as object) ?? {}) },
    models: { m: { deployments: [{ provider: "a", model: "x", weight: 50 }, { provider: "b", model: "x", weight: 50 }], ...((extra.m as object) ?? {}) }, ...((extra.models as object) ?? {}) },
    router: { retries: 2, ...router },
  };
}

/** A loopback port with nothing listening on it: connections are refused. */
async function closedPort(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return `http://127.0.0.1:${port}/v1`;
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("panic mode", () => {
  it("two deployments failing half their requests: 200 concurrent requests, at least 80% answered, at most 4 upstream calls each", async () => {
    const flaky = { faultRate: 0.5, randomFault: { kind: "status", status: 500 } as const };
    const A = await lab.fake({ name: "A", seed: 11, ...flaky });
    const B = await lab.fake({ name: "B", seed: 22, ...flaky });
    // Everything at its defaults but retries: the breakers will open, as they did for the user.
    const gw = await lab.gateway(twoDeployments(A, B));
    const answers = await concurrently(gw, 200);
    const ok = answers.filter((a) => a.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(160);
    for (const a of ok) expect(a.body.object).toBe("chat.completion");
    for (const a of answers.filter((x) => x.status !== 200)) {
      expect(a.status).toBeGreaterThanOrEqual(500);
      expectOpenAIError(a);
    }
    expect(A.hits() + B.hits()).toBeLessThanOrEqual(4 * 200);
    // And no single request cost the upstreams more than 4 calls (retries 2 would allow 6 without panic's bound).
    expect(Math.max(...answers.map((a) => a.attempts.length))).toBeLessThanOrEqual(4);

    // The breakers did open, and panic is what kept the group serving: it shows in the log and in /metrics.
    gw.gateway.requestLog.flush();
    const inPanic = (gw.gateway.db.prepare("SELECT COUNT(*) AS n FROM request_log WHERE panic = 1").get() as { n: number }).n;
    expect(inPanic).toBeGreaterThan(0);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metric(metrics, "labgate_panic_requests_total", 'model="m"')).toBe(inPanic);
  });

  it("both deployments answering 500 to everything: every request gets a 503 naming the reason, after one call per deployment", async () => {
    const A = await lab.fake({ name: "A" });
    const B = await lab.fake({ name: "B" });
    A.fault = { kind: "status", status: 500 };
    B.fault = { kind: "status", status: 500 };
    const gw = await lab.gateway(twoDeployments(A, B));
    // Until both breakers are open (5 failures in a row each).
    for (let i = 0; i < 10 && !(await panicOf(gw)); i++) await chat(gw);
    expect(await panicOf(gw)).toBe(true);

    const before = A.hits() + B.hits();
    const answers = await concurrently(gw, 100);
    for (const a of answers) {
      expect(a.status).toBe(503);
      expectOpenAIError(a);
      expect(a.body.error!.code).toBe("no_healthy_deployment");
      expect(a.body.error!.message).toMatch(/2 of 2 have their circuit breaker open/);
      // One attempt per deployment and no retry pass: nothing waits on a backoff.
      expect(a.attempts.map((x) => x.provider).sort()).toEqual(["a", "b"]);
    }
    expect(A.hits() + B.hits() - before).toBe(200);
  });

  it("both deployments refusing connections: 503 after one attempt each; with a fallback group, its answer", async () => {
    const spare = await lab.fake({ name: "spare" });
    const gw = await lab.gateway(
      twoDeployments(await closedPort(), await closedPort(), {}, {
        providers: { spare: { type: "openai-compatible", base_url: spare.v1 } },
        models: { safe: { deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }], fallbacks: ["backup"] }, backup: { deployments: [{ provider: "spare", model: "x" }] } },
      }),
    );
    for (let i = 0; i < 10 && !(await panicOf(gw)); i++) await chat(gw);
    expect(await panicOf(gw)).toBe(true);
    for (const a of await concurrently(gw, 50)) {
      expect([a.status, a.body.error?.code]).toEqual([503, "no_healthy_deployment"]);
      expect(a.attempts.map((x) => x.error_class)).toEqual(["connect", "connect"]);
    }
    // The group "safe" shares the dead deployments' providers but has breakers of its own; once they open too,
    // each request makes one attempt per deployment and then gets the fallback's answer.
    for (let i = 0; i < 10 && !(await panicOf(gw, "safe")); i++) await chat(gw, "safe");
    const before = spare.hits();
    for (const a of await concurrently(gw, 50, "safe")) {
      expect([a.status, a.provider]).toEqual([200, "spare"]);
      expect(a.attempts.map((x) => x.provider)).toHaveLength(3);
    }
    expect(spare.hits() - before).toBe(50);
  });

  it("one of two dead: the healthy one takes all traffic, the dead one is left alone, and the group is not in panic", async () => {
    const A = await lab.fake({ name: "A" });
    const B = await lab.fake({ name: "B" });
    A.fault = { kind: "status", status: 500 };
    const gw = await lab.gateway(twoDeployments(A, B));
    for (let i = 0; i < 20 && (await admin(gw)).breakers.a !== "open"; i++) expect((await chat(gw)).status).toBe(200);
    expect((await admin(gw)).breakers).toEqual({ a: "open", b: "closed" });
    const aHits = A.hits();
    const answers = await concurrently(gw, 200);
    expect(answers.map((a) => `${a.status} ${a.provider}`)).toEqual(Array(200).fill("200 b"));
    // The default cooldown (30 s) has not passed: not even a probe went to A.
    expect(A.hits()).toBe(aHits);
    expect(await panicOf(gw)).toBe(false);
  });

  it("router.total_timeout_s ends a request whose upstream hangs, however many retries it has left", async () => {
    const A = await lab.fake({ name: "A" });
    A.fault = { kind: "hang" };
    const gw = await lab.gateway(twoDeployments(A, A, { retries: 5, timeout_s: 0.3, total_timeout_s: 0.5, retry_backoff_ms: 10, retry_backoff_max_ms: 10 }));
    const a = await chat(gw);
    expect(a.status).toBe(504);
    expectOpenAIError(a);
    // Each attempt may take 0.3 s of the 0.5 s: at most two, far from the 12 that 5 retries over 2 deployments allow.
    expect(a.attempts.length).toBeLessThanOrEqual(2);
    expect(a.attempts.at(-1)!.error_class).toBe("timeout");
  });

  it("recovery: once the flaky upstreams turn healthy, the half-open probes close the breakers and the group leaves panic", async () => {
    const flaky = { faultRate: 0.5, randomFault: { kind: "status", status: 500 } as const };
    const A = await lab.fake({ name: "A", seed: 3, ...flaky });
    const B = await lab.fake({ name: "B", seed: 4, ...flaky });
    const gw = await lab.gateway(twoDeployments(A, B, { circuit_breaker: { cooldown_s: 1 } }));
    for (let i = 0; i < 20 && !(await panicOf(gw)); i++) await concurrently(gw, 20);
    expect(await panicOf(gw)).toBe(true);
    expect(metric(await (await fetch(`${gw.url}/metrics`)).text(), "labgate_model_group_panic", 'model="m"')).toBe(1);

    A.options.faultRate = 0;
    B.options.faultRate = 0;
    let view = await admin(gw);
    for (let i = 0; i < 100 && !(view.breakers.a === "closed" && view.breakers.b === "closed"); i++) {
      await concurrently(gw, 4);
      await new Promise((r) => setTimeout(r, 50));
      view = await admin(gw);
    }
    expect(view.breakers).toEqual({ a: "closed", b: "closed" });
    expect(view.groups.find((g) => g.name === "m")).toMatchObject({ panic: false, enabled_deployments: 2, breaker_not_open: 2 });
    expect(metric(await (await fetch(`${gw.url}/metrics`)).text(), "labgate_model_group_panic", 'model="m"')).toBe(0);
    const after = await concurrently(gw, 20);
    expect(after.every((a) => a.status === 200)).toBe(true);
  });
});
