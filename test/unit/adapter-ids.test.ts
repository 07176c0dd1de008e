// Response and tool-call ids come from the gateway's one id source (IdSource, built
// by the composition root and handed to the adapters), in the formats clients have
// always seen: Ollama's chatcmpl-/cmpl-/call_ + 24 hex digits, the embedded engine's
// chatcmpl-/cmpl- + 16 base64url characters.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../gateway/providers/embedded/mapping.ts";
import { createOllamaAdapter } from "../../gateway/providers/ollama/adapter.ts";
import type { ProviderAdapter } from "../../gateway/providers/types.ts";
import { IdSource } from "../../gateway/store/ids.ts";
import { ndjsonLines, replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** An IdSource that remembers the tokens it handed out, so a test can tell where an id came from. */
class RecordingIds extends IdSource {
  readonly tokens: string[] = [];
  override token(bytes: number, encoding: "hex" | "base64url"): string {
    const t = super.token(bytes, encoding);
    this.tokens.push(t);
    return t;
  }
}

describe("IdSource", () => {
  it("hands out distinct tokens of the asked size and encoding, across refills of its pool, between request ids", () => {
    const ids = new IdSource();
    const seen = new Set<string>();
    // 12-byte tokens and 10-byte UUID tails: well past one 2560-byte pool.
    for (let i = 0; i < 1000; i++) {
      const hex = ids.token(12, "hex");
      const b64 = ids.token(12, "base64url");
      const uuid = ids.next(1_700_000_000_000 + i);
      expect(hex).toMatch(/^[0-9a-f]{24}$/);
      expect(b64).toMatch(/^[A-Za-z0-9_-]{16}$/);
      expect(uuid).toMatch(UUID_V7);
      seen.add(hex).add(b64).add(uuid);
    }
    expect(seen.size).toBe(3000);
  });

  it("serves a token larger than its pool straight from the system", () => {
    expect(new IdSource().token(4000, "hex")).toMatch(/^[0-9a-f]{8000}$/);
  });
});

describe("Ollama adapter ids", () => {
  let fake: FakeOllama;
  let adapter: ProviderAdapter;
  let ids: RecordingIds;

  beforeEach(async () => {
    fake = await startFakeOllama();
    ids = new RecordingIds();
    adapter = createOllamaAdapter({ name: "ollama-ids", baseUrl: fake.url, ids });
  });
  afterEach(async () => {
    await adapter.close();
    await fake.close();
  });

  it("a chat answer with a tool call takes its response id and its call id from the given source, as chatcmpl-/call_ + 24 hex digits", async () => {
    const [call, done] = ndjsonLines("ollama-chat-stream-tools.ndjson").map((l) => JSON.parse(l));
    fake.enqueue("chat", replies.json({ ...done, message: call.message }));
    const r = await adapter.chat(
      { model: "a", messages: [{ role: "user", content: "weather in Tokyo?" }], tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }] },
      { signal: new AbortController().signal, upstreamModel: "llama3.2", timeoutMs: 30_000 },
    );
    if (r.kind !== "json") throw new Error(`expected json, got ${r.kind}`);
    const body = r.body as { id: string; choices: { message: { tool_calls: { id: string }[] } }[] };
    const callId = body.choices[0]!.message.tool_calls[0]!.id;
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(callId).toMatch(/^call_[0-9a-f]{24}$/);
    expect(ids.tokens).toEqual([body.id.slice("chatcmpl-".length), callId.slice("call_".length)]);
  });

  it("a text completion's id is cmpl- + 24 hex digits from the source", async () => {
    const r = await adapter.completions({ model: "a", prompt: "hi" }, { signal: new AbortController().signal, upstreamModel: "llama3.2", timeoutMs: 30_000 });
    if (r.kind !== "json") throw new Error(`expected json, got ${r.kind}`);
    const id = (r.body as { id: string }).id;
    expect(id).toMatch(/^cmpl-[0-9a-f]{24}$/);
    expect(ids.tokens).toEqual([id.slice("cmpl-".length)]);
  });
});

describe("embedded adapter ids", () => {
  it("newId draws from the given source: prefix, a dash and 16 base64url characters", () => {
    const ids = new RecordingIds();
    const a = newId(ids, "chatcmpl");
    const b = newId(ids, "cmpl");
    expect(a).toMatch(/^chatcmpl-[A-Za-z0-9_-]{16}$/);
    expect(b).toMatch(/^cmpl-[A-Za-z0-9_-]{16}$/);
    expect(ids.tokens).toEqual([a.slice("chatcmpl-".length), b.slice("cmpl-".length)]);
  });
});
