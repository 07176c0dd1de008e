// Failover as a user sees it: a deployment that cannot answer (refused, reset,
// 5xx, 429, timeout, slow first byte, context too small) hands the request to
// the next deployment, then down the `fallbacks` chain; the answer says so
// (X-Is-Fallback) and the log row lists every attempt. After the first byte
// there is no failover: the stream ends with an error the client surfaces.
import { createServer } from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI, type Fault } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import type { RequestLogRow } from "../../gateway/store/request-log.ts";

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, any> | undefined;
  /** SSE data payloads (parsed JSON; "[DONE]" kept as a string). */
  events: unknown[];
  text: string;
}

async function post(gw: TestGateway, model: string, opts: { stream?: boolean; content?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...opts.headers },
    body: JSON.stringify({ model, messages: [{ role: "user", content: opts.content ?? "hi" }], stream: opts.stream ?? false }),
  });
  const text = await res.text();
  let json: Record<string, any> | undefined;
  const events: unknown[] = [];
  if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
    for (const block of text.split("\n\n")) {
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      if (data) events.push(data === "[DONE]" ? data : JSON.parse(data));
    }
  } else json = JSON.parse(text) as Record<string, any>;
  return { status: res.status, headers: res.headers, json, events, text };
}

/** The text a client would assemble from an answer (JSON or stream). */
function content(a: Answer): string {
  if (a.json) return String(a.json.choices?.[0]?.message?.content ?? "");
  return a.events
    .filter((e): e is Record<string, any> => typeof e === "object" && e !== null && Array.isArray((e as any).choices))
    .map((e) => e.choices[0]?.delta?.content ?? "")
    .join("");
}

async function logRow(gw: TestGateway, id: string | null): Promise<RequestLogRow> {
  expect(id).toBeTruthy();
  for (let i = 0; i < 100; i++) {
    gw.gateway.requestLog.flush();
    const row = gw.gateway.requestLog.get(id!);
    if (row) return row;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log row for ${id}`);
}

/** A loopback URL where nothing listens (connection refused). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}/v1`;
}

const calm = { consecutive_failures: 1000, min_requests: 1000 };

describe("failover before the first byte", () => {
  let A: FakeOpenAI;
  let B: FakeOpenAI;
  let C: FakeOpenAI;
  let gw: TestGateway;

  beforeAll(async () => {
    A = await startFakeOpenAI({ name: "A", reply: ["A", " answered"] });
    B = await startFakeOpenAI({ name: "B", reply: ["B", " answered"] });
    C = await startFakeOpenAI({ name: "C", reply: ["C", " answered"] });
    const limits = { timeout_s: 0.5, first_byte_timeout_s: 0.3 };
    gw = await startGateway(
      JSON.stringify({
        providers: {
          pa: { type: "openai-compatible", base_url: A.v1 },
          pb: { type: "openai-compatible", base_url: B.v1 },
          pc: { type: "openai-compatible", base_url: C.v1 },
        },
        models: {
          primary: {
            strategy: "priority",
            deployments: [
              { provider: "pa", model: "a", ...limits },
              { provider: "pb", model: "b", ...limits },
            ],
            fallbacks: ["secondary"],
          },
          secondary: { deployments: [{ provider: "pc", model: "c" }] },
        },
        router: { retries: 0, circuit_breaker: calm },
      }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([A, B, C].map((f) => f?.close()));
  });

  const cases: { name: string; fault: Fault; errorClass: string; stream: boolean[] }[] = [
    { name: "reset before the first byte", fault: { kind: "reset" }, errorClass: "reset", stream: [false, true] },
    { name: "5xx", fault: { kind: "status", status: 503 }, errorClass: "server_error", stream: [false, true] },
    { name: "429", fault: { kind: "status", status: 429, retryAfter: "0", type: "rate_limit_error" }, errorClass: "rate_limited", stream: [false, true] },
    { name: "timeout (upstream hangs)", fault: { kind: "hang" }, errorClass: "timeout", stream: [false] },
    { name: "malformed answer", fault: { kind: "malformed" }, errorClass: "malformed", stream: [false, true] },
  ];

  for (const c of cases) {
    for (const stream of c.stream) {
      it(`${c.name} (${stream ? "stream" : "json"}): next deployment, then the fallback group`, async () => {
        const before = { a: A.hits(), b: B.hits(), c: C.hits() };
        A.faultNext(c.fault);
        B.faultNext(c.fault);
        const r = await post(gw, "primary", { stream });
        expect(r.status).toBe(200);
        expect(content(r)).toBe("C answered");
        expect(r.headers.get("x-is-fallback")).toBe("true");
        expect(r.headers.get("x-routed-provider")).toBe("pc");
        expect({ a: A.hits() - before.a, b: B.hits() - before.b, c: C.hits() - before.c }).toEqual({ a: 1, b: 1, c: 1 });
        const row = await logRow(gw, r.headers.get("x-request-id"));
        expect(row.status).toBe(200);
        expect(row.provider).toBe("pc");
        expect(row.fallback_depth).toBe(1);
        expect(row.attempts.map((x) => [x.attempt, x.provider, x.error_class])).toEqual([
          [1, "pa", c.errorClass],
          [2, "pb", c.errorClass],
          [3, "pc", null],
        ]);
      });
    }
  }

  it("first-byte timeout (slow first byte on a stream): next deployment, then the fallback group", async () => {
    // A and B send nothing at all, so only the first-byte timeouts (0.3 s, before timeout_s's 0.5 s) can
    // move the request on: no elapsed-time check needed to tell them from waits for the slow upstreams.
    A.faultNext({ kind: "hang" });
    B.faultNext({ kind: "hang" });
    const r = await post(gw, "primary", { stream: true });
    expect(r.status).toBe(200);
    expect(content(r)).toBe("C answered");
    expect(r.headers.get("x-is-fallback")).toBe("true");
    const row = await logRow(gw, r.headers.get("x-request-id"));
    expect(row.attempts.map((x) => [x.provider, x.error_class])).toEqual([
      ["pa", "first_byte_timeout"],
      ["pb", "first_byte_timeout"],
      ["pc", null],
    ]);
  });

  it("one failed deployment: the next one of the same group answers (depth 0, still a fallback)", async () => {
    A.faultNext({ kind: "status", status: 500 });
    const r = await post(gw, "primary");
    expect(r.status).toBe(200);
    expect(content(r)).toBe("B answered");
    expect(r.headers.get("x-is-fallback")).toBe("true");
    const row = await logRow(gw, r.headers.get("x-request-id"));
    expect(row.fallback_depth).toBe(0);
    expect(row.attempts.map((x) => [x.attempt, x.provider, x.error_class])).toEqual([
      [1, "pa", "server_error"],
      [2, "pb", null],
    ]);
  });

  it("a healthy first deployment answers directly: X-Is-Fallback false, one attempt", async () => {
    const r = await post(gw, "primary", { stream: true });
    expect(content(r)).toBe("A answered");
    expect(r.headers.get("x-is-fallback")).toBe("false");
    const row = await logRow(gw, r.headers.get("x-request-id"));
    expect(row.attempts.map((x) => [x.attempt, x.provider, x.error_class])).toEqual([[1, "pa", null]]);
  });

  it("when every deployment and fallback fails, the client gets one clean OpenAI-shaped error with all attempts logged", async () => {
    for (const f of [A, B, C]) f.faultNext({ kind: "status", status: 502 });
    const r = await post(gw, "primary");
    expect(r.status).toBe(502);
    expect(r.json?.error).toMatchObject({ type: expect.any(String), message: expect.stringContaining("primary") });
    const row = await logRow(gw, r.headers.get("x-request-id"));
    expect(row.status).toBe(502);
    expect(row.attempts.map((x) => x.provider)).toEqual(["pa", "pb", "pc"]);
  });
});

describe("connection refused", () => {
  it("a deployment nobody listens on hands over to the next, then down the chain", async () => {
    const C = await startFakeOpenAI({ name: "C", reply: ["C", " answered"] });
    const gw = await startGateway(
      JSON.stringify({
        providers: {
          pa: { type: "openai-compatible", base_url: await deadUrl() },
          pb: { type: "openai-compatible", base_url: await deadUrl() },
          pc: { type: "openai-compatible", base_url: C.v1 },
        },
        models: {
          primary: { strategy: "priority", deployments: [{ provider: "pa", model: "a" }, { provider: "pb", model: "b" }], fallbacks: ["secondary"] },
          secondary: { deployments: [{ provider: "pc", model: "c" }] },
        },
        router: { retries: 0, circuit_breaker: calm },
      }),
    );
    try {
      for (const stream of [false, true]) {
        const r = await post(gw, "primary", { stream });
        expect(r.status).toBe(200);
        expect(content(r)).toBe("C answered");
        expect(r.headers.get("x-is-fallback")).toBe("true");
        const row = await logRow(gw, r.headers.get("x-request-id"));
        expect(row.attempts.map((x) => [x.attempt, x.provider, x.error_class])).toEqual([
          [1, "pa", "connect"],
          [2, "pb", "connect"],
          [3, "pc", null],
        ]);
      }
    } finally {
      await gw.close();
      await C.close();
    }
  });
});

describe("the lab chain llama3.1:latest -> llama-cpp-default -> gpt-oss:20b-cloud", () => {
  it("reaches gpt-oss when the first two are down, and labgate_fallbacks_total{result=success} counts it", async () => {
    const cloud = await startFakeOpenAI({ name: "gpt-oss-20b", reply: ["cloud", " says", " hi"] });
    const gw = await startGateway(
      JSON.stringify({
        providers: {
          ollama: { type: "ollama", base_url: (await deadUrl()).replace(/\/v1$/, "") },
          "llama-cpp-native": { type: "llamacpp", base_url: (await deadUrl()).replace(/\/v1$/, "") },
          openai: { type: "openai", base_url: cloud.v1, api_key: "env:OPENAI_API_KEY" },
        },
        models: {
          "llama3.1:latest": { deployments: [{ provider: "ollama", model: "llama3.1:latest", tier: "local" }], fallbacks: ["llama-cpp-default", "gpt-oss:20b-cloud"] },
          "llama-cpp-default": { deployments: [{ provider: "llama-cpp-native", model: "default", tier: "local" }] },
          "gpt-oss:20b-cloud": { deployments: [{ provider: "openai", model: "gpt-oss-20b", tier: "standard" }] },
        },
        router: { timeout_s: 30, retries: 2 },
      }),
      { env: { OPENAI_API_KEY: "sk-test" } },
    );
    try {
      const client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
      const { data, response } = await client.chat.completions.create({ model: "llama3.1:latest", messages: [{ role: "user", content: "hi" }] }).withResponse();
      expect(data.choices[0]?.message.content).toBe("cloud says hi");
      expect(response.headers.get("x-is-fallback")).toBe("true");
      expect(response.headers.get("x-routed-provider")).toBe("openai");
      expect(cloud.requests.find((r) => r.method === "POST")?.body?.model).toBe("gpt-oss-20b");
      expect(cloud.requests.find((r) => r.method === "POST")?.headers.authorization).toBe("Bearer sk-test");

      const row = await logRow(gw, response.headers.get("x-request-id"));
      // Both are listed fallbacks of llama3.1:latest: one level down the chain.
      expect(row.fallback_depth).toBe(1);
      expect(row.attempts.map((x) => [x.attempt, x.provider, x.error_class])).toEqual([
        [1, "ollama", "connect"],
        [2, "llama-cpp-native", "connect"],
        [3, "openai", null],
      ]);

      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/^labgate_fallbacks_total\{model="llama3\.1:latest",result="success"\} 1$/m);
      expect(metrics).not.toMatch(/labgate_fallbacks_total\{[^}]*result="failure"\}/);

      // A second request counts again.
      await client.chat.completions.create({ model: "llama3.1:latest", messages: [{ role: "user", content: "again" }] });
      const metrics2 = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics2).toMatch(/^labgate_fallbacks_total\{model="llama3\.1:latest",result="success"\} 2$/m);
    } finally {
      await gw.close();
      await cloud.close();
    }
  });
});

describe("context window", () => {
  it("a prompt too long for the first deployment goes to one with a larger context_length", async () => {
    const small = await startFakeOpenAI({ name: "small", reply: ["small", " ok"], contextLength: 8 });
    const big = await startFakeOpenAI({ name: "big", reply: ["big", " ok"], contextLength: 200 });
    const gw = await startGateway(
      JSON.stringify({
        providers: { s: { type: "llamacpp", base_url: small.url }, b: { type: "llamacpp", base_url: big.url } },
        models: {
          chat: {
            strategy: "priority",
            deployments: [
              { provider: "s", model: "small", context_length: 8 },
              { provider: "b", model: "big", context_length: 200 },
            ],
          },
        },
        router: { retries: 0 },
      }),
    );
    try {
      const short = await post(gw, "chat", { content: "two words" });
      expect(content(short)).toBe("small ok");
      expect(short.headers.get("x-is-fallback")).toBe("false");

      const long = "word ".repeat(40).trim();
      for (const stream of [false, true]) {
        const r = await post(gw, "chat", { content: long, stream });
        expect(r.status).toBe(200);
        expect(content(r)).toBe("big ok");
        expect(r.headers.get("x-is-fallback")).toBe("true");
        const row = await logRow(gw, r.headers.get("x-request-id"));
        expect(row.attempts.map((x) => [x.provider, x.error_class])).toEqual([
          ["s", "context_window"],
          ["b", null],
        ]);
      }

      // Too long for every deployment: a 400 the client can act on, not a 5xx.
      const huge = await post(gw, "chat", { content: "word ".repeat(500).trim() });
      expect(huge.status).toBe(400);
      expect(huge.json?.error?.message).toMatch(/context/i);
      const row = await logRow(gw, huge.headers.get("x-request-id"));
      expect(row.attempts.map((x) => [x.provider, x.error_class])).toEqual([
        ["s", "context_window"],
        ["b", "context_window"],
      ]);
      // A too-long prompt says nothing about the deployment's health.
      const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as {
        data: { deployments: { model_group: string; breaker_state: string; failures: number }[] }[];
      };
      const mine = providers.data.flatMap((p) => p.deployments.filter((d) => d.model_group === "chat"));
      expect(mine.map((d) => [d.breaker_state, d.failures])).toEqual([
        ["closed", 0],
        ["closed", 0],
      ]);
    } finally {
      await gw.close();
      await small.close();
      await big.close();
    }
  });
});

describe("failure after the first byte", () => {
  let A: FakeOpenAI;
  let B: FakeOpenAI;
  let gw: TestGateway;
  beforeAll(async () => {
    A = await startFakeOpenAI({ name: "A", reply: ["one", " two", " three", " four", " five"], chunkDelayMs: 5 });
    B = await startFakeOpenAI({ name: "B" });
    gw = await startGateway(
      JSON.stringify({
        providers: { pa: { type: "openai-compatible", base_url: A.v1 }, pb: { type: "openai-compatible", base_url: B.v1 } },
        models: { chat: { strategy: "priority", deployments: [{ provider: "pa", model: "a" }, { provider: "pb", model: "b" }] } },
        router: { retries: 2 },
      }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await A?.close();
    await B?.close();
  });

  const faults: Fault[] = [
    { kind: "drop_mid_stream", afterChunks: 2 },
    { kind: "stream_error", afterChunks: 2 },
  ];
  for (const fault of faults) {
    it(`${fault.kind}: the openai client gets an error, never a silently truncated answer`, async () => {
      const client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
      const bBefore = B.hits();
      A.faultNext(fault);
      const { data: stream, response } = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "count" }], stream: true }).withResponse();
      let received = "";
      let caught: unknown;
      try {
        for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ?? "";
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(OpenAI.APIError);
      expect(String((caught as Error).message)).toMatch(/mid-stream/);
      // A strict prefix of the answer (how much got out depends on the socket), then the error.
      expect(received.length).toBeGreaterThan(0);
      expect("one two three four five".startsWith(received)).toBe(true);
      expect(received).not.toBe("one two three four five");
      // No failover once bytes went out: the client would get two answers spliced together.
      expect(B.hits()).toBe(bBefore);
      const row = await logRow(gw, response.headers.get("x-request-id"));
      expect(row.status).not.toBe(200);
      expect(row.error_class).toBe(fault.kind === "drop_mid_stream" ? "reset" : "server_error");
    });
  }

  it("chunks that arrive in the same read as a mid-stream error still reach the client, then the error", async () => {
    const fast = await startFakeOpenAI({ name: "fast", reply: ["one", " two", " three", " four"] });
    const gw2 = await startGateway(JSON.stringify({ providers: { pf: { type: "openai-compatible", base_url: fast.v1 } }, models: { m: { deployments: [{ provider: "pf", model: "f" }] } } }));
    try {
      fast.faultNext({ kind: "stream_error", afterChunks: 2 });
      const client = new OpenAI({ baseURL: gw2.v1, apiKey: "unused", maxRetries: 0 });
      const stream = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "count" }], stream: true });
      let received = "";
      const caught = await (async () => {
        for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ?? "";
      })().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(caught).toBeInstanceOf(OpenAI.APIError);
      expect(received).toBe("one two"); // everything the upstream sent before its error
    } finally {
      await gw2.close();
      await fast.close();
    }
  });

  it("the same stream without a fault completes normally", async () => {
    const client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "count" }], stream: true });
    let received = "";
    for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ?? "";
    expect(received).toBe("one two three four five");
  });
});
