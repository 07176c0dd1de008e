// A client that goes away cancels the upstream request and frees the
// deployment; a slow first byte with no first-byte timeout keeps the client's
// connection warm (early commit + keep-alive) and still ends cleanly.
import { describe, expect, it } from "vitest";
import type { FakeOpenAI, FakeOpenAIOptions } from "../fixtures/fake-openai.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";
import type { RequestLogRow } from "../../gateway/store/request-log.ts";

const lab = useLab();

async function setup(fakeOpts: FakeOpenAIOptions, extra: Record<string, unknown> = {}): Promise<{ up: FakeOpenAI; gw: TestGateway }> {
  const up = await lab.fake(fakeOpts);
  const gw = await lab.gateway({
    providers: { up: { type: "openai-compatible", base_url: up.v1 } },
    models: { m: { deployments: [{ provider: "up", model: "x" }] } },
    ...extra,
  });
  return { up, gw };
}

function send(gw: TestGateway, stream: boolean, signal?: AbortSignal): Promise<Response> {
  return fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream }),
    signal,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | false, ms = 3000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = probe();
    if (v) return v;
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function inFlight(gw: TestGateway): number {
  return gw.gateway.router.allDeployments().reduce((n, d) => n + d.inFlight, 0) + gw.gateway.registry.list().reduce((n, p) => n + p.inFlight, 0);
}

function lastRow(gw: TestGateway): RequestLogRow | undefined {
  gw.gateway.requestLog.flush();
  return gw.gateway.requestLog.recent(1)[0];
}

describe("client disconnects", () => {
  it("mid-stream: the upstream stream is cancelled, the deployment freed, the row says 499 cancelled, the breaker is not blamed", async () => {
    const { up, gw } = await setup({ reply: Array.from({ length: 20 }, (_, i) => ` w${i}`), chunkDelayMs: 50 });
    const ac = new AbortController();
    const res = await send(gw, true, ac.signal);
    const reader = res.body!.getReader();
    let got = "";
    while (!got.includes("w1")) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    await until("the upstream stream to be cancelled", () => up.abortedStreams === 1);
    await until("the deployment to be free", () => inFlight(gw) === 0);
    const row = await until("the log row", () => lastRow(gw));
    expect([row.status, row.error_class]).toEqual([499, "cancelled"]);
    const d = gw.gateway.router.group("m")!.deployments[0]!;
    expect([d.failures, d.breaker.state]).toEqual([0, "closed"]);
  });

  it("before the first byte of a stream: the upstream request is dropped and the deployment freed at once", async () => {
    // The upstream never answers, so only the client's going away can free the deployment (no elapsed-time check).
    const { up, gw } = await setup({});
    up.fault = { kind: "hang" };
    const ac = new AbortController();
    const pending = send(gw, true, ac.signal).catch((e: unknown) => e);
    await until("the upstream to get the request", () => up.hits() === 1);
    ac.abort();
    await pending;
    await until("the deployment to be free", () => inFlight(gw) === 0);
    const row = await until("the log row", () => lastRow(gw));
    expect([row.status, row.error_class]).toEqual([499, "cancelled"]);
    expect(gw.gateway.router.group("m")!.deployments[0]!.failures).toBe(0);
  });

  it("while waiting for a JSON answer: freed at once, logged as 499", async () => {
    const { up, gw } = await setup({});
    up.fault = { kind: "hang" }; // as above: only the cancellation can free it
    const ac = new AbortController();
    const pending = send(gw, false, ac.signal).catch((e: unknown) => e);
    await until("the upstream to get the request", () => up.hits() === 1);
    ac.abort();
    await pending;
    await until("the deployment to be free", () => inFlight(gw) === 0);
    const row = await until("the log row", () => lastRow(gw));
    expect([row.status, row.error_class]).toEqual([499, "cancelled"]);
  });

  it("during a retry backoff: no further upstream request is made", async () => {
    const { up, gw } = await setup({}, { router: { retries: 2 } });
    up.faultNext({ kind: "status", status: 429, retryAfter: "2", type: "rate_limit_error" }, 3);
    const ac = new AbortController();
    const pending = send(gw, false, ac.signal).catch((e: unknown) => e);
    await until("the first attempt", () => up.hits() === 1);
    await sleep(100);
    ac.abort();
    await pending;
    const row = await until("the log row", () => lastRow(gw));
    expect([row.status, row.error_class]).toEqual([499, "cancelled"]);
    await sleep(2200);
    expect(up.hits()).toBe(1);
    // Not counted as a failed fallback either.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).not.toMatch(/labgate_fallbacks_total\{[^}]*result="failure"\} [1-9]/);
  });
});

describe("slow first byte without a first-byte timeout", () => {
  it("the client gets keep-alive comments, then the whole answer", async () => {
    const { gw } = await setup({ firstByteDelayMs: 700, reply: ["slow", " but", " sure"] }, { server: { sse_keepalive_s: 0.2 } });
    // That the headers go out before the upstream's first byte is shown without timing by the next test,
    // whose upstream never sends one; here: the comments come first and the whole answer follows.
    const res = await send(gw, true);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^: keep-alive\n\n/);
    const content = text
      .split("\n\n")
      .filter((b) => b.startsWith("data: {"))
      .map((b) => JSON.parse(b.slice(6)) as { choices: { delta: { content?: string } }[] })
      .map((c) => c.choices[0]?.delta.content ?? "")
      .join("");
    expect(content).toBe("slow but sure");
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    await until("the deployment to be free", () => inFlight(gw) === 0);
    const row = await until("the log row", () => lastRow(gw));
    expect(row.status).toBe(200);
    expect(row.ttfb_ms).toBeGreaterThan(600);
  });

  it("an upstream that then never answers ends the committed stream with an error event, not silence", async () => {
    const { up, gw } = await setup({}, { server: { sse_keepalive_s: 0.2 }, router: { timeout_s: 0.8, retries: 0 } });
    up.fault = { kind: "hang" };
    const res = await send(gw, true);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^: keep-alive/);
    const last = text.trim().split("\n\n").at(-1)!;
    expect(last.startsWith("data: ")).toBe(true);
    const err = JSON.parse(last.slice(6)) as { error: { message: string; code: string } };
    expect(err.error.code).toBe("timeout");
    await until("the deployment to be free", () => inFlight(gw) === 0);
    const row = await until("the log row", () => lastRow(gw));
    expect([row.status, row.error_class]).toEqual([504, "timeout"]);
    // The attempt itself is recorded as what it was: no first byte, a timeout.
    expect(row.attempts.map((a) => [a.provider, a.error_class])).toEqual([["up", "timeout"]]);
    expect(row.attempts[0]!.ms).toBeGreaterThan(700);
    expect(gw.gateway.router.group("m")!.deployments[0]!.failures).toBe(1);
  });
});
