// The Ollama adapter against a real HTTP server on loopback speaking Ollama's native
// protocol from the captures in ../shared/protocols (test/fixtures/fake-ollama.ts).
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import { createOllamaAdapter } from "../../gateway/providers/ollama/adapter.ts";
import { ChatStreamMapper } from "../../gateway/providers/ollama/mapping.ts";
import type { CallContext, CompletionResult, OpenAIChunk, ProviderAdapter } from "../../gateway/providers/types.ts";
import { hold, ndjsonLines, protocolJson, replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";
import { rejection } from "../fixtures/upstream-errors.ts";
import { flatChunks } from "../fixtures/streams.ts";

let fake: FakeOllama;
let adapter: ProviderAdapter;

beforeEach(async () => {
  fake = await startFakeOllama();
  adapter = createOllamaAdapter({ name: "ollama-test", baseUrl: fake.url });
});

afterEach(async () => {
  await fake.close();
  await adapter.close();
});

function ctx(upstreamModel = "llama3.2", signal: AbortSignal = new AbortController().signal): CallContext {
  return { signal, upstreamModel, timeoutMs: 30_000 };
}

function streamOf(result: CompletionResult): AsyncIterable<OpenAIChunk> {
  if (result.kind !== "stream") throw new Error(`expected a stream, got ${result.kind}`);
  return flatChunks(result);
}

async function collect(result: CompletionResult): Promise<OpenAIChunk[]> {
  const out: OpenAIChunk[] = [];
  for await (const c of streamOf(result)) out.push(c);
  return out;
}

/** Collects chunks until the stream throws; returns both. */
async function collectUntilError(result: CompletionResult): Promise<{ chunks: OpenAIChunk[]; error: UpstreamError }> {
  const chunks: OpenAIChunk[] = [];
  try {
    for await (const c of streamOf(result)) chunks.push(c);
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return { chunks, error: err as UpstreamError };
  }
  throw new Error(`stream ended without an error after ${chunks.length} chunks`);
}


/** Resolves to "stuck" if `p` has not settled after `ms` (a hang detector, not a speed assertion). */
function orStuck<T>(p: Promise<T>, ms = 5_000): Promise<T | "stuck"> {
  return Promise.race([p, new Promise<"stuck">((r) => setTimeout(() => r("stuck"), ms).unref())]);
}

const deltas = (chunks: OpenAIChunk[]): unknown[] => chunks.map((c) => (c.choices as { delta?: unknown }[])[0]?.delta ?? null);
const contentOf = (chunks: OpenAIChunk[]): string =>
  chunks.map((c) => ((c.choices as { delta?: { content?: string } }[])[0]?.delta?.content ?? "")).join("");
const textOf = (chunks: OpenAIChunk[]): string => chunks.map((c) => ((c.choices as { text?: string }[])[0]?.text ?? "")).join("");

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "The name of the city" } }, required: ["city"] },
  },
};

const ask = [{ role: "user", content: "why is the sky blue?" }];

// ---------------------------------------------------------------------------

describe("ollama adapter: chat", () => {
  it("answers a non-streaming chat as an OpenAI chat.completion with usage from the eval counts", async () => {
    const r = await adapter.chat({ model: "my-alias", messages: ask }, ctx());
    expect(r.kind).toBe("json");
    if (r.kind !== "json") return;
    expect(r.body).toMatchObject({
      object: "chat.completion",
      model: "llama3.2",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello! How are you today?" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 },
    });
    expect(r.body.id).toMatch(/^chatcmpl-/);
    expect(typeof r.body.created).toBe("number");
    expect(r.usage).toEqual({ prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 });
    // What went over the wire: Ollama's /api/chat with the deployment's model, stream off.
    const [req] = fake.requestsTo("chat");
    expect(req.method).toBe("POST");
    expect(req.body).toEqual({ model: "llama3.2", messages: ask, stream: false });
  });

  it("maps messages, tools, tool calls, images and sampling parameters onto Ollama's request", async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]).toString("base64");
    await adapter.chat(
      {
        model: "alias",
        messages: [
          { role: "developer", content: "be brief" },
          {
            role: "user",
            content: [
              { type: "text", text: "what is in" },
              { type: "image_url", image_url: { url: `data:image/png;base64,${png}`, detail: "low" } },
              { type: "text", text: "this picture?" },
            ],
          },
          { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Tokyo"}' } }] },
          { role: "tool", tool_call_id: "call_1", content: '{"temp_c":21}' },
        ],
        tools: [weatherTool],
        max_tokens: 50,
        max_completion_tokens: 64,
        temperature: 0.2,
        top_p: 0.9,
        stop: "\n\n",
        seed: 7,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        response_format: { type: "json_object" },
      },
      ctx(),
    );
    const [sent] = fake.bodies("chat");
    expect(sent.model).toBe("llama3.2");
    expect(sent.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "what is in\nthis picture?", images: [png] },
      { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Tokyo" } } }] },
      { role: "tool", content: '{"temp_c":21}', tool_name: "get_weather" },
    ]);
    expect(sent.tools).toEqual([weatherTool]);
    expect(sent.options).toEqual({ num_predict: 64, temperature: 0.2, top_p: 0.9, stop: ["\n\n"], seed: 7, presence_penalty: 0.5, frequency_penalty: 0.25 });
    expect(sent.format).toBe("json");
  });

  it("sends max_tokens, a stop list and a json_schema response format; tool_choice none sends no tools; server knobs stay out", async () => {
    const schema = { type: "object", properties: { age: { type: "integer" } }, required: ["age"] };
    await adapter.chat(
      {
        model: "alias",
        messages: ask,
        max_tokens: 12,
        stop: ["END", "STOP"],
        tools: [weatherTool],
        tool_choice: "none",
        response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
        // an API client must not size the server's context or pin the model in memory
        options: { num_ctx: 1_000_000, num_gpu: 99 },
        keep_alive: -1,
      },
      ctx(),
    );
    const [sent] = fake.bodies("chat");
    expect(sent.options).toEqual({ num_predict: 12, stop: ["END", "STOP"] });
    expect(sent.format).toEqual(schema);
    expect(sent).not.toHaveProperty("tools");
    expect(sent).not.toHaveProperty("keep_alive");
  });

  it("never lets an image string reach the client as a file path (the Node client uploads existing files)", async () => {
    // A base64-alphabet absolute path to an existing file: the ollama client would read
    // and send that file if it got the string instead of bytes.
    const secretPath = join(tmpdir(), `labgateSecret${randomBytes(6).toString("hex")}`);
    expect(secretPath).toMatch(/^[A-Za-z0-9+/]+$/);
    writeFileSync(secretPath, "TOP SECRET: do not upload");
    try {
      await adapter.chat({ model: "a", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: `data:image/png;base64,${secretPath}` } }] }] }, ctx());
      const [sent] = fake.bodies("chat");
      const image = sent.messages[0].images[0] as string;
      expect(Buffer.from(image, "base64").toString("latin1")).not.toContain("TOP SECRET");
      expect(image).toBe(Buffer.from(secretPath, "base64").toString("base64"));
    } finally {
      rmSync(secretPath, { force: true });
    }
  });

  it("rejects what Ollama cannot take as bad_request without calling it", async () => {
    const remote = await rejection(
      adapter.chat({ model: "a", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }, ctx()),
    );
    expect(remote.errorClass).toBe("bad_request");
    expect(remote.clientStatus).toBe(400);
    const args = await rejection(
      adapter.chat({ model: "a", messages: [{ role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{not json" } }] }] }, ctx()),
    );
    expect(args.errorClass).toBe("bad_request");
    expect(fake.requests).toHaveLength(0);
  });

  it("streams a chat as chat.completion.chunk objects: role, content, finish, then usage", async () => {
    const r = await adapter.chat({ model: "alias", messages: ask, stream: true }, ctx());
    const chunks = await collect(r);
    expect(chunks.map((c) => c.choices)).toEqual([
      [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: "The" }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }],
      [],
    ]);
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 26, completion_tokens: 282, total_tokens: 308 });
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^chatcmpl-/);
    for (const c of chunks) expect(c).toMatchObject({ object: "chat.completion.chunk", model: "llama3.2" });
    expect(fake.bodies("chat")[0].stream).toBe(true);
    expect(await fake.requestsTo("chat")[0].closed).toBe("finished");
  });

  it("a finished stream leaves its keep-alive connection reusable", async () => {
    fake.chunkDelayMs = 2;
    for (let i = 0; i < 3; i++) await collect(await adapter.chat({ model: "a", messages: ask, stream: true }, ctx()));
    await adapter.chat({ model: "a", messages: ask }, ctx());
    expect(await Promise.all(fake.requests.map((r) => r.closed))).toEqual(["finished", "finished", "finished", "finished"]);
    // Sequential requests over a reused pool: at most two sockets (the next request may
    // start a tick before the previous socket is released); one per request would be 4.
    expect(new Set(fake.requests.map((r) => r.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it("streams for real: chunks arrive while Ollama is still generating", async () => {
    const [first, last] = ndjsonLines("ollama-chat-stream.ndjson");
    const gate = hold();
    fake.enqueue("chat", replies.ndjson([first, gate.step, last]));
    const r = await adapter.chat({ model: "a", messages: ask, stream: true }, ctx());
    const it = streamOf(r)[Symbol.asyncIterator]();
    expect(await orStuck(it.next())).toMatchObject({ done: false, value: { choices: [{ delta: { role: "assistant" } }] } });
    expect(await orStuck(it.next())).toMatchObject({ done: false, value: { choices: [{ delta: { content: "The" } }] } });
    expect(fake.requestsTo("chat")[0].outcome).toBeUndefined(); // the upstream answer is still open
    gate.release();
    const rest: OpenAIChunk[] = [];
    for (let n = await it.next(); !n.done; n = await it.next()) rest.push(n.value);
    expect(rest.map((c) => (c.choices as { finish_reason: string }[])[0]?.finish_reason ?? "usage")).toEqual(["stop", "usage"]);
  });

  it("maps Ollama tool calls in a stream to OpenAI tool_call deltas with ids and JSON-string arguments", async () => {
    const r = await adapter.chat({ model: "a", messages: [{ role: "user", content: "weather in Tokyo?" }], tools: [weatherTool], stream: true }, ctx());
    const chunks = await collect(r);
    expect(deltas(chunks)).toEqual([
      { role: "assistant", content: "" },
      { tool_calls: [{ index: 0, id: expect.stringMatching(/^call_/), type: "function", function: { name: "get_weather", arguments: '{"city":"Tokyo"}' } }] },
      {},
      null,
    ]);
    expect((chunks[2].choices as { finish_reason: string }[])[0].finish_reason).toBe("tool_calls");
    expect(chunks[3].usage).toEqual({ prompt_tokens: 169, completion_tokens: 15, total_tokens: 184 });
    expect(fake.bodies("chat")[0].tools).toEqual([weatherTool]);
  });

  it("maps a non-streaming tool call answer (content null, finish_reason tool_calls)", async () => {
    // CONSTRUCTED from ollama-chat-stream-tools.ndjson: the same answer with stream off.
    const [call, done] = ndjsonLines("ollama-chat-stream-tools.ndjson").map((l) => JSON.parse(l));
    fake.enqueue("chat", replies.json({ ...done, message: call.message }));
    const r = await adapter.chat({ model: "a", messages: ask, tools: [weatherTool] }, ctx());
    if (r.kind !== "json") throw new Error("expected json");
    const choice = (r.body.choices as Record<string, any>[])[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: "function", function: { name: "get_weather", arguments: '{"city":"Tokyo"}' } }]);
    expect(r.usage).toEqual({ prompt_tokens: 169, completion_tokens: 15, total_tokens: 184 });
  });

  it('reports done_reason "length" as finish_reason "length"', async () => {
    const base = protocolJson("ollama-chat-nonstream.json");
    fake.enqueue("chat", replies.json({ ...base, done_reason: "length" }));
    const r = await adapter.chat({ model: "a", messages: ask, max_tokens: 5 }, ctx());
    if (r.kind !== "json") throw new Error("expected json");
    expect((r.body.choices as { finish_reason: string }[])[0].finish_reason).toBe("length");
  });

  it("sends the provider's extra headers and accepts a base URL ending in /api/", async () => {
    await adapter.close();
    adapter = createOllamaAdapter({ name: "ollama-test", baseUrl: `${fake.url}/api/`, extraHeaders: { authorization: "Bearer proxy-token" } });
    await adapter.chat({ model: "a", messages: ask }, ctx());
    const [req] = fake.requestsTo("chat");
    expect(req.path).toBe("/api/chat");
    expect(req.headers.authorization).toBe("Bearer proxy-token");
  });
});

describe("ollama adapter: completions", () => {
  it("answers a non-streaming completion as a text_completion through /api/generate", async () => {
    const r = await adapter.completions({ model: "alias", prompt: "Why is the sky blue?", suffix: "\n// end", max_tokens: 32, stop: ["\n\n"] }, ctx());
    if (r.kind !== "json") throw new Error("expected json");
    expect(r.body).toMatchObject({
      object: "text_completion",
      model: "llama3.2",
      choices: [{ text: "The sky is blue because it is the color of the sky.", index: 0, logprobs: null, finish_reason: "stop" }],
      usage: { prompt_tokens: 26, completion_tokens: 290, total_tokens: 316 },
    });
    expect(r.body.id).toMatch(/^cmpl-/);
    expect(r.usage).toEqual({ prompt_tokens: 26, completion_tokens: 290, total_tokens: 316 });
    expect(fake.bodies("generate")[0]).toEqual({
      model: "llama3.2",
      prompt: "Why is the sky blue?",
      suffix: "\n// end",
      raw: false,
      stream: false,
      options: { num_predict: 32, stop: ["\n\n"] },
    });
  });

  it("takes a prompt array of one string, refuses several", async () => {
    await adapter.completions({ model: "a", prompt: ["Why is the sky blue?"] }, ctx());
    expect(fake.bodies("generate")[0].prompt).toBe("Why is the sky blue?");
    const e = await rejection(adapter.completions({ model: "a", prompt: ["one", "two"] }, ctx()));
    expect(e.errorClass).toBe("bad_request");
    expect(fake.requestsTo("generate")).toHaveLength(1);
  });

  it("streams text_completion chunks, a finish chunk and the usage chunk", async () => {
    fake.enqueue("generate", replies.capture("ollama-generate-stream-docs-streaming.ndjson"));
    const chunks = await collect(await adapter.completions({ model: "a", prompt: "Is this a question?", stream: true }, ctx()));
    expect(textOf(chunks)).toBe("That's a fantastic question!");
    for (const c of chunks) expect(c).toMatchObject({ object: "text_completion", model: "llama3.2" });
    expect(chunks.at(-2)?.choices).toEqual([{ text: "", index: 0, logprobs: null, finish_reason: "stop" }]);
    // That capture's final line carries no metrics: the usage chunk is still there.
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } });
    expect(fake.bodies("generate")[0]).toMatchObject({ stream: true, raw: false, prompt: "Is this a question?" });
  });

  it("streams usage from the final object's eval counts", async () => {
    const chunks = await collect(await adapter.completions({ model: "a", prompt: "Why is the sky blue?", stream: true }, ctx()));
    expect(textOf(chunks)).toBe("The");
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 26, completion_tokens: 259, total_tokens: 285 });
  });
});

describe("ollama adapter: embeddings", () => {
  it("embeds one string into an OpenAI embedding list with usage from prompt_eval_count", async () => {
    const r = await adapter.embeddings({ model: "alias", input: "Why is the sky blue?" }, ctx("all-minilm"));
    const expected = protocolJson<{ embeddings: number[][] }>("ollama-embed.json").embeddings[0];
    expect(r.body).toEqual({
      object: "list",
      data: [{ object: "embedding", index: 0, embedding: expected }],
      model: "all-minilm",
      usage: { prompt_tokens: 8, total_tokens: 8 },
    });
    expect(r.usage).toEqual({ prompt_tokens: 8, completion_tokens: 0, total_tokens: 8 });
    expect(fake.bodies("embed")[0]).toEqual({ model: "all-minilm", input: "Why is the sky blue?" });
  });

  it("embeds several strings in order", async () => {
    const r = await adapter.embeddings({ model: "alias", input: ["Why is the sky blue?", "Why is the grass green?"] }, ctx("all-minilm"));
    const expected = protocolJson<{ embeddings: number[][] }>("ollama-embed-multi.json").embeddings;
    expect(r.body.data).toEqual(expected.map((embedding, index) => ({ object: "embedding", index, embedding })));
    expect(r.usage).toBeNull(); // that capture has no prompt_eval_count
    expect(fake.bodies("embed")[0].input).toEqual(["Why is the sky blue?", "Why is the grass green?"]);
  });

  it('answers encoding_format "base64" (the OpenAI SDKs\' default) with little-endian float32 base64', async () => {
    const r = await adapter.embeddings({ model: "a", input: "Why is the sky blue?", encoding_format: "base64" }, ctx("all-minilm"));
    const expected = protocolJson<{ embeddings: number[][] }>("ollama-embed.json").embeddings[0];
    const b64 = (r.body.data as { embedding: unknown }[])[0].embedding;
    expect(typeof b64).toBe("string");
    const bytes = Buffer.from(b64 as string, "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    expect(decoded).toHaveLength(expected.length);
    decoded.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
  });

  it("refuses token-array input as bad_request", async () => {
    const e = await rejection(adapter.embeddings({ model: "a", input: [[1, 2, 3]] }, ctx("all-minilm")));
    expect(e.errorClass).toBe("bad_request");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("ollama adapter: models and health", () => {
  it("lists the models from /api/tags", async () => {
    const models = await adapter.listModels!(new AbortController().signal);
    expect(models.map((m) => [m.id, m.owned_by, m.created])).toEqual([
      // created = modified_at, as Ollama's own /v1/models reports (ollama-openai-models.json)
      ["deepseek-r1:latest", "ollama", 1746889608],
      ["llama3.2:latest", "ollama", 1746405464],
    ]);
    expect(fake.requestsTo("tags")[0].method).toBe("GET");
  });

  it("is healthy when Ollama answers, with its version and models", async () => {
    const h = await adapter.health(new AbortController().signal);
    expect(h).toMatchObject({ ok: true, detail: "ollama 0.5.1", models: ["deepseek-r1:latest", "llama3.2:latest"] });
    expect(h.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("is unhealthy (and does not throw) when nothing listens, when Ollama fails, or when the probe is aborted", async () => {
    fake.enqueue("version", replies.error(500, "internal error"));
    const failing = await adapter.health(new AbortController().signal);
    expect(failing.ok).toBe(false);
    expect(failing.detail).toContain("500");

    fake.enqueue("version", replies.hang());
    const ac = new AbortController();
    const pending = adapter.health(ac.signal);
    await fake.nextRequest("version");
    ac.abort();
    expect((await pending).ok).toBe(false);

    const url = fake.url;
    await fake.close();
    const down = createOllamaAdapter({ name: "down", baseUrl: url });
    const h = await down.health(new AbortController().signal);
    await down.close();
    expect(h.ok).toBe(false);
    expect(h.detail).toMatch(/connect/);
    fake = await startFakeOllama(); // for afterEach
  });
});

describe("ollama adapter: upstream errors", () => {
  it("turns Ollama's 404 for an unknown model into not_found, streaming or not, before any chunk", async () => {
    fake.models = ["llama3.2"];
    const e = await rejection(adapter.chat({ model: "a", messages: ask }, ctx("nope")));
    expect(e.errorClass).toBe("not_found");
    expect(e.upstreamStatus).toBe(404);
    expect(e.message).toContain("model 'nope' not found");
    const s = await rejection(adapter.chat({ model: "a", messages: ask, stream: true }, ctx("nope")));
    expect(s.errorClass).toBe("not_found");
    const emb = await rejection(adapter.embeddings({ model: "a", input: "x" }, ctx("nope")));
    expect(emb.errorClass).toBe("not_found");
    // the known model still works
    expect((await adapter.chat({ model: "a", messages: ask }, ctx("llama3.2"))).kind).toBe("json");
  });

  it("turns a 500 into server_error and a 429 into rate_limited with Retry-After", async () => {
    fake.enqueue("chat", replies.error(500, "the model failed to generate a response"));
    const e = await rejection(adapter.chat({ model: "a", messages: ask, stream: true }, ctx()));
    expect(e.errorClass).toBe("server_error");
    expect(e.message).toContain("the model failed to generate a response");
    expect(e.clientStatus).toBe(502);

    fake.enqueue("generate", replies.error(429, "server busy, please try again", { "Retry-After": "3" }));
    const busy = await rejection(adapter.completions({ model: "a", prompt: "x" }, ctx()));
    expect(busy.errorClass).toBe("rate_limited");
    expect(busy.retryAfterMs).toBe(3000);
  });

  it("reports a refused connection as connect", async () => {
    const url = fake.url;
    await fake.close();
    const down = createOllamaAdapter({ name: "down", baseUrl: url });
    try {
      expect((await rejection(down.chat({ model: "a", messages: ask }, ctx()))).errorClass).toBe("connect");
      expect((await rejection(down.chat({ model: "a", messages: ask, stream: true }, ctx()))).errorClass).toBe("connect");
    } finally {
      await down.close();
      fake = await startFakeOllama();
    }
  });

  it('throws server_error from the iterator on an {"error": …} line mid-stream (HTTP 200), after the chunks before it', async () => {
    fake.enqueue("generate", replies.midStreamError());
    const { chunks, error } = await collectUntilError(await adapter.completions({ model: "a", prompt: "Is it?", stream: true }, ctx()));
    expect(textOf(chunks)).toBe(" Yes.Ican");
    expect(error.errorClass).toBe("server_error");
    expect(error.message).toContain("an error was encountered while running the model");
  });

  it("throws reset when the connection drops mid-stream", async () => {
    fake.enqueue("chat", replies.dropAfter("ollama-chat-stream.ndjson", 1));
    const { chunks, error } = await collectUntilError(await adapter.chat({ model: "a", messages: ask, stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("The");
    expect(error.errorClass).toBe("reset");
  });

  it("throws reset when the stream ends cleanly without its done object", async () => {
    fake.enqueue("chat", replies.truncated("ollama-chat-stream.ndjson"));
    const { chunks, error } = await collectUntilError(await adapter.chat({ model: "a", messages: ask, stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("The");
    expect(error.errorClass).toBe("reset");
  });

  it("throws malformed on a line that is not JSON instead of skipping it", async () => {
    fake.enqueue("chat", replies.malformedLine("ollama-chat-stream.ndjson"));
    const { chunks, error } = await collectUntilError(await adapter.chat({ model: "a", messages: ask, stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("The");
    expect(error.errorClass).toBe("malformed");
    expect(chunks.some((c) => (c.choices as { finish_reason?: string }[])[0]?.finish_reason === "stop")).toBe(false);
  });

  it("reports a non-JSON 200 body as malformed and a dropped non-stream request as reset", async () => {
    fake.enqueue("chat", { kind: "text", body: "<html>proxy</html>", contentType: "application/json" });
    expect((await rejection(adapter.chat({ model: "a", messages: ask }, ctx()))).errorClass).toBe("malformed");
    fake.enqueue("chat", replies.drop());
    expect((await rejection(adapter.chat({ model: "a", messages: ask }, ctx()))).errorClass).toBe("reset");
  });
});

describe("ollama adapter: cancellation", () => {
  it("aborting ctx.signal mid-stream ends iteration and closes the upstream connection", async () => {
    const [first, last] = ndjsonLines("ollama-chat-stream.ndjson");
    const gate = hold();
    fake.enqueue("chat", replies.ndjson([first, gate.step, last]));
    const ac = new AbortController();
    const r = await adapter.chat({ model: "a", messages: ask, stream: true }, ctx("llama3.2", ac.signal));
    const it = streamOf(r)[Symbol.asyncIterator]();
    await it.next(); // role
    await it.next(); // "The"
    const pending = it.next(); // waits on the held upstream
    ac.abort();
    const outcome = await orStuck(pending.then(() => "resolved", (e: unknown) => e));
    expect(outcome).toBeInstanceOf(UpstreamError);
    expect((outcome as UpstreamError).errorClass).toBe("cancelled");
    expect(await orStuck(fake.requestsTo("chat")[0].closed)).toBe("client-closed");
    gate.release();
  });

  it("an abort reason that is an UpstreamError (the router's timeout) is what the iterator throws", async () => {
    fake.enqueue("chat", replies.ndjson([ndjsonLines("ollama-chat-stream.ndjson")[0]], { end: "hang" }));
    const ac = new AbortController();
    const r = await adapter.chat({ model: "a", messages: ask, stream: true }, ctx("llama3.2", ac.signal));
    const it = streamOf(r)[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const pending = it.next();
    ac.abort(new UpstreamError("timeout", "stream idle for 10 ms"));
    const e = await rejection(pending);
    expect(e.errorClass).toBe("timeout");
    expect(await orStuck(fake.requestsTo("chat")[0].closed)).toBe("client-closed");
  });

  it("aborting a non-streaming request closes the upstream connection", async () => {
    fake.enqueue("chat", replies.hang());
    const ac = new AbortController();
    const pending = adapter.chat({ model: "a", messages: ask }, ctx("llama3.2", ac.signal));
    const req = await fake.nextRequest("chat");
    ac.abort();
    expect((await rejection(pending)).errorClass).toBe("cancelled");
    expect(await orStuck(req.closed)).toBe("client-closed");
  });

  it("a consumer that stops reading early closes the upstream connection", async () => {
    fake.enqueue("generate", replies.ndjson(ndjsonLines("ollama-generate-stream-docs-streaming.ndjson"), { delayMs: 50 }));
    const r = await adapter.completions({ model: "a", prompt: "x", stream: true }, ctx());
    for await (const c of streamOf(r)) {
      expect(textOf([c])).toBe("That");
      break;
    }
    expect(await orStuck(fake.requestsTo("generate")[0].closed)).toBe("client-closed");
  });

  it("an already aborted signal sends nothing upstream", async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(adapter.chat({ model: "a", messages: ask, stream: true }, ctx("llama3.2", ac.signal)))).errorClass).toBe("cancelled");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("ollama mapping: stream state", () => {
  it("numbers tool calls across a stream and gives each its own id", () => {
    let n = 0;
    const mapper = new ChatStreamMapper({ id: "chatcmpl-x", created: 1, model: "m", newToolCallId: () => `call_${++n}` });
    const call = (city: string) => ({ function: { name: "get_weather", arguments: { city } } });
    const a = mapper.push({ message: { role: "assistant", content: "", tool_calls: [call("Tokyo"), call("Paris")] }, done: false } as never);
    const b = mapper.push({ message: { role: "assistant", content: "", tool_calls: [call("Oslo")] }, done: true, done_reason: "stop" } as never);
    const calls = [...a, ...b].flatMap((c) => ((c.choices as { delta?: { tool_calls?: unknown[] } }[])[0]?.delta?.tool_calls ?? []) as Record<string, unknown>[]);
    expect(calls.map((c) => [c.index, c.id])).toEqual([
      [0, "call_1"],
      [1, "call_2"],
      [2, "call_3"],
    ]);
    expect((b.at(-2)?.choices as { finish_reason: string }[])[0].finish_reason).toBe("tool_calls");
  });
});
