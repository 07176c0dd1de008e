// Overflow to the cloud, retries with Retry-After, and rpm / max_in_flight
// limits, through a real gateway in front of loopback upstreams.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import type { FakeOpenAIOptions } from "../fixtures/fake-openai.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

interface Answer {
  status: number;
  headers: Headers;
  body: string;
  ms: number;
}

async function chat(gw: TestGateway, model: string, opts: { stream?: boolean } = {}): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], stream: opts.stream ?? false }),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, ms: performance.now() - t0 };
}

/** The row as stored (is_overflow is the raw 0/1 column). */
async function storedRow(gw: TestGateway, id: string | null): Promise<{ is_overflow: number; provider: string; status: number; attempts: string }> {
  expect(id).toBeTruthy();
  for (let i = 0; i < 100; i++) {
    gw.gateway.requestLog.flush();
    const row = gw.gateway.db.prepare("SELECT is_overflow, provider, status, attempts FROM request_log WHERE id = ?").get(id) as
      | { is_overflow: number; provider: string; status: number; attempts: string }
      | undefined;
    if (row) return row;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log row for ${id}`);
}

const { fake, gateway } = useLab({ env: { OPENAI_API_KEY: "sk-test" } });

describe("cloud overflow", () => {
  async function lab(localOpts: FakeOpenAIOptions, deployment: Record<string, unknown> = {}) {
    const local = await fake({ name: "llama", reply: ["local"], ...localOpts });
    const cloud = await fake({ name: "gpt", reply: ["cloud"] });
    const gw = await gateway({
      providers: {
        "llama-cpp": { type: "llamacpp", base_url: local.url },
        openai: { type: "openai", base_url: cloud.v1, api_key: "env:OPENAI_API_KEY" },
      },
      models: {
        chat: {
          deployments: [
            { provider: "llama-cpp", model: "default", tier: "local", max_in_flight: 1, ...deployment },
            { provider: "openai", model: "gpt-4o-mini", tier: "standard", overflow: true },
          ],
        },
      },
      router: { retries: 0 },
    });
    return { local, cloud, gw };
  }

  it("takes no traffic while the local server is free", async () => {
    const { local, cloud, gw } = await lab({});
    for (let i = 0; i < 10; i++) {
      const r = await chat(gw, "chat", { stream: i % 2 === 1 });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-routed-provider")).toBe("llama-cpp");
      expect(r.headers.get("x-is-fallback")).toBe("false");
      expect((await storedRow(gw, r.headers.get("x-request-id"))).is_overflow).toBe(0);
    }
    expect([local.hits(), cloud.hits()]).toEqual([10, 0]);
  });

  it("takes what the saturated local server (max_in_flight: 1) cannot: X-Is-Fallback true, is_overflow=1", async () => {
    const { local, cloud, gw } = await lab({});
    // The local server's one slot is held by a request it never answers until the client gives up, so the
    // overflow does not depend on how long a slow answer takes against how fast the others are sent.
    local.faultNext({ kind: "hang" });
    const ac = new AbortController();
    const held = fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }] }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    await expect.poll(() => local.hits(), { timeout: 3000 }).toBe(1);
    const answers = await Promise.all(Array.from({ length: 3 }, (_, i) => chat(gw, "chat", { stream: i % 2 === 1 })));
    for (const a of answers) {
      expect([a.status, a.headers.get("x-routed-provider"), a.headers.get("x-is-fallback")]).toEqual([200, "openai", "true"]);
      const row = await storedRow(gw, a.headers.get("x-request-id"));
      expect([row.is_overflow, row.provider]).toEqual([1, "openai"]);
    }
    expect([local.hits(), cloud.hits()]).toEqual([1, 3]);

    // Once the local server is free again, it takes the traffic back.
    ac.abort();
    await held;
    await expect.poll(() => gw.gateway.router.group("chat")!.deployments[0]!.inFlight, { timeout: 3000 }).toBe(0);
    const after = await chat(gw, "chat");
    expect([after.status, after.headers.get("x-routed-provider"), after.headers.get("x-is-fallback")]).toEqual([200, "llama-cpp", "false"]);
    const row = await storedRow(gw, after.headers.get("x-request-id"));
    expect([row.is_overflow, row.provider]).toEqual([0, "llama-cpp"]);
    expect([local.hits(), cloud.hits()]).toEqual([2, 3]);
  });

  it("takes the traffic when the local server is disabled, rate-limited or down", async () => {
    const { local, cloud, gw } = await lab({}, { rpm: 1 });
    expect((await chat(gw, "chat")).headers.get("x-routed-provider")).toBe("llama-cpp"); // uses the one rpm
    const limited = await chat(gw, "chat");
    expect([limited.headers.get("x-routed-provider"), limited.headers.get("x-is-fallback")]).toEqual(["openai", "true"]);
    expect((await storedRow(gw, limited.headers.get("x-request-id"))).is_overflow).toBe(1);
    expect([local.hits(), cloud.hits()]).toEqual([1, 1]);

    const { local: local2, cloud: cloud2, gw: gw2 } = await lab({});
    await fetch(`${gw2.url}/admin/providers/llama-cpp/disable`, { method: "POST" });
    const disabled = await chat(gw2, "chat");
    expect([disabled.headers.get("x-routed-provider"), disabled.headers.get("x-is-fallback")]).toEqual(["openai", "true"]);
    await fetch(`${gw2.url}/admin/providers/llama-cpp/enable`, { method: "POST" });
    local2.faultNext({ kind: "reset" });
    const down = await chat(gw2, "chat");
    expect([down.headers.get("x-routed-provider"), down.headers.get("x-is-fallback")]).toEqual(["openai", "true"]);
    expect((await storedRow(gw2, down.headers.get("x-request-id"))).is_overflow).toBe(1);
    expect([local2.hits(), cloud2.hits()]).toEqual([1, 2]);
  });
});

describe("retries", () => {
  it("429 with retry-after: 1, then 200: the request succeeds after waiting about a second", async () => {
    const up = await fake({ reply: ["ok"] });
    const gw = await gateway({ providers: { only: { type: "openai-compatible", base_url: up.v1 } }, models: { m: { deployments: [{ provider: "only", model: "x" }] } } });
    for (const stream of [false, true]) {
      const before = up.hits();
      up.faultNext({ kind: "status", status: 429, retryAfter: "1", type: "rate_limit_error" });
      const r = await chat(gw, "m", { stream });
      expect(r.status).toBe(200);
      expect(r.ms).toBeGreaterThanOrEqual(950);
      expect(up.hits() - before).toBe(2);
      const row = await storedRow(gw, r.headers.get("x-request-id"));
      expect(JSON.parse(row.attempts).map((a: { error_class: string | null }) => a.error_class)).toEqual(["rate_limited", null]);
    }
  });

  it("a 400 is not retried and not sent elsewhere: the upstream sees exactly one request", async () => {
    const [a, b] = [await fake(), await fake()];
    const gw = await gateway({
      providers: { a: { type: "openai-compatible", base_url: a.v1 }, b: { type: "openai-compatible", base_url: b.v1 } },
      models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
      router: { retries: 3 },
    });
    a.faultNext({ kind: "status", status: 400, message: "invalid 'temperature'", type: "invalid_request_error" });
    const client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const err = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(/temperature/);
    expect([a.hits(), b.hits()]).toEqual([1, 0]);
  });

  it("a Retry-After longer than the backoff limit comes straight back to the client as a 429 with Retry-After", async () => {
    const up = await fake();
    const gw = await gateway({ providers: { only: { type: "openai-compatible", base_url: up.v1 } }, models: { m: { deployments: [{ provider: "only", model: "x" }] } } });
    up.faultNext({ kind: "status", status: 429, retryAfter: "60", type: "rate_limit_error" });
    const r = await chat(gw, "m");
    expect(r.status).toBe(429);
    expect(r.headers.get("retry-after")).toBe("60");
    // Not waited out: one upstream call and its 429 (a 60 s wait would also run past the test's timeout).
    expect(up.hits()).toBe(1);
    expect(JSON.parse(r.body).error.type).toBe("rate_limit_error");
  });
});

describe("rpm limits", () => {
  it("a deployment over its rpm hands over to the other; when none is left: 429 with Retry-After, no upstream call", async () => {
    const [a, b] = [await fake(), await fake()];
    const gw = await gateway({
      providers: { a: { type: "openai-compatible", base_url: a.v1 }, b: { type: "openai-compatible", base_url: b.v1 } },
      models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "x", rpm: 3 }, { provider: "b", model: "x", rpm: 2 }] } },
    });
    const who: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await chat(gw, "m");
      expect(r.status).toBe(200);
      who.push(r.headers.get("x-routed-provider")!);
    }
    expect(who).toEqual(["a", "a", "a", "b", "b"]);
    const client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const err = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const retryAfter = Number((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(55);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).code).toBe("rate_limit_exceeded");
    expect([a.hits(), b.hits()]).toEqual([3, 2]);
  });

  it("a provider's rpm is shared by all its deployments", async () => {
    const [a, b] = [await fake(), await fake()];
    const gw = await gateway({
      providers: { a: { type: "openai-compatible", base_url: a.v1, rpm: 2 }, b: { type: "openai-compatible", base_url: b.v1 } },
      models: {
        small: { deployments: [{ provider: "a", model: "small" }] },
        big: { strategy: "priority", deployments: [{ provider: "a", model: "big" }, { provider: "b", model: "big" }] },
      },
    });
    expect((await chat(gw, "small")).headers.get("x-routed-provider")).toBe("a");
    expect((await chat(gw, "big")).headers.get("x-routed-provider")).toBe("a");
    expect((await chat(gw, "big")).headers.get("x-routed-provider")).toBe("b");
    const r = await chat(gw, "small");
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(a.hits()).toBe(2);
  });
});
