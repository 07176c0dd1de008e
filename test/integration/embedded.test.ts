// The embedded engine through the real gateway, as a developer uses it: the official
// openai client against labgate serving the tiny real model from a temp models folder.
// No `models:` section: every *.gguf in the folder is discovered.
import { copyFile, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGateway, type Gateway } from "../../gateway/app.ts";
import { parseConfigText } from "../../gateway/config/load.ts";
import type { EmbeddedAdapter } from "../../gateway/providers/embedded/adapter.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url);

interface Running {
  gateway: Gateway;
  url: string;
  client: OpenAI;
  modelsDir: string;
  dataDir: string;
}
const running: Running[] = [];

async function start(providerYaml = "threads: 1", files: Record<string, Buffer> = {}): Promise<Running> {
  const modelsDir = await mkdtemp(join(tmpdir(), "labgate-models-"));
  const dataDir = await mkdtemp(join(tmpdir(), "labgate-data-"));
  await copyFile(MODEL, join(modelsDir, "stories260K.gguf"));
  for (const [name, data] of Object.entries(files)) await writeFile(join(modelsDir, name), data);
  const parsed = parseConfigText(`
providers:
  embedded: {type: embedded, models_dir: "${modelsDir}", ${providerYaml}}
`);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const gateway = await buildGateway({ config: parsed.config, dataDir, modelsDir, env: {}, logLevel: "silent", healthIntervalMs: 0 });
  const url = await gateway.listen("127.0.0.1", 0);
  const r = { gateway, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 }), modelsDir, dataDir };
  running.push(r);
  return r;
}

function engineOf(r: Running): EmbeddedAdapter {
  return r.gateway.registry.get("embedded")!.adapter as EmbeddedAdapter;
}

async function modelIds(r: Running): Promise<string[]> {
  return (await r.client.models.list()).data.map((m) => m.id);
}

let gw: Running;
let client: OpenAI;

beforeAll(async () => {
  const good = await readFile(MODEL);
  gw = await start("threads: 1", { "broken.gguf": good.subarray(0, 100_000) });
  client = gw.client;
});

afterAll(async () => {
  for (const r of running) {
    await r.gateway.close();
    await rm(r.modelsDir, { recursive: true, force: true });
    await rm(r.dataDir, { recursive: true, force: true });
  }
});

describe("embedded engine through the gateway", () => {
  it("/v1/models lists the GGUF files, owned by embedded", async () => {
    const models = await client.models.list();
    const m = models.data.find((x) => x.id === "stories260K");
    expect(m).toMatchObject({ id: "stories260K", object: "model", owned_by: "embedded" });
    // What the GGUF header says reaches the client too.
    expect(m).toMatchObject({ architecture: "llama", n_ctx_train: 2048, context_length: expect.any(Number) });
    expect(models.data.map((x) => x.id)).toContain("broken");
  });

  it("streams a chat completion token by token", async () => {
    const stream = await client.chat.completions.create({
      model: "stories260K",
      messages: [{ role: "user", content: "Tell me a story about a dog." }],
      max_tokens: 100,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let contentChunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.delta?.content) {
        text += c.delta.content;
        contentChunks++;
      }
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.length).toBeGreaterThan(20);
    expect(contentChunks).toBeGreaterThan(2);
    expect(finish).toBe("length");
    expect(usage?.completion_tokens).toBe(100);
    expect(usage?.prompt_tokens).toBeGreaterThan(8);
  });

  it("streams a text completion", async () => {
    const stream = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 100, temperature: 0, stream: true });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      if (chunk.choices[0]?.text) chunks++;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toMatch(/^, there was a little girl named Lily/);
    expect(chunks).toBeGreaterThan(2);
    expect(finish).toBe("length");
  });

  it("non-streaming chat, stop strings and usage from real token counts", async () => {
    const r = await client.chat.completions.create({
      model: "stories260K",
      messages: [{ role: "user", content: "Hello" }],
      max_completion_tokens: 12,
      temperature: 0,
    });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0].message.role).toBe("assistant");
    expect(r.usage).toMatchObject({ completion_tokens: 12, total_tokens: r.usage!.prompt_tokens + 12 });
    const stopped = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop: ["Lily"] });
    expect(stopped.choices[0]).toMatchObject({ text: ", there was a little girl named ", finish_reason: "stop" });
  });

  it("two concurrent requests both complete", async () => {
    const one = (prompt: string) =>
      client.chat.completions.create({ model: "stories260K", messages: [{ role: "user", content: prompt }], max_tokens: 60, temperature: 0 });
    const [a, b] = await Promise.all([one("A story about a cat."), one("A story about a tree.")]);
    expect(a.usage?.completion_tokens).toBe(60);
    expect(b.usage?.completion_tokens).toBe(60);
    expect(a.choices[0].message.content).not.toBe("");
    expect(b.choices[0].message.content).not.toBe("");
  });

  it("same seed and temperature 0 give the same text (and a seed makes sampling repeatable)", async () => {
    const ask = (temperature: number, seed: number) =>
      client.completions.create({ model: "stories260K", prompt: "The little bird", max_tokens: 40, temperature, seed }).then((r) => r.choices[0].text);
    expect(await ask(0, 42)).toBe(await ask(0, 42));
    const s1 = await ask(0.9, 7);
    expect(await ask(0.9, 7)).toBe(s1);
  });

  it("serves embeddings in OpenAI's shape", async () => {
    const r = await client.embeddings.create({ model: "stories260K", input: ["a happy dog", "a sad cat"] });
    expect(r.object).toBe("list");
    expect(r.data).toHaveLength(2);
    expect(r.data[1].index).toBe(1);
    expect(r.data[0].embedding).toHaveLength(64);
    expect(r.usage.prompt_tokens).toBeGreaterThan(2);
  });

  it("a truncated GGUF gives a clear error while the good model still works", async () => {
    const err = await client.chat.completions
      .create({ model: "broken", messages: [{ role: "user", content: "hi" }], max_tokens: 5 })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as Error).message).toMatch(/broken\.gguf could not be loaded: file is truncated/);
    const ok = await client.chat.completions.create({ model: "stories260K", messages: [{ role: "user", content: "hi" }], max_tokens: 5 });
    expect(ok.usage?.completion_tokens).toBe(5);
  });

  it("aborting mid-stream frees the sequence; the next request succeeds", async () => {
    const ac = new AbortController();
    const stream = await client.completions.create(
      { model: "stories260K", prompt: "Once", max_tokens: 1800, stream: true, ...({ ignore_eos: true } as object) },
      { signal: ac.signal },
    );
    let n = 0;
    // The openai client ends the iteration quietly (or with an abort error) once aborted.
    await (async () => {
      for await (const _ of stream) if (++n === 5) ac.abort();
    })().catch((e: unknown) => expect((e as Error).name).toMatch(/Abort/));
    expect(n).toBeLessThan(20);
    const adapter = engineOf(gw);
    await expect.poll(() => adapter.engine.queues().every((q) => q.active === 0), { timeout: 5000 }).toBe(true);
    const next = await client.completions.create({ model: "stories260K", prompt: "Once", max_tokens: 8 });
    expect(next.usage?.completion_tokens).toBe(8);
  });

  it("/health answers while a long generation runs", async () => {
    const res = await fetch(`${gw.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", prompt: "Once", max_tokens: 1900, ignore_eos: true, stream: true }),
    });
    const reader = res.body!.getReader();
    let ended = false;
    let bytes = 0;
    const draining = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
      }
      ended = true;
    })();
    await expect.poll(() => bytes, { timeout: 10_000, interval: 5 }).toBeGreaterThan(0);
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const h = await fetch(`${gw.url}/health`);
      expect(h.status).toBe(200);
      latencies.push(performance.now() - t);
    }
    const embedded = await fetch(`${gw.url}/health/embedded`).then((r) => r.json() as Promise<{ healthy: boolean; detail: string }>);
    expect(embedded.healthy).toBe(true);
    expect(embedded.detail).toMatch(/loaded: stories260K\.gguf \(1 running\)/);
    // All answered while tokens were still being produced.
    expect(ended).toBe(false);
    const before = bytes;
    await expect.poll(() => bytes, { timeout: 10_000, interval: 5 }).toBeGreaterThan(before);
    await reader.cancel();
    await draining.catch(() => {});
    console.log(`/health during generation: ${latencies.map((l) => l.toFixed(1)).join(", ")} ms`);
  });

  it("a file added at runtime appears in /v1/models within seconds and disappears when deleted", async () => {
    expect(await modelIds(gw)).not.toContain("added");
    await copyFile(MODEL, join(gw.modelsDir, "added.gguf"));
    await expect.poll(() => modelIds(gw), { timeout: 10_000, interval: 250 }).toContain("added");
    const r = await client.completions.create({ model: "added", prompt: "Once", max_tokens: 4 });
    expect(r.usage?.completion_tokens).toBe(4);
    await unlink(join(gw.modelsDir, "added.gguf"));
    await expect.poll(() => modelIds(gw), { timeout: 10_000, interval: 250 }).not.toContain("added");
  });
});

describe("embedded engine limits through the gateway", () => {
  it("beyond max_queue the gateway answers 429", async () => {
    const small = await start("threads: 1, parallel: 1, max_queue: 0");
    const long = fetch(`${small.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", prompt: "Once", max_tokens: 1500, ignore_eos: true, stream: true }),
    });
    const first = await long;
    const reader = first.body!.getReader();
    await reader.read(); // generating now
    const err = await small.client.completions
      .create({ model: "stories260K", prompt: "Twice", max_tokens: 4 })
      .then(() => null, (e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(429);
    expect((err as Error).message).toMatch(/busy/);
    await reader.cancel();
  });

  it("a models folder that does not exist yet: no models, health says so", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "labgate-data-"));
    const missing = join(dataDir, "models-not-yet");
    const parsed = parseConfigText(`providers:\n  embedded: {type: embedded, models_dir: "${missing}", threads: 1}\n`);
    if (!parsed.ok) throw new Error("bad config");
    const gateway = await buildGateway({ config: parsed.config, dataDir, modelsDir: missing, env: {}, logLevel: "silent", healthIntervalMs: 0 });
    const url = await gateway.listen("127.0.0.1", 0);
    running.push({ gateway, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "x" }), modelsDir: missing, dataDir });
    const models = await fetch(`${url}/v1/models`).then((r) => r.json() as Promise<{ data: unknown[] }>);
    expect(models.data).toEqual([]);
    const h = await fetch(`${url}/health/embedded`).then((r) => r.json() as Promise<{ healthy: boolean; detail: string }>);
    expect(h.detail).toMatch(/does not exist yet/);
  });
});
