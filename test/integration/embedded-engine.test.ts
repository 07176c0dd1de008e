// The embedded engine through its adapter (no HTTP): the real tiny model, the real
// worker thread, node-llama-cpp's prebuilt binaries. The gateway-level behaviour is in
// embedded.test.ts.
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProviderConfig } from "../../gateway/config/schema.ts";
import { EmbeddedAdapter } from "../../gateway/providers/embedded/adapter.ts";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import type { CallContext, CompletionResult, OpenAIBody, OpenAIChunk } from "../../gateway/providers/types.ts";
import { flatChunks } from "../fixtures/streams.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url);
const dirs: string[] = [];
const adapters: EmbeddedAdapter[] = [];

async function modelsDir(extra: Record<string, Buffer> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "labgate-embedded-"));
  dirs.push(dir);
  await copyFile(MODEL, join(dir, "stories260K.gguf"));
  for (const [name, data] of Object.entries(extra)) await writeFile(join(dir, name), data);
  return dir;
}

function adapter(dir: string, config: Partial<ProviderConfig> = {}): EmbeddedAdapter {
  const a = new EmbeddedAdapter({ name: "embedded", config: { type: "embedded", threads: 1, gpu: false, ...config }, modelsDir: dir });
  adapters.push(a);
  return a;
}

function ctx(model = "stories260K", signal = new AbortController().signal): CallContext {
  return { signal, upstreamModel: model, timeoutMs: 60_000 };
}

async function chunksOf(r: CompletionResult): Promise<OpenAIChunk[]> {
  if (r.kind !== "stream") throw new Error("expected a stream");
  const out: OpenAIChunk[] = [];
  for await (const c of flatChunks(r)) out.push(c);
  return out;
}

function streamedText(chunks: OpenAIChunk[]): string {
  return chunks
    .flatMap((c) => (c.choices as { delta?: { content?: string }; text?: string }[]) ?? [])
    .map((ch) => ch.delta?.content ?? ch.text ?? "")
    .join("");
}

async function expectUpstream(p: Promise<unknown>, errorClass: string, message?: RegExp): Promise<UpstreamError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  const e = err as UpstreamError;
  expect(e.errorClass).toBe(errorClass);
  if (message) expect(e.message).toMatch(message);
  return e;
}

let dir: string;
let a: EmbeddedAdapter;

beforeAll(async () => {
  const good = await readFile(MODEL);
  // Header intact, architecture renamed: passes discovery, fails inside llama.cpp.
  const alien = Buffer.from(good);
  const at = alien.indexOf("general.architecture");
  const v = alien.indexOf("llama", at);
  alien.write("llamz", v);
  dir = await modelsDir({
    "broken.gguf": good.subarray(0, 100_000),
    "alien.gguf": alien,
  });
  a = adapter(dir);
});

afterAll(async () => {
  await Promise.all(adapters.map((x) => x.close()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe("embedded engine adapter", () => {
  it("lists every .gguf with facts from its header", async () => {
    const cards = await a.listModels(new AbortController().signal);
    const good = cards.find((c) => c.id === "stories260K");
    expect(good).toMatchObject({
      owned_by: "embedded",
      context_length: 2048,
      architecture: "llama",
      size_bytes: 1185376,
      file: "stories260K.gguf",
      chat_template: false,
    });
    expect(good?.error).toBeUndefined();
    expect(typeof good?.created).toBe("number");
    expect(cards.find((c) => c.id === "broken")?.error).toMatch(/truncated/);
    expect(cards.map((c) => c.id).sort()).toEqual(["alien", "broken", "stories260K"]);
  });

  it("streams a chat token by token with a role chunk, a finish chunk and real usage", async () => {
    const body: OpenAIBody = { model: "stories260K", messages: [{ role: "user", content: "Tell me a story." }], max_tokens: 100, temperature: 0, stream: true };
    const chunks = await chunksOf(await a.chat(body, ctx()));
    expect(chunks[0]).toMatchObject({ object: "chat.completion.chunk", choices: [{ delta: { role: "assistant" } }] });
    const content = chunks.filter((c) => (c.choices as { delta: { content?: string } }[])[0]?.delta?.content);
    expect(content.length).toBeGreaterThan(2); // streamed in pieces (tokens closer than 5 ms apart share one)
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    const u = last.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(u.completion_tokens).toBe(100);
    expect(u.prompt_tokens).toBeGreaterThan(5);
    expect(u.total_tokens).toBe(u.prompt_tokens + 100);
    expect((chunks.at(-2)!.choices as { finish_reason: string }[])[0].finish_reason).toBe("length");
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it("counts prompt tokens exactly (BOS + tokens) for a completion", async () => {
    const r = await a.completions({ model: "stories260K", prompt: "Once upon a time", max_tokens: 5, temperature: 0 }, ctx());
    expect(r.kind).toBe("json");
    if (r.kind !== "json") return;
    // node-llama-cpp's tokenizer gives 4 tokens for this text with this vocabulary, plus BOS.
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });
    expect((r.body.choices as { finish_reason: string }[])[0].finish_reason).toBe("length");
    const noMax = await a.completions({ model: "stories260K", prompt: "Once upon a time", temperature: 0 }, ctx());
    expect(noMax.kind === "json" && noMax.usage?.completion_tokens).toBe(16); // OpenAI's default for /completions
  });

  it("honours stop strings (finish_reason stop, stop text not returned)", async () => {
    const base = { model: "stories260K", prompt: "Once upon a time", max_tokens: 40, temperature: 0 };
    const full = await a.completions(base, ctx());
    const text = full.kind === "json" ? (full.body.choices as { text: string }[])[0].text : "";
    expect(text).toContain("Lily");
    const stopped = await a.completions({ ...base, stop: ["Lily", "zzz"] }, ctx());
    const choice = stopped.kind === "json" ? (stopped.body.choices as { text: string; finish_reason: string }[])[0] : null;
    expect(choice?.finish_reason).toBe("stop");
    expect(choice?.text).toBe(text.slice(0, text.indexOf("Lily")));
    const streamed = await chunksOf(await a.completions({ ...base, stop: "Lily", stream: true }, ctx()));
    expect(streamedText(streamed)).toBe(choice?.text);
  });

  it("same seed gives the same text; temperature 0 is deterministic", async () => {
    const body = { model: "stories260K", prompt: "The dog", max_tokens: 30, temperature: 0.9, seed: 1234 };
    const texts: string[] = [];
    for (const seed of [1234, 1234, 99]) {
      const r = await a.completions({ ...body, seed }, ctx());
      texts.push(r.kind === "json" ? (r.body.choices as { text: string }[])[0].text : "");
    }
    expect(texts[0]).toBe(texts[1]);
    expect(texts[2]).not.toBe(texts[0]);
    const g1 = await a.completions({ ...body, temperature: 0, seed: 7 }, ctx());
    const g2 = await a.completions({ ...body, temperature: 0, seed: 7 }, ctx());
    expect(g1.kind === "json" && g1.body.choices).toEqual(g2.kind === "json" && g2.body.choices);
  });

  it("serves embeddings as floats and as base64", async () => {
    const r = await a.embeddings({ model: "stories260K", input: ["hello there", "a dog"] }, ctx());
    const data = r.body.data as { index: number; embedding: number[] }[];
    expect(data).toHaveLength(2);
    expect(data[0].embedding).toHaveLength(64);
    expect(r.usage?.prompt_tokens).toBeGreaterThan(2);
    const b = await a.embeddings({ model: "stories260K", input: "hello there", encoding_format: "base64" }, ctx());
    const raw = Buffer.from((b.body.data as { embedding: string }[])[0].embedding, "base64");
    const v = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    expect(Array.from(v)).toEqual(data[0].embedding.map((x) => Math.fround(x)));
  });

  it("a truncated file and a file llama.cpp refuses give clear errors; the good model keeps working", async () => {
    const chat = (model: string) => a.chat({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }, ctx(model));
    await expectUpstream(chat("broken"), "unavailable", /model broken\.gguf could not be loaded: file is truncated/);
    await expectUpstream(chat("alien"), "unavailable", /model alien\.gguf could not be loaded: .*llamz/);
    await expectUpstream(chat("alien"), "unavailable", /llamz/); // remembered, the worker is still fine
    await expectUpstream(chat("nope"), "not_found", /nope/);
    const ok = await a.chat({ model: "stories260K", messages: [{ role: "user", content: "hi" }], max_tokens: 3 }, ctx());
    expect(ok.kind === "json" && ok.usage?.completion_tokens).toBe(3);
  });

  it("rejects a prompt longer than the context with context_window", async () => {
    const small = adapter(dir, { context_size: 256 });
    const long = "Once upon a time there was a little dog. ".repeat(30);
    const e = await expectUpstream(small.completions({ model: "stories260K", prompt: long, max_tokens: 4 }, ctx()), "context_window", /maximum context length/);
    expect(e.clientStatus).toBe(400);
    // A prompt that fits but leaves little room stops with "length".
    const r = await small.completions({ model: "stories260K", prompt: "Once upon a time", max_tokens: 1000, temperature: 0, ignore_eos: true }, ctx());
    expect(r.kind === "json" && r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 251, total_tokens: 256 });
    expect(r.kind === "json" && (r.body.choices as { finish_reason: string }[])[0].finish_reason).toBe("length");
  });
});

describe("embedded engine concurrency and resources", () => {
  it("serves requests through sequences and a FIFO queue; beyond max_queue it is overloaded", async () => {
    const q = adapter(dir, { parallel: 2, max_queue: 2 });
    const body = (i: number) => ({ model: "stories260K", prompt: `Story ${i}:`, max_tokens: 150, temperature: 0, ignore_eos: true });
    const runs = [0, 1, 2, 3].map((i) => q.completions(body(i), ctx()));
    await expectUpstream(q.completions(body(4), ctx()), "overloaded", /busy/);
    const results = await Promise.all(runs);
    for (const r of results) expect(r.kind === "json" && r.usage?.completion_tokens).toBe(150);
    expect(q.engine.queues()).toEqual([{ path: join(dir, "stories260K.gguf"), active: 0, waiting: 0 }]);
  });

  it("abort mid-stream stops promptly and frees the sequence for the next request", async () => {
    const one = adapter(dir, { parallel: 1, max_queue: 0 });
    const ac = new AbortController();
    const r = await one.completions({ model: "stories260K", prompt: "Once", max_tokens: 1800, ignore_eos: true, stream: true }, ctx("stories260K", ac.signal));
    if (r.kind !== "stream") throw new Error("expected stream");
    let n = 0;
    const err = await (async () => {
      for await (const _ of flatChunks(r)) {
        if (++n === 5) ac.abort();
      }
    })().then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as UpstreamError).errorClass).toBe("cancelled");
    expect(n).toBeLessThan(8);
    // parallel 1 and no queue: this only succeeds once the aborted one gave its sequence back.
    let next: CompletionResult | null = null;
    for (let i = 0; i < 50 && !next; i++) {
      next = await one.completions({ model: "stories260K", prompt: "Once", max_tokens: 5 }, ctx()).catch((e: UpstreamError) => {
        if (e.errorClass !== "overloaded") throw e;
        return null;
      });
      if (!next) await new Promise((res) => setTimeout(res, 20));
    }
    expect(next?.kind === "json" && next.usage?.completion_tokens).toBe(5);
  });

  it("a consumer that stops reading early cancels the generation", async () => {
    const one = adapter(dir, { parallel: 1, max_queue: 0 });
    const r = await one.completions({ model: "stories260K", prompt: "Once", max_tokens: 1800, ignore_eos: true, stream: true }, ctx());
    if (r.kind !== "stream") throw new Error("expected stream");
    for await (const _ of flatChunks(r)) break;
    await expect.poll(() => one.engine.queues()[0]?.active, { timeout: 5000 }).toBe(0);
  });

  it("survives the worker dying: in-flight requests fail clearly, the next one restarts it", async () => {
    const w = adapter(dir);
    const r = await w.completions({ model: "stories260K", prompt: "Once", max_tokens: 1800, ignore_eos: true, stream: true }, ctx());
    if (r.kind !== "stream") throw new Error("expected stream");
    const reading = (async () => {
      for await (const _ of flatChunks(r)) {
        /* drain */
      }
    })();
    await w.engine.stopWorker();
    await expectUpstream(reading, "unavailable", /embedded engine stopped unexpectedly/);
    const again = await w.completions({ model: "stories260K", prompt: "Once", max_tokens: 4 }, ctx());
    expect(again.kind === "json" && again.usage?.completion_tokens).toBe(4);
    const h = await w.health(new AbortController().signal);
    expect(h.ok).toBe(true);
    expect(h.detail).toMatch(/restarted 1x/);
  });

  it("loads on first use and unloads after idle_ttl_s", async () => {
    const t = adapter(dir, { idle_ttl_s: 0.3 });
    expect((await t.engine.status()).models).toEqual([]);
    await t.completions({ model: "stories260K", prompt: "Once", max_tokens: 2 }, ctx());
    expect((await t.engine.status()).models.map((m) => m.file)).toEqual(["stories260K.gguf"]);
    await expect.poll(async () => (await t.engine.status()).models.length, { timeout: 5000, interval: 100 }).toBe(0);
  });

  // CUDA asked for on a machine without it: the prebuilt CUDA binary cannot load, and builds are disabled.
  it.skipIf(existsSync("/dev/nvidiactl"))("when llama.cpp cannot start, requests fail clearly and health says why", async () => {
    const noGpu = adapter(dir, { gpu: "cuda" });
    await expectUpstream(noGpu.completions({ model: "stories260K", prompt: "Once", max_tokens: 2 }, ctx()), "unavailable", /could not start llama\.cpp: no prebuilt llama\.cpp binary works here for gpu: "cuda"/);
    await expectUpstream(noGpu.completions({ model: "stories260K", prompt: "Once", max_tokens: 2 }, ctx()), "unavailable", /could not start/);
    const h = await noGpu.health(new AbortController().signal);
    expect(h.ok).toBe(false);
    expect(h.detail).toMatch(/could not start llama\.cpp/);
  });

  it("a models folder that does not exist is not an error", async () => {
    const missing = adapter(join(tmpdir(), `labgate-no-such-dir-${process.pid}-${Date.now()}`));
    expect(await missing.listModels(new AbortController().signal)).toEqual([]);
    const h = await missing.health(new AbortController().signal);
    expect(h.ok).toBe(true);
    expect(h.detail).toMatch(/does not exist yet/);
    expect(h.models).toEqual([]);
  });
});
