// 200 concurrent requests, streaming and not, while three upstreams fail at
// random (reset before the answer, 5xx, dropped mid-stream): every request gets
// exactly one answer, complete or a clean OpenAI-shaped error; the log has
// exactly one row per request; nothing leaks and the gateway stays healthy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const N = 200;
const REPLY = ["The", " quick", " brown", " fox."];

interface Outcome {
  i: number;
  stream: boolean;
  status: number;
  requestId: string | null;
  /** "ok": complete answer; "error": clean error (JSON error body, or an error event ending the stream). */
  kind: "ok" | "error";
}

function checkJson(i: number, status: number, text: string): Outcome["kind"] {
  const body = JSON.parse(text) as Record<string, any>; // exactly one JSON document, or this throws
  if (status === 200) {
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0].message.content).toBe(REPLY.join(""));
    return "ok";
  }
  expect(status, `request ${i}`).toBeGreaterThanOrEqual(400);
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
  expect("code" in body.error).toBe(true);
  return "error";
}

function checkStream(i: number, text: string): Outcome["kind"] {
  const events = text
    .split("\n\n")
    .filter((b) => b.trim() !== "")
    .filter((b) => !b.startsWith(":")) // keep-alive comments
    .map((b) => {
      expect(b.startsWith("data: "), `request ${i}: ${b}`).toBe(true);
      const data = b.slice(6);
      return data === "[DONE]" ? "[DONE]" : (JSON.parse(data) as Record<string, any>);
    });
  const last = events.at(-1);
  const chunks = events.filter((e): e is Record<string, any> => typeof e === "object" && "choices" in e);
  // One upstream's chunks only: never two answers spliced together.
  expect(new Set(chunks.map((c) => c.id)).size, `request ${i}`).toBeLessThanOrEqual(1);
  const content = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  if (last === "[DONE]") {
    expect(events.filter((e) => e === "[DONE]")).toHaveLength(1);
    expect(events.some((e) => typeof e === "object" && "error" in e)).toBe(false);
    expect(content).toBe(REPLY.join(""));
    return "ok";
  }
  // Ended by one error event, after a strict prefix of the answer.
  expect(typeof last === "object" && "error" in last, `request ${i} ended without [DONE] or an error: ${text.slice(-200)}`).toBe(true);
  expect((last as Record<string, any>).error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
  expect(events.filter((e) => typeof e === "object" && "error" in e)).toHaveLength(1);
  expect(REPLY.join("").startsWith(content)).toBe(true);
  expect(content).not.toBe(REPLY.join(""));
  return "error";
}

describe("200 concurrent requests against failing upstreams", () => {
  let fakes: FakeOpenAI[];
  let gw: TestGateway;

  beforeAll(async () => {
    // Each fake draws its faults from its own seeded sequence, so a failure can be replayed.
    const common = { reply: REPLY, chunkDelayMs: 2, firstByteDelayMs: 5, faultRate: 0.3 };
    fakes = [
      await startFakeOpenAI({ ...common, name: "a", seed: 101, randomFault: { kind: "reset" } }),
      await startFakeOpenAI({ ...common, name: "b", seed: 202, randomFault: { kind: "status", status: 503 } }),
      await startFakeOpenAI({ ...common, name: "c", seed: 303, randomFault: { kind: "drop_mid_stream", afterChunks: 2 } }),
    ];
    gw = await startGateway(
      JSON.stringify({
        providers: Object.fromEntries(fakes.map((f, i) => [`p${i}`, { type: "openai-compatible", base_url: f.v1 }])),
        models: { m: { deployments: fakes.map((_, i) => ({ provider: `p${i}`, model: "x" })) } },
        router: { retries: 2, retry_backoff_ms: 20, retry_backoff_max_ms: 100, circuit_breaker: { consecutive_failures: 8, error_rate_threshold: 0.6, min_requests: 20, cooldown_s: 0.2 } },
      }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all((fakes ?? []).map((f) => f.close()));
  });

  it("every request gets exactly one answer, the log exactly one row each, and the gateway stays healthy", async () => {
    const db = gw.gateway.db;
    gw.gateway.requestLog.flush();
    const rowsBefore = (db.prepare("SELECT COUNT(*) AS n FROM request_log").get() as { n: number }).n;

    const outcomes = await Promise.all(
      Array.from({ length: N }, async (_, i): Promise<Outcome> => {
        const stream = i % 2 === 0;
        const res = await fetch(`${gw.v1}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `request ${i}` }], stream }),
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        const isSse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
        const kind = isSse ? checkStream(i, text) : checkJson(i, res.status, text);
        if (isSse) expect(stream).toBe(true);
        return { i, stream, status: res.status, requestId: res.headers.get("x-request-id"), kind };
      }),
    );

    expect(outcomes).toHaveLength(N);
    const ids = outcomes.map((o) => o.requestId);
    expect(ids.every(Boolean)).toBe(true);
    expect(new Set(ids).size).toBe(N);
    const ok = outcomes.filter((o) => o.kind === "ok").length;
    // Three deployments and two retries: most requests survive the faults.
    expect(ok).toBeGreaterThan(N * 0.7);
    // The faults really happened.
    const faultsSeen = fakes.reduce((n, f) => n + f.hits(), 0) - ok;
    expect(faultsSeen).toBeGreaterThan(20);

    // Exactly one log row per request (rows of streams land just after their last byte).
    let rows: { id: string; status: number; error_class: string | null }[] = [];
    for (let t = 0; t < 100; t++) {
      gw.gateway.requestLog.flush();
      rows = db.prepare(`SELECT id, status, error_class FROM request_log WHERE id IN (${ids.map(() => "?").join(",")})`).all(...ids) as typeof rows;
      if (rows.length >= N) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    gw.gateway.requestLog.flush();
    expect(rows).toHaveLength(N);
    expect((db.prepare("SELECT COUNT(*) AS n FROM request_log").get() as { n: number }).n - rowsBefore).toBe(N);
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const o of outcomes) {
      const row = byId.get(o.requestId!)!;
      if (o.kind === "ok") expect([row.status, row.error_class]).toEqual([200, null]);
      else {
        expect(row.status).not.toBe(200);
        expect(row.error_class).toBeTruthy();
        if (!o.stream) expect(row.status).toBe(o.status);
      }
    }

    // Nothing leaked: no request still counted in flight anywhere.
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; in_flight: number; deployments: { in_flight: number }[] }[] };
    expect(providers.data.map((p) => [p.name, p.in_flight, ...p.deployments.map((d) => d.in_flight)])).toEqual([
      ["p0", 0, 0],
      ["p1", 0, 0],
      ["p2", 0, 0],
    ]);

    // Still healthy and serving.
    const health = await fetch(`${gw.url}/health`);
    expect(health.status).toBe(200);
    for (const f of fakes) f.options.faultRate = 0;
    await fetch(`${gw.url}/admin/circuit-breaker/reset`, { method: "POST" });
    for (const stream of [false, true]) {
      const res = await fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "after" }], stream }),
      });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(stream ? checkStream(-1, text) : checkJson(-1, 200, text)).toBe("ok");
    }
  });
});
