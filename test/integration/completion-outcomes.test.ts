// One outcome per request, however it ends, from the completion service: over
// HTTP (JSON, streams, mid-stream failures, clients that go away, unknown models,
// dead upstreams) and for a caller that is not the HTTP API (the batch queue will
// be one), whose requests get log rows, metrics and cost all the same.
import { describe, expect, it } from "vitest";
import type { RequestOutcome } from "../../gateway/completion/outcome.ts";
import { CompletionFailure } from "../../gateway/completion/service.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

async function labWithOutcomes() {
  const up = await lab.fake({ name: "up", chunkDelayMs: 1 });
  const gw = await lab.gateway({
    providers: { a: { type: "openai-compatible", base_url: up.v1 } },
    models: { m: { deployments: [{ provider: "a", model: "x", tier: "local", price: { input_per_1m: 1, output_per_1m: 2 } }] } },
    router: { retries: 0 },
  });
  const outcomes: RequestOutcome[] = [];
  gw.gateway.completions.onOutcome((o) => outcomes.push(o));
  return { up, gw, outcomes };
}

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });

const hi = (extra: Record<string, unknown> = {}) => ({ model: "m", messages: [{ role: "user", content: "hi" }], ...extra });

/** Outcomes arrive when a request ends, which for a stream can be just after the client saw its end. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe("request outcomes", () => {
  it("HTTP requests of every ending give exactly one outcome each, with the id the client saw, and one log row each", async () => {
    const { up, gw, outcomes } = await labWithOutcomes();
    const ids: string[] = [];
    const json = await post(gw.v1, hi());
    ids.push(json.headers.get("x-request-id")!);
    await json.json();
    const stream = await post(gw.v1, hi({ stream: true }));
    ids.push(stream.headers.get("x-request-id")!);
    await stream.text();
    up.faultNext({ kind: "drop_mid_stream", afterChunks: 2 });
    const broken = await post(gw.v1, hi({ stream: true }));
    ids.push(broken.headers.get("x-request-id")!);
    await broken.text();
    const unknown = await post(gw.v1, hi({ model: "nobody-serves-this" }));
    ids.push(unknown.headers.get("x-request-id")!);
    up.faultNext({ kind: "status", status: 500 });
    const failed = await post(gw.v1, hi());
    ids.push(failed.headers.get("x-request-id")!);
    await until(() => outcomes.length >= 5);

    expect(outcomes.map((o) => o.id)).toEqual(ids);
    expect(outcomes.map((o) => [o.status, o.errorClass, o.stream])).toEqual([
      [200, null, false],
      [200, null, true],
      [502, "reset", true],
      [404, "model_not_found", false],
      [502, "server_error", false],
    ]);
    const [ok, streamed] = outcomes;
    expect(ok).toMatchObject({ provider: "a", upstreamModel: "x", tier: "local", model: "m", operation: "chat", panic: false });
    expect(ok!.usage!.total_tokens).toBeGreaterThan(0);
    expect(ok!.costUsd).toBeCloseTo((ok!.usage!.prompt_tokens * 1 + ok!.usage!.completion_tokens * 2) / 1e6, 12);
    expect(streamed!.ttfbMs).toBeGreaterThanOrEqual(0);
    expect(outcomes[3]!.unknownModel).toBe(true);

    gw.gateway.requestLog.flush();
    const rows = gw.gateway.db.prepare("SELECT id, status FROM request_log ORDER BY rowid").all() as { id: string; status: number }[];
    expect(rows.map((r) => r.id)).toEqual(ids);
  });

  it("a client that goes away mid-stream ends as one cancelled outcome", async () => {
    const up = await lab.fake({ name: "slow", reply: Array.from({ length: 50 }, (_, i) => ` w${i}`), chunkDelayMs: 20 });
    const gw = await lab.gateway({ providers: { a: { type: "openai-compatible", base_url: up.v1 } }, models: { m: { deployments: [{ provider: "a", model: "x" }] } } });
    const outcomes: RequestOutcome[] = [];
    gw.gateway.completions.onOutcome((o) => outcomes.push(o));
    const ac = new AbortController();
    const res = await post(gw.v1, hi({ stream: true }), ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await until(() => outcomes.length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(outcomes.map((o) => [o.status, o.errorClass])).toEqual([[499, "cancelled"]]);
  });

  it("a caller other than the HTTP API gets the same outcome, log row, metrics and cost", async () => {
    const { gw, outcomes } = await labWithOutcomes();
    const c = await gw.gateway.completions.complete({ operation: "chat", body: hi(), stream: false, tenant: "batch", signal: new AbortController().signal });
    expect(c.kind).toBe("json");
    const missing = await gw.gateway.completions
      .complete({ operation: "chat", body: hi({ model: "nope" }), stream: false, tenant: "batch", signal: new AbortController().signal })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(CompletionFailure);
    expect((missing as CompletionFailure).status).toBe(404);

    expect(outcomes.map((o) => [o.tenant, o.status])).toEqual([
      ["batch", 200],
      ["batch", 404],
    ]);
    gw.gateway.requestLog.flush();
    const row = gw.gateway.requestLog.get(c.id)!;
    expect(row).toMatchObject({ tenant: "batch", status: 200, provider: "a" });
    expect(row.cost_usd).toBeGreaterThan(0);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/labgate_requests_total\{model="m",provider="a",status="200"\} 1\b/);
    expect(metrics).toMatch(/labgate_requests_total\{model="\(unknown\)",provider="none",status="404"\} 1\b/);
  });
});
