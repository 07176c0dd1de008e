// The gateway as a developer uses it: the official openai client pointed at labgate,
// in front of a loopback upstream that speaks llama-server's exact wire format.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

let up: FakeOpenAI;
let slow: FakeOpenAI;
let gw: TestGateway;
let client: OpenAI;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(gw.v1 + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

beforeAll(async () => {
  up = await startFakeOpenAI({ name: "up" });
  slow = await startFakeOpenAI({ name: "slow", reply: ["one", " two", " three", " four"], chunkDelayMs: 300 });
  gw = await startGateway(`
server: {body_limit_mb: 0.05}
providers:
  lab:  {type: llamacpp, base_url: "${up.url}"}
  slowlab: {type: vllm, base_url: "${slow.url}"}
  dead: {type: llamacpp, base_url: "http://127.0.0.1:9", timeout_s: 2}
  hangs: {type: openai-compatible, base_url: "${up.v1}", timeout_s: 0.5}
models:
  tiny:
    deployments: [{provider: lab, model: stories, price: {input_per_1m: 2, output_per_1m: 6}}]
  slow-model:
    deployments: [{provider: slowlab, model: slow}]
  nowhere:
    deployments: [{provider: dead, model: x}]
router: {retries: 0}
`);
  client = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  await slow?.close();
});

interface Relay {
  url: string;
  /** SSE events passed on so far. */
  sent(): number;
  /** Let n more events through. */
  release(n: number): void;
  /** Streams still open, and streams the gateway closed before their end. */
  open(): number;
  cutOff(): number;
  /** With holdEnd: end the streams (held open after the fake's last byte until this). */
  finish(): void;
  close(): Promise<void>;
}

/**
 * A loopback relay in front of a fake upstream. Streams (SSE) are passed on one event at a time, the fake's exact
 * bytes, each only when the test releases it; with holdEnd a stream is kept open after the fake's end until
 * finish() (an upstream that lingers after [DONE]). Other answers (JSON) pass through whole.
 */
async function gatedRelay(target: FakeOpenAI, opts: { holdEnd?: boolean } = {}): Promise<Relay> {
  let allowed = 0;
  let sent = 0;
  let finished = !opts.holdEnd;
  let open = 0;
  let cutOff = 0;
  const waiters: (() => void)[] = [];
  const wakeAll = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  const until = async (ok: () => boolean): Promise<void> => {
    while (!ok()) await new Promise<void>((r) => waiters.push(r));
  };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      void (async () => {
        const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(parts);
        const upstream = await fetch(target.url + req.url, { method: req.method, headers: { "content-type": "application/json" }, body });
        const type = upstream.headers.get("content-type") ?? "";
        res.writeHead(upstream.status, { "content-type": type });
        if (!type.startsWith("text/event-stream")) {
          res.end(Buffer.from(await upstream.arrayBuffer()));
          return;
        }
        open++;
        res.on("close", () => {
          open--;
          if (!res.writableFinished) cutOff++;
        });
        const decoder = new TextDecoder();
        let buf = "";
        for await (const bytes of upstream.body as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(bytes, { stream: true });
          for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
            await until(() => sent < allowed);
            res.write(buf.slice(0, end + 2));
            buf = buf.slice(end + 2);
            sent++;
          }
        }
        await until(() => finished);
        res.end(buf);
      })().catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => sent,
    release(n) {
      allowed += n;
      wakeAll();
    },
    open: () => open,
    cutOff: () => cutOff,
    finish() {
      finished = true;
      wakeAll();
    },
    close: () => {
      finished = true;
      wakeAll();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function lastRows(n: number) {
  gw.gateway.requestLog.flush();
  return gw.gateway.requestLog.recent(n);
}

describe("OpenAI client against labgate", () => {
  it("lists models and retrieves one", async () => {
    const models = await client.models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(["tiny", "slow-model", "nowhere"]));
    const one = await client.models.retrieve("tiny");
    expect(one).toMatchObject({ id: "tiny", object: "model" });
  });

  it("chat, non-streaming: answer, usage, routing headers, one log row priced from usage", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "tiny", messages: [{ role: "user", content: "tell me a story" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from the fake upstream.");
    expect(data.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
    expect(response.headers.get("x-routed-provider")).toBe("lab");
    expect(response.headers.get("x-is-fallback")).toBe("false");
    // Present, and a finite non-negative decimal (Number(null) is 0, so a bare >= 0 check passed without the header).
    expect(response.headers.get("x-labgate-overhead-ms") ?? "(missing)", "x-labgate-overhead-ms").toMatch(/^\d+(\.\d+)?$/);
    const row = lastRows(1)[0]!;
    expect(row).toMatchObject({
      id: response.headers.get("x-request-id"),
      public_model: "tiny",
      provider: "lab",
      upstream_model: "stories",
      status: 200,
      stream: false,
      prompt_tokens: 4,
      completion_tokens: 5,
      fallback_depth: 0,
      error_class: null,
    });
    expect(row.cost_usd).toBeCloseTo((4 * 2 + 5 * 6) / 1e6, 12);
    expect(row.ttfb_ms).toBeGreaterThan(0);
    expect(row.total_ms).toBeGreaterThanOrEqual(row.ttfb_ms!);
    // The upstream was asked with the deployment's model name.
    expect(up.requests.at(-1)!.body!.model).toBe("stories");
  });

  it("chat, streaming: the same prompt gives the same tokens and the same cost as non-streaming", async () => {
    await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "tell me a story" }] }); // this test's own plain row
    const { data: stream, response } = await client.chat.completions
      .create({
        model: "tiny",
        messages: [{ role: "user", content: "tell me a story" }],
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    expect(response.headers.get("x-labgate-overhead-ms") ?? "(missing)", "x-labgate-overhead-ms").toMatch(/^\d+(\.\d+)?$/);
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("Hello from the fake upstream.");
    expect(usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 5 });
    const [streamed, plain] = lastRows(2);
    expect(streamed!.stream).toBe(true);
    expect(plain!.stream).toBe(false);
    expect(streamed!.prompt_tokens).toBe(plain!.prompt_tokens);
    expect(streamed!.completion_tokens).toBe(plain!.completion_tokens);
    expect(streamed!.cost_usd).toBeGreaterThan(0);
    expect(streamed!.cost_usd).toBe(plain!.cost_usd);
  });

  it("a stream without include_usage still asks the upstream for usage, logs it, and sends none to the client", async () => {
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "tell me a story" }], stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
    expect((up.requests.at(-1)!.body!.stream_options as { include_usage: boolean }).include_usage).toBe(true);
    const row = lastRows(1)[0]!;
    expect(row).toMatchObject({ stream: true, prompt_tokens: 4, completion_tokens: 5 });
    expect(row.cost_usd).toBeCloseTo((4 * 2 + 5 * 6) / 1e6, 12);
  });

  it("OpenAI's own stream shape (usage: null on every chunk) reaches a client that did not ask for usage without it", async () => {
    const cloud = await startFakeOpenAI({ name: "cloud", flavour: "openai" });
    const g = await startGateway(
      `
providers: {openai: {type: openai, base_url: "${cloud.v1}", api_key: env:OPENAI_API_KEY}}
models: {gpt: {deployments: [{provider: openai, model: gpt-4o-mini, price: {input_per_1m: 1, output_per_1m: 1}}]}}
`,
      { env: { OPENAI_API_KEY: "sk-test" } },
    );
    try {
      const res = await fetch(g.v1 + "/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt", stream: true, messages: [{ role: "user", content: "a b c" }] }),
      });
      const text = await res.text();
      expect(text).toContain("Hello");
      expect(text).not.toContain('"usage"');
      expect(cloud.requests.at(-1)!.headers.authorization).toBe("Bearer sk-test");
      g.gateway.requestLog.flush();
      expect(g.gateway.requestLog.recent(1)[0]).toMatchObject({ prompt_tokens: 3, completion_tokens: 5, cost_usd: 8 / 1e6 });
    } finally {
      await g.close();
      await cloud.close();
    }
  });

  it("completions, both modes (usage on llama-server's finish chunk is handled)", async () => {
    const c = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 3 });
    expect(c.choices[0]!.text).toBe("Hello from the");
    expect(c.choices[0]!.finish_reason).toBe("length");
    expect(c.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 3 });
    const stream = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 3, stream: true });
    let text = "";
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      expect(chunk.usage ?? undefined).toBeUndefined(); // not asked for
    }
    expect(text).toBe("Hello from the");
    const [s, n] = lastRows(2);
    expect(s).toMatchObject({ operation: "completions", stream: true, prompt_tokens: 4, completion_tokens: 3 });
    expect(s!.cost_usd).toBe(n!.cost_usd);
  });

  it("tools and tool_choice reach an OpenAI-compatible upstream unchanged", async () => {
    const tools = [{ type: "function" as const, function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "weather?" }], tools, tool_choice: "auto" });
    const sent = up.requests.at(-1)!.body!;
    expect(sent.tools).toEqual(tools);
    expect(sent.tool_choice).toBe("auto");
  });

  it("answers without the /v1 prefix too, as LiteLLM's proxy does", async () => {
    const bare = new OpenAI({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 });
    const r = await bare.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] });
    expect(r.choices[0]!.message.content).toBe("Hello from the fake upstream.");
    expect((await bare.models.list()).data.map((m) => m.id)).toContain("tiny");
  });

  it("embeddings", async () => {
    const e = await client.embeddings.create({ model: "tiny", input: ["a b", "c"] , encoding_format: "float" });
    expect(e.data).toHaveLength(2);
    expect(e.data[1]!.embedding).toHaveLength(4);
    expect(e.usage.prompt_tokens).toBe(3);
    expect(lastRows(1)[0]).toMatchObject({ operation: "embeddings", prompt_tokens: 3, provider: "lab" });
  });
});

describe("streaming is real", () => {
  it("chunks reach the client as the upstream sends them", async () => {
    // The upstream's events go out one at a time, each only once the client has the word before it: a gateway
    // that buffered would never deliver the first word (so this needs no clock, only the test's timeout).
    const relay = await gatedRelay(up);
    const g2 = await startGateway(`
providers: {lab: {type: llamacpp, base_url: "${relay.url}"}}
models: {m: {deployments: [{provider: lab, model: x}]}}
`);
    try {
      const c = new OpenAI({ baseURL: g2.v1, apiKey: "unused", maxRetries: 0 });
      const reply = ["Hello", " from", " the", " fake", " upstream."];
      relay.release(2); // the role chunk and the first word
      const stream = await c.chat.completions.create({ model: "m", messages: [{ role: "user", content: "count" }], stream: true });
      const words: string[] = [];
      for await (const chunk of stream) {
        const word = chunk.choices[0]?.delta?.content;
        if (!word) continue;
        words.push(word);
        // The client has this word while the upstream has sent nothing after it.
        expect(relay.sent()).toBe(words.length + 1);
        relay.release(words.length < reply.length ? 1 : Infinity);
      }
      expect(words).toEqual(reply);
    } finally {
      await g2.close();
      await relay.close();
    }
  });

  it("the answer ends at [DONE] even when the upstream keeps its response open after it", async () => {
    // The upstream's response stays open after [DONE] until the test ends it (no hold time to race).
    const lingering = await gatedRelay(up, { holdEnd: true });
    lingering.release(Infinity);
    const gw2 = await startGateway(`
providers: {lab: {type: llamacpp, base_url: "${lingering.url}"}}
models: {m: {deployments: [{provider: lab, model: x}]}}
`);
    try {
      const c = new OpenAI({ baseURL: gw2.v1, apiKey: "unused", maxRetries: 0 });
      const stream = await c.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      // The client has its whole answer while the upstream is still holding on.
      expect(text).toBe("Hello from the fake upstream.");
      expect([lingering.open(), lingering.cutOff()]).toEqual([1, 0]);
      // labgate reads the rest quietly instead of cutting the connection.
      lingering.finish();
      await expect.poll(() => lingering.open(), { timeout: 3000 }).toBe(0);
      expect(lingering.cutOff()).toBe(0);
      gw2.gateway.requestLog.flush();
      expect(gw2.gateway.requestLog.recent(1)[0]).toMatchObject({ status: 200, completion_tokens: 5 });
    } finally {
      await gw2.close();
      await lingering.close();
    }
  });

  it("a client that disconnects mid-stream cancels the upstream request", async () => {
    const before = slow.abortedStreams;
    const ac = new AbortController();
    const res = await post("/chat/completions", { model: "slow-model", stream: true, messages: [{ role: "user", content: "count" }] }, {});
    const reader = res.body!.getReader();
    await reader.read(); // the first bytes
    await reader.cancel();
    ac.abort();
    await expect.poll(() => slow.abortedStreams, { timeout: 3000 }).toBe(before + 1);
    await expect.poll(() => lastRows(1)[0]!.status, { timeout: 3000 }).toBe(499);
    expect(gw.gateway.registry.get("slowlab")!.inFlight).toBe(0);
  });
});

describe("errors in OpenAI's shape", () => {
  const expectError = async (res: Response, status: number, code?: string) => {
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error: { message: string; type: string; code: string | null } };
    expect(typeof body.error.message).toBe("string");
    expect(body.error.message).not.toMatch(/at .*\.ts:\d+/); // no stack traces
    expect(typeof body.error.type).toBe("string");
    if (code) expect(body.error.code).toBe(code);
    return body.error;
  };

  it("malformed JSON is 400", async () => {
    await expectError(await post("/chat/completions", '{"model": "tiny", "messages": ['), 400, "invalid_json");
  });
  it("missing messages is 400 naming the parameter", async () => {
    const e = await expectError(await post("/chat/completions", { model: "tiny" }), 400, "missing_required_parameter");
    expect(e.message).toMatch(/messages/);
  });
  it("a wrong type is 400", async () => {
    await expectError(await post("/chat/completions", { model: "tiny", messages: "hello" }), 400, "invalid_value");
    await expectError(await post("/chat/completions", { model: 42, messages: [{ role: "user", content: "x" }] }), 400);
    await expectError(await post("/embeddings", { model: "tiny" }), 400, "missing_required_parameter");
  });
  it("an unknown model is 404 through the official client too", async () => {
    await expectError(await post("/chat/completions", { model: "gpt-17", messages: [{ role: "user", content: "x" }] }), 404, "model_not_found");
    await expect(client.chat.completions.create({ model: "gpt-17", messages: [{ role: "user", content: "x" }] })).rejects.toMatchObject({ status: 404 });
  });
  it("an upstream 5xx is 502, and the row records the error class", async () => {
    up.faultNext({ kind: "status", status: 500 });
    await expectError(await post("/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x" }] }), 502);
    expect(lastRows(1)[0]).toMatchObject({ status: 502, error_class: "server_error", public_model: "tiny" });
  });
  it("an upstream that cannot be reached is 502 with the connect error class", async () => {
    await expectError(await post("/chat/completions", { model: "nowhere", messages: [{ role: "user", content: "x" }] }), 502, "connect");
  });
  it("an upstream that never answers is 504 after the provider's timeout", async () => {
    up.faultNext({ kind: "hang" });
    const g2 = await startGateway(`
providers: {hangs: {type: openai-compatible, base_url: "${up.v1}", timeout_s: 0.5}}
models: {h: {deployments: [{provider: hangs, model: x}]}}
router: {retries: 0}
`);
    try {
      const res = await fetch(g2.v1 + "/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "h", messages: [{ role: "user", content: "x" }] }),
      });
      await expectError(res, 504, "timeout");
    } finally {
      await g2.close();
    }
  });
  it("a body over the size limit is 413", async () => {
    await expectError(await post("/chat/completions", { model: "tiny", messages: [{ role: "user", content: "x".repeat(100_000) }] }), 413);
  });
  it("an unknown route is 404 in the same shape", async () => {
    await expectError(await fetch(gw.v1 + "/nothing-here"), 404, "unknown_url");
  });
  it("after all of that, the gateway still answers", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "still there?" }] });
    expect(r.choices[0]!.message.content).toContain("Hello");
  });
});

describe("metrics", () => {
  /** The value of one sample in Prometheus text, 0 when absent. */
  const sample = (text: string, name: string, labels: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  it("/metrics counts requests, tokens, spend and attempts as they happen", async () => {
    const before = await (await fetch(`${gw.url}/metrics`)).text();
    await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "one two three" }] });
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "one two three" }], stream: true });
    for await (const _ of stream) {
      // read to the end
    }
    await post("/chat/completions", { model: "no-such-model", messages: [{ role: "user", content: "x" }] });
    const after = await (await fetch(`${gw.url}/metrics`)).text();
    const delta = (name: string, labels: string) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta("labgate_requests_total", 'model="tiny",provider="lab",status="200"')).toBe(2);
    expect(delta("labgate_requests_total", 'model="(unknown)",provider="none",status="404"')).toBe(1);
    // The fake upstream counts 3 prompt words and answers 5 words, each time.
    expect(delta("labgate_tokens_total", 'provider="lab",direction="prompt"')).toBe(6);
    expect(delta("labgate_tokens_total", 'provider="lab",direction="completion"')).toBe(10);
    // price: 2 $/1M prompt, 6 $/1M completion
    expect(delta("labgate_cost_usd_total", 'provider="lab"')).toBeCloseTo((6 * 2 + 10 * 6) / 1e6, 12);
    expect(delta("labgate_upstream_attempts_total", 'provider="lab",outcome="ok"')).toBe(2);
    expect(after).toMatch(/^labgate_request_duration_seconds_count\{model="tiny",provider="lab"\} \d+$/m);
  });
});

describe("health", () => {
  it("/health says the gateway is up; /health/:provider probes that provider now", async () => {
    expect((await fetch(gw.url + "/health")).status).toBe(200);
    const ok = await fetch(gw.url + "/health/lab");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ provider: "lab", healthy: true });
    const down = await fetch(gw.url + "/health/dead");
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ provider: "dead", healthy: false, detail: expect.stringMatching(/connect/) });
    expect((await fetch(gw.url + "/health/nope")).status).toBe(404);
  });
});
