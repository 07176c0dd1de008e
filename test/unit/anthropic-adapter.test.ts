// The Anthropic adapter against a fake Anthropic server on loopback that speaks the
// Messages API wire format (test/fixtures/fake-anthropic.ts, samples in test/fixtures/anthropic/).
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAnthropicAdapter } from "../../gateway/providers/anthropic/adapter.ts";
import { toAnthropicMessages, toMessagesRequest } from "../../gateway/providers/anthropic/request.ts";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import type { CallContext, CompletionResult, OpenAIChunk, ProviderAdapter } from "../../gateway/providers/types.ts";
import { startFakeAnthropic, type FakeAnswer, type FakeAnthropic } from "../fixtures/fake-anthropic.ts";
import { rejection } from "../fixtures/upstream-errors.ts";
import { flatChunks } from "../fixtures/streams.ts";

const KEY = "sk-ant-test-key";
const MODEL = "claude-sonnet-4-20250514";
const fixture = (name: string) => readFileSync(new URL(`../fixtures/anthropic/${name}`, import.meta.url), "utf8");

let fake: FakeAnthropic;
let adapter: ProviderAdapter;

beforeEach(async () => {
  fake = await startFakeAnthropic({ apiKey: KEY });
  adapter = createAnthropicAdapter({ name: "claude", baseUrl: fake.url, apiKey: KEY });
});
afterEach(async () => {
  await adapter.close();
  await fake.close();
});

function ctx(signal: AbortSignal = new AbortController().signal): CallContext {
  return { signal, upstreamModel: MODEL, timeoutMs: 30_000 };
}

function json(r: CompletionResult) {
  if (r.kind !== "json") throw new Error(`expected a JSON result, got ${r.kind}`);
  return r;
}

async function collect(r: CompletionResult): Promise<OpenAIChunk[]> {
  if (r.kind !== "stream") throw new Error(`expected a stream, got ${r.kind}`);
  const out: OpenAIChunk[] = [];
  for await (const c of flatChunks(r)) out.push(c);
  return out;
}

/** Runs the iterator until it throws; returns the chunks before the error and the error. */
async function collectUntilError(r: CompletionResult): Promise<{ chunks: OpenAIChunk[]; error: unknown }> {
  if (r.kind !== "stream") throw new Error("expected a stream");
  const chunks: OpenAIChunk[] = [];
  try {
    for await (const c of flatChunks(r)) chunks.push(c);
  } catch (error) {
    return { chunks, error };
  }
  throw new Error(`the stream did not fail (${chunks.length} chunks)`);
}


const choice = (c: OpenAIChunk) => (c.choices as Record<string, any>[])[0];
const contentOf = (chunks: OpenAIChunk[]) =>
  chunks
    .filter((c) => (c.choices as unknown[]).length > 0)
    .map((c) => choice(c).delta?.content ?? "")
    .join("");

const TOOL_ANSWER: FakeAnswer = {
  content: [
    { type: "text", text: "Let me look both up." },
    { type: "tool_use", id: "toolu_01A", name: "get_weather", input: { location: "Paris, France", unit: "celsius" } },
    { type: "tool_use", id: "toolu_01B", name: "get_time", input: { tz: "Europe/Paris", nested: { list: [1, 2, "three"] } } },
  ],
  stop_reason: "tool_use",
  usage: { input_tokens: 120, output_tokens: 48 },
};

describe("anthropic adapter: request mapping on the wire", () => {
  it("posts /v1/messages with the key, the API version, the system prompt pulled out, roles merged and max_tokens defaulted", async () => {
    const r = json(
      await adapter.chat(
        {
          model: "my-alias",
          messages: [
            { role: "system", content: "You are terse." },
            { role: "system", content: "Answer in French." },
            { role: "user", content: "Hi" },
            { role: "user", content: "Still there?" },
            { role: "assistant", content: "Oui." },
            { role: "user", content: "Bye" },
          ],
        },
        ctx(),
      ),
    );
    expect(r.body.object).toBe("chat.completion");
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0];
    expect(req.method).toBe("POST");
    expect(req.path).toBe("/v1/messages");
    expect(req.headers["x-api-key"]).toBe(KEY);
    expect(req.headers["anthropic-version"]).toBe("2023-06-01");
    expect(req.headers["content-type"]).toMatch(/^application\/json/);
    expect(req.headers.authorization).toBeUndefined();
    expect(req.body).toEqual({
      model: MODEL,
      system: "You are terse.\n\nAnswer in French.",
      messages: [
        { role: "user", content: [{ type: "text", text: "Hi" }, { type: "text", text: "Still there?" }] },
        { role: "assistant", content: "Oui." },
        { role: "user", content: "Bye" },
      ],
      max_tokens: 4096,
    });
  });

  it("maps sampling parameters: max_completion_tokens, temperature (clamped to Anthropic's 0..1), top_p, stop, user", async () => {
    await adapter.chat(
      {
        model: "x",
        messages: [{ role: "user", content: "Count" }],
        max_completion_tokens: 300,
        temperature: 1.6,
        top_p: 0.9,
        stop: "END",
        user: "u-42",
      },
      ctx(),
    );
    const b = fake.requests[0].body;
    expect(b.max_tokens).toBe(300);
    expect(b.temperature).toBe(1);
    expect(b.top_p).toBe(0.9);
    expect(b.stop_sequences).toEqual(["END"]);
    expect(b.metadata).toEqual({ user_id: "u-42" });
    expect(b.stream).toBeUndefined();

    await adapter.chat({ model: "x", messages: [{ role: "user", content: "Count" }], max_tokens: 12, stop: ["a", "b"], temperature: 0.2 }, ctx());
    expect(fake.requests[1].body).toMatchObject({ max_tokens: 12, stop_sequences: ["a", "b"], temperature: 0.2 });
  });

  it("converts tools, tool_choice, assistant tool_calls and tool results into Anthropic blocks", async () => {
    await adapter.chat(
      {
        model: "x",
        messages: [
          { role: "user", content: "Weather and time in Paris?" },
          {
            role: "assistant",
            content: null,
            tool_calls: [
              { id: "toolu_01A", type: "function", function: { name: "get_weather", arguments: '{"location":"Paris"}' } },
              { id: "toolu_01B", type: "function", function: { name: "get_time", arguments: "{}" } },
            ],
          },
          { role: "tool", tool_call_id: "toolu_01A", content: "18°C, cloudy" },
          { role: "tool", tool_call_id: "toolu_01B", content: [{ type: "text", text: "14:05" }] },
          { role: "user", content: "Thanks, summarise." },
        ],
        tools: [
          {
            type: "function",
            function: {
              name: "get_weather",
              description: "Current weather",
              parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
            },
          },
          { type: "function", function: { name: "get_time" } },
        ],
        tool_choice: "required",
        parallel_tool_calls: false,
      },
      ctx(),
    );
    const b = fake.requests[0].body;
    expect(b.tools).toEqual([
      {
        name: "get_weather",
        description: "Current weather",
        input_schema: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
      },
      { name: "get_time", input_schema: { type: "object", properties: {} } },
    ]);
    expect(b.tool_choice).toEqual({ type: "any", disable_parallel_tool_use: true });
    expect(b.messages).toEqual([
      { role: "user", content: "Weather and time in Paris?" },
      {
        role: "assistant",
        content: [
          { type: "tool_use", id: "toolu_01A", name: "get_weather", input: { location: "Paris" } },
          { type: "tool_use", id: "toolu_01B", name: "get_time", input: {} },
        ],
      },
      {
        // both tool results and the next user text share ONE user turn, results first
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_01A", content: "18°C, cloudy" },
          { type: "tool_result", tool_use_id: "toolu_01B", content: [{ type: "text", text: "14:05" }] },
          { type: "text", text: "Thanks, summarise." },
        ],
      },
    ]);
  });

  it("maps each tool_choice form", () => {
    const base = { model: "x", messages: [{ role: "user", content: "q" }], tools: [{ type: "function", function: { name: "f" } }] };
    const choiceFor = (tool_choice: unknown) => toMessagesRequest({ ...base, tool_choice }, MODEL, false).tool_choice;
    expect(choiceFor("auto")).toEqual({ type: "auto" });
    expect(choiceFor("none")).toEqual({ type: "none" });
    expect(choiceFor("required")).toEqual({ type: "any" });
    expect(choiceFor({ type: "function", function: { name: "f" } })).toEqual({ type: "tool", name: "f" });
    expect(choiceFor(undefined)).toBeUndefined();
    // no tools: no tool_choice either (Anthropic rejects a choice without tools)
    expect(toMessagesRequest({ model: "x", messages: [{ role: "user", content: "q" }], tool_choice: "auto" }, MODEL, false).tool_choice).toBeUndefined();
  });

  it("produces the same follow-up turn as the captured SDK request (tool_use + tool_result)", () => {
    const captured = JSON.parse(fixture("message-tool-use-request.json"));
    const { messages } = toAnthropicMessages([
      { role: "user", content: 'Use the test_tool with value "test", then provide a final response' },
      {
        role: "assistant",
        content: "I'll use the test_tool with the value \"test\" as requested, then provide a final response.",
        tool_calls: [{ id: "toolu_01Ff6oGJapCYgEPy4WkqkoMJ", type: "function", function: { name: "test_tool", arguments: '{"value":"test"}' } }],
      },
      { role: "tool", tool_call_id: "toolu_01Ff6oGJapCYgEPy4WkqkoMJ", content: "Tool result" },
    ]);
    expect(messages).toEqual(captured.messages);
  });

  it("sends images: data: URLs as base64 sources, http URLs as url sources", async () => {
    await adapter.chat(
      {
        model: "x",
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What is in these?" },
              { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
              { type: "image_url", image_url: { url: "https://example.com/cat.jpg", detail: "low" } },
            ],
          },
        ],
      },
      ctx(),
    );
    expect(fake.requests[0].body.messages[0].content).toEqual([
      { type: "text", text: "What is in these?" },
      { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
      { type: "image", source: { type: "url", url: "https://example.com/cat.jpg" } },
    ]);
  });

  it("refuses what Anthropic cannot take before calling it", async () => {
    const err = await rejection(
      adapter.chat({ model: "x", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "ftp://x/y.png" } }] }] }, ctx()),
    );
    expect(err.errorClass).toBe("bad_request");
    const err2 = await rejection(
      adapter.chat(
        { model: "x", messages: [{ role: "assistant", content: null, tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{oops" } }] }] },
        ctx(),
      ),
    );
    expect(err2.errorClass).toBe("bad_request");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("anthropic adapter: answers", () => {
  it("non-stream text -> chat.completion with content, finish_reason and usage", async () => {
    const r = json(await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }] }, ctx()));
    const b = r.body as Record<string, any>;
    expect(b.object).toBe("chat.completion");
    expect(b.id).toMatch(/^msg_/);
    expect(b.model).toBe(MODEL);
    expect(typeof b.created).toBe("number");
    expect(b.choices).toHaveLength(1);
    expect(b.choices[0].message).toEqual({ role: "assistant", content: "Hello there!" });
    expect(b.choices[0].finish_reason).toBe("stop");
    expect(r.usage).toEqual({ prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
    expect(b.usage).toEqual(r.usage);
  });

  it("max_tokens and stop_sequence stop reasons become length and stop", async () => {
    fake.answer = { content: [{ type: "text", text: "Once upon a" }], stop_reason: "max_tokens", usage: { input_tokens: 5, output_tokens: 3 } };
    const a = json(await adapter.chat({ model: "x", messages: [{ role: "user", content: "story" }], max_tokens: 3 }, ctx()));
    expect((a.body as any).choices[0].finish_reason).toBe("length");
    fake.answer = { content: [{ type: "text", text: "1, 2" }], stop_reason: "stop_sequence", stop_sequence: ", 3", usage: { input_tokens: 5, output_tokens: 3 } };
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "count" }], stream: true }, ctx()));
    expect(chunks.map((c) => (c.choices as any[])[0]?.finish_reason).filter(Boolean)).toEqual(["stop"]);
  });

  it("non-stream tool_use -> message.tool_calls with JSON string arguments (captured answer)", async () => {
    const captured = JSON.parse(fixture("message-tool-use.json"));
    fake.answer = { ...captured, id: captured.id, model: captured.model };
    const r = json(await adapter.chat({ model: "x", messages: [{ role: "user", content: "go" }], tools: [{ type: "function", function: { name: "test_tool" } }] }, ctx()));
    const c = (r.body as any).choices[0];
    expect(c.finish_reason).toBe("tool_calls");
    expect(c.message.content).toBe('I\'ll use the test_tool with the value "test" as requested, then provide a final response.');
    expect(c.message.tool_calls).toEqual([{ id: "toolu_01Ff6oGJapCYgEPy4WkqkoMJ", type: "function", function: { name: "test_tool", arguments: '{"value":"test"}' } }]);
    expect((r.body as any).id).toBe("msg_01LGfAxK63MQNgvZtiogcuqG");
    expect(r.usage).toEqual({ prompt_tokens: 415, completion_tokens: 76, total_tokens: 491 });
  });

  it("stream text -> role chunk first, content deltas, a finish chunk, then a usage chunk", async () => {
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }], stream: true }, ctx()));
    expect(fake.requests[0].body.stream).toBe(true);
    expect(fake.requests[0].headers.accept).toBe("text/event-stream");
    for (const c of chunks) expect(c.object).toBe("chat.completion.chunk");
    expect(choice(chunks[0]).delta).toEqual({ role: "assistant", content: "" });
    expect(contentOf(chunks)).toBe("Hello there!");
    const finishes = chunks.filter((c) => (c.choices as any[])[0]?.finish_reason);
    expect(finishes).toHaveLength(1);
    expect(choice(finishes[0]).finish_reason).toBe("stop");
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
    // every chunk of one answer carries the same id and model
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.model))).toEqual(new Set([MODEL]));
  });

  it("streams for real: the first chunk arrives while the upstream is still sending", async () => {
    fake.pauseMs = 200;
    const r = await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }], stream: true }, ctx());
    if (r.kind !== "stream") throw new Error("expected a stream");
    const it = flatChunks(r)[Symbol.asyncIterator]();
    const first = await it.next();
    expect(choice(first.value!).delta.role).toBe("assistant");
    expect(fake.requests[0].finished).toBe(false);
    await it.return?.(undefined);
  });

  it("stream tool_use -> OpenAI tool_calls deltas whose arguments concatenate to the tool input", async () => {
    fake.answer = TOOL_ANSWER;
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "Paris?" }], stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("Let me look both up.");
    const calls = chunks.flatMap((c) => ((c.choices as any[])[0]?.delta?.tool_calls ?? []) as any[]);
    const starts = calls.filter((c) => c.id);
    expect(starts).toEqual([
      { index: 0, id: "toolu_01A", type: "function", function: { name: "get_weather", arguments: "" } },
      { index: 1, id: "toolu_01B", type: "function", function: { name: "get_time", arguments: "" } },
    ]);
    expect(calls.filter((c) => !c.id).length).toBeGreaterThan(2); // the arguments really arrive in pieces
    const args = (i: number) => calls.filter((c) => c.index === i).map((c) => c.function.arguments).join("");
    expect(JSON.parse(args(0))).toEqual({ location: "Paris, France", unit: "celsius" });
    expect(JSON.parse(args(1))).toEqual({ tz: "Europe/Paris", nested: { list: [1, 2, "three"] } });
    expect(chunks.map((c) => (c.choices as any[])[0]?.finish_reason).filter(Boolean)).toEqual(["tool_calls"]);
  });

  it("replays the captured SDK tool-use stream: tool index 0 although Anthropic's block index is 1", async () => {
    fake.rawStream = fixture("stream-tool-use.sse");
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "Weather in Paris?" }], stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("I'll check the current weather in Paris for you.");
    const calls = chunks.flatMap((c) => ((c.choices as any[])[0]?.delta?.tool_calls ?? []) as any[]);
    expect(calls.every((c) => c.index === 0)).toBe(true);
    expect(calls[0]).toEqual({ index: 0, id: "toolu_01NRLabsLyVHZPKxbKvkfSMn", type: "function", function: { name: "get_weather", arguments: "" } });
    expect(JSON.parse(calls.map((c) => c.function.arguments).join(""))).toEqual({ location: "Paris" });
    expect(chunks.map((c) => (c.choices as any[])[0]?.finish_reason).filter(Boolean)).toEqual(["tool_calls"]);
    expect(chunks[chunks.length - 1].usage).toEqual({ prompt_tokens: 377, completion_tokens: 65, total_tokens: 442 });
    expect(chunks[0].id).toBe("msg_019Q1hrJbZG26Fb9BQhrkHEr");
  });

  it("replays the captured SDK text stream (no trailing blank line after message_stop)", async () => {
    fake.rawStream = fixture("stream-text.sse");
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hi" }], stream: true }, ctx()));
    expect(contentOf(chunks)).toBe("Hello there!");
    expect(chunks[chunks.length - 1].usage).toEqual({ prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
  });

  it("reports the same usage streamed and not streamed, cache tokens counted as prompt tokens", async () => {
    fake.answer = {
      content: [{ type: "text", text: "Cached answer." }],
      stop_reason: "end_turn",
      usage: { input_tokens: 10, cache_creation_input_tokens: 200, cache_read_input_tokens: 1000, output_tokens: 7 },
    };
    const plain = json(await adapter.chat({ model: "x", messages: [{ role: "user", content: "q" }] }, ctx()));
    const chunks = await collect(await adapter.chat({ model: "x", messages: [{ role: "user", content: "q" }], stream: true }, ctx()));
    const streamed = chunks[chunks.length - 1].usage;
    expect(plain.usage).toEqual({ prompt_tokens: 1210, completion_tokens: 7, total_tokens: 1217 });
    expect(streamed).toEqual(plain.usage);
  });
});

describe("anthropic adapter: the fake speaks the captured format", () => {
  it("builds the same event sequence and field layout as the captured tool-use stream", () => {
    const parse = (text: string) =>
      text
        .split("\n\n")
        .filter((f) => f.trim() !== "")
        .map((f) => {
          const [eventLine, dataLine] = f.split("\n");
          return { event: eventLine.replace(/^event: /, ""), data: JSON.parse(dataLine.replace(/^data: /, "")) };
        });
    const captured = parse(fixture("stream-tool-use.sse"));
    const ours = parse(
      fake.renderStream({
        content: [
          { type: "text", text: "I'll check the current weather in Paris for you." },
          { type: "tool_use", id: "toolu_01NRLabsLyVHZPKxbKvkfSMn", name: "get_weather", input: { location: "Paris" } },
        ],
        stop_reason: "tool_use",
        usage: { input_tokens: 377, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 65 },
      }),
    );
    const dedupe = (evs: { event: string; data: any }[]) =>
      evs.map((e) => (e.event === "content_block_delta" ? `${e.event}:${e.data.delta.type}` : e.event)).filter((e, i, a) => e !== a[i - 1]);
    expect(dedupe(ours)).toEqual(dedupe(captured));
    for (const e of ours) expect(e.data.type).toBe(e.event); // event name mirrored in data.type
    const keys = (o: unknown) => Object.keys(o as object);
    expect(keys(ours[0].data.message)).toEqual(keys(captured[0].data.message));
    expect(keys(ours[0].data.message.usage)).toEqual(["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"]);
    expect(ours.at(-2)).toEqual(captured.at(-2)); // message_delta, byte-identical content
    // the real API's ping has a space after the colon; so does the fake's
    expect(fake.renderStream()).toContain('event: ping\ndata: {"type": "ping"}\n\n');
    expect(fixture("stream-tool-use.sse")).toContain('event: ping\ndata: {"type": "ping"}\n\n');
  });
});

describe("anthropic adapter: completions and embeddings", () => {
  it("maps /v1/completions to one user message and answers text_completion", async () => {
    const r = json(await adapter.completions({ model: "x", prompt: "Say hello", max_tokens: 20, stop: ["\n"] }, ctx()));
    expect(fake.requests[0].body).toEqual({ model: MODEL, messages: [{ role: "user", content: "Say hello" }], max_tokens: 20, stop_sequences: ["\n"] });
    expect(r.body).toMatchObject({ object: "text_completion", model: MODEL, choices: [{ text: "Hello there!", index: 0, logprobs: null, finish_reason: "stop" }] });
    expect(r.usage).toEqual({ prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
  });

  it("streams completions as text_completion chunks ending with a usage chunk", async () => {
    const chunks = await collect(await adapter.completions({ model: "x", prompt: ["Say hello"], stream: true }, ctx()));
    expect(fake.requests[0].body).toMatchObject({ messages: [{ role: "user", content: "Say hello" }], max_tokens: 4096, stream: true });
    for (const c of chunks) expect(c.object).toBe("text_completion");
    const withChoice = chunks.filter((c) => (c.choices as any[]).length > 0);
    expect(withChoice.map((c) => choice(c).text).join("")).toBe("Hello there!");
    expect(withChoice.map((c) => choice(c).finish_reason).filter(Boolean)).toEqual(["stop"]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 } });
  });

  it("embeddings: Anthropic has none", async () => {
    const err = await rejection(adapter.embeddings({ model: "x", input: "hi" }, ctx()));
    expect(err.errorClass).toBe("bad_request");
    expect(err.message).toBe("anthropic provides no embeddings");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("anthropic adapter: errors", () => {
  const ask = (stream = false) => adapter.chat({ model: "x", messages: [{ role: "user", content: "hi" }], stream }, ctx());

  it("429 rate_limit_error -> rate_limited with Retry-After and Anthropic's message", async () => {
    fake.faultOnce({ kind: "http", status: 429, retryAfter: "7", message: "Number of request tokens has exceeded your per-minute rate limit" });
    const err = await rejection(ask());
    expect(err.errorClass).toBe("rate_limited");
    expect(err.upstreamStatus).toBe(429);
    expect(err.retryAfterMs).toBe(7000);
    expect(err.message).toContain("per-minute rate limit");
    expect(err.retryable).toBe(true);
    // the fault was for one request only
    expect(json(await ask()).body.object).toBe("chat.completion");
  });

  it("529 overloaded_error -> server_error with Retry-After, also before the first byte of a stream", async () => {
    fake.fault = { kind: "http", status: 529, retryAfter: "2" };
    const err = await rejection(ask());
    expect(err.errorClass).toBe("server_error");
    expect(err.upstreamStatus).toBe(529);
    expect(err.retryAfterMs).toBe(2000);
    expect(err.message).toContain("Overloaded");
    const streamErr = await rejection(ask(true)); // fails in chat(), before any chunk: the router can still fail over
    expect(streamErr.errorClass).toBe("server_error");
    expect(streamErr.retryAfterMs).toBe(2000);
  });

  it("500 -> server_error; wrong key -> auth; prompt too long -> context_window; 404 model -> not_found", async () => {
    fake.faultOnce({ kind: "http", status: 500 });
    expect((await rejection(ask())).errorClass).toBe("server_error");

    fake.faultOnce({ kind: "http", status: 400, message: "prompt is too long: 210000 tokens > 200000 maximum" });
    const ctxErr = await rejection(ask());
    expect(ctxErr.errorClass).toBe("context_window");
    expect(ctxErr.clientStatus).toBe(400);

    fake.faultOnce({ kind: "http", status: 404, message: "model: claude-nope" });
    expect((await rejection(ask())).errorClass).toBe("not_found");

    const wrong = createAnthropicAdapter({ name: "claude", baseUrl: fake.url, apiKey: "sk-ant-wrong" });
    try {
      const err = await rejection(wrong.chat({ model: "x", messages: [{ role: "user", content: "hi" }] }, ctx()));
      expect(err.errorClass).toBe("auth");
      expect(err.upstreamStatus).toBe(401);
      expect(err.message).toContain("invalid x-api-key");
    } finally {
      await wrong.close();
    }
  });

  it("402 billing_error counts as the provider's credentials problem (fail over), not the request's", async () => {
    fake.faultOnce({ kind: "http", status: 402, message: "Your credit balance is too low" });
    const err = await rejection(ask());
    expect(err.errorClass).toBe("auth");
    expect(err.failover).toBe(true);
  });

  it("an overloaded_error event mid-stream is thrown from the iterator after the chunks already sent", async () => {
    fake.fault = { kind: "stream_error", afterEvents: 4 };
    const { chunks, error } = await collectUntilError(await ask(true));
    expect(contentOf(chunks)).toBe("Hello"); // message_start, block start, ping, first delta went out
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).errorClass).toBe("server_error");
    expect((error as UpstreamError).upstreamStatus).toBe(529);
    expect((error as UpstreamError).message).toContain("Overloaded");
    expect(chunks.some((c) => c.usage)).toBe(false);
  });

  it("a rate_limit_error event mid-stream -> rate_limited", async () => {
    fake.fault = { kind: "stream_error", afterEvents: 1, errorType: "rate_limit_error" };
    const { error } = await collectUntilError(await ask(true));
    expect((error as UpstreamError).errorClass).toBe("rate_limited");
  });

  it("the captured error event itself (doc sample) parses to server_error", async () => {
    fake.rawStream = fixture("stream-text.sse").split("event: content_block_start")[0] + fixture("stream-error-overloaded.sse");
    const { chunks, error } = await collectUntilError(await ask(true));
    expect(chunks).toHaveLength(1); // the role chunk from message_start
    expect((error as UpstreamError).errorClass).toBe("server_error");
  });

  it("a connection dropped mid-stream -> reset", async () => {
    fake.fault = { kind: "drop", afterEvents: 4 };
    const { chunks, error } = await collectUntilError(await ask(true));
    expect(contentOf(chunks)).toBe("Hello");
    expect((error as UpstreamError).errorClass).toBe("reset");
  });

  it("a stream that ends cleanly but before the stop reason -> reset; garbage JSON -> malformed", async () => {
    fake.rawStream = fixture("stream-text.sse").split("event: content_block_stop")[0];
    const { error } = await collectUntilError(await ask(true));
    expect((error as UpstreamError).errorClass).toBe("reset");

    fake.rawStream = null;
    fake.fault = { kind: "malformed", afterEvents: 2 };
    const second = await collectUntilError(await ask(true));
    expect((second.error as UpstreamError).errorClass).toBe("malformed");
  });

  it("an unreachable upstream -> connect", async () => {
    const url = fake.url;
    await fake.close();
    const gone = createAnthropicAdapter({ name: "claude", baseUrl: url, apiKey: KEY });
    try {
      expect((await rejection(gone.chat({ model: "x", messages: [{ role: "user", content: "hi" }] }, ctx()))).errorClass).toBe("connect");
    } finally {
      await gone.close();
    }
    fake = await startFakeAnthropic({ apiKey: KEY }); // for afterEach
  });
});

describe("anthropic adapter: cancellation", () => {
  it("aborting mid-stream stops the iterator with cancelled and closes the upstream connection", async () => {
    fake.pauseMs = 5_000;
    const ac = new AbortController();
    const r = await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }], stream: true }, ctx(ac.signal));
    if (r.kind !== "stream") throw new Error("expected a stream");
    const it = flatChunks(r)[Symbol.asyncIterator]();
    await it.next(); // the role chunk: the upstream is now mid-answer, pausing
    const pending = it.next();
    ac.abort();
    const err = await rejection(pending);
    expect(err.errorClass).toBe("cancelled");
    expect(await fake.requests[0].closed).toEqual({ early: true });
  });

  it("aborting before the first byte rejects chat() and closes the upstream connection", async () => {
    fake.firstByteDelayMs = 5_000;
    const ac = new AbortController();
    const pending = adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }], stream: true }, ctx(ac.signal));
    while (fake.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    expect((await rejection(pending)).errorClass).toBe("cancelled");
    expect(await fake.requests[0].closed).toEqual({ early: true });
  });

  it("a consumer that stops reading releases the upstream", async () => {
    fake.pauseMs = 5_000;
    const r = await adapter.chat({ model: "x", messages: [{ role: "user", content: "Hello" }], stream: true }, ctx());
    if (r.kind !== "stream") throw new Error("expected a stream");
    for await (const _ of flatChunks(r)) break;
    expect(await fake.requests[0].closed).toEqual({ early: true });
  });
});

describe("anthropic adapter: health and models", () => {
  it("health is ok with the key and lists the models", async () => {
    const h = await adapter.health(AbortSignal.timeout(5_000));
    expect(h.ok).toBe(true);
    expect(h.models).toEqual(["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]);
    expect(fake.requests[0]).toMatchObject({ method: "GET", headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01" } });
    expect(fake.requests[0].path).toMatch(/^\/v1\/models/);
  });

  it("health never throws: wrong key and unreachable host are not ok, with a reason", async () => {
    const wrong = createAnthropicAdapter({ name: "claude", baseUrl: fake.url, apiKey: "nope" });
    const h = await wrong.health(AbortSignal.timeout(5_000));
    await wrong.close();
    expect(h.ok).toBe(false);
    expect(h.detail).toContain("401");

    const nowhere = createAnthropicAdapter({ name: "claude", baseUrl: "http://127.0.0.1:1", apiKey: KEY });
    const h2 = await nowhere.health(AbortSignal.timeout(5_000));
    await nowhere.close();
    expect(h2.ok).toBe(false);
    expect(h2.detail).not.toBe("");
  });

  it("listModels follows pages and answers ModelCards owned by anthropic", async () => {
    fake.models = [
      { id: "claude-opus-4-1-20250805", display_name: "Claude Opus 4.1", created_at: "2025-08-05T00:00:00Z" },
      { id: "claude-sonnet-4-20250514", display_name: "Claude Sonnet 4", created_at: "2025-05-22T00:00:00Z" },
      { id: "claude-3-5-haiku-20241022", display_name: "Claude Haiku 3.5", created_at: "2024-10-22T00:00:00Z" },
    ];
    fake.modelsPageSize = 2;
    const cards = await adapter.listModels!(AbortSignal.timeout(5_000));
    expect(cards.map((c) => c.id)).toEqual(["claude-opus-4-1-20250805", "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]);
    expect(cards[0]).toEqual({ id: "claude-opus-4-1-20250805", owned_by: "anthropic", created: Date.parse("2025-08-05T00:00:00Z") / 1000, display_name: "Claude Opus 4.1" });
    expect(fake.requests.map((r) => r.path)).toEqual(["/v1/models?limit=1000", "/v1/models?limit=1000&after_id=claude-sonnet-4-20250514"]);
  });
});
