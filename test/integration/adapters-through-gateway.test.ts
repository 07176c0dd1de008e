// Each wire-protocol adapter behind the real gateway, driven by the official
// openai client: Ollama's NDJSON and Anthropic's event stream come out as OpenAI.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeAnthropic, type FakeAnthropic } from "../fixtures/fake-anthropic.ts";
import { replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

let ollama: FakeOllama;
let anthropic: FakeAnthropic;
let azure: FakeOpenAI;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  ollama = await startFakeOllama();
  anthropic = await startFakeAnthropic();
  azure = await startFakeOpenAI({ name: "azure" });
  gw = await startGateway(
    `
providers:
  ollama:    {type: ollama, base_url: "${ollama.url}"}
  anthropic: {type: anthropic, base_url: "${anthropic.url}", api_key: env:ANTHROPIC_API_KEY}
  azure:     {type: azure, base_url: "${azure.url}", api_version: "2024-10-21", api_key: env:AZURE_KEY, headers: {x-lab-route: env:AZURE_ROUTE, Ocp-Apim-Subscription-Key: env:AZURE_APIM_KEY}}
models:
  "llama3.1:latest":
    deployments: [{provider: ollama, model: "llama3.2", tier: local}]
  claude:
    deployments: [{provider: anthropic, model: claude-3-opus-20240229, price: {input_per_1m: 15, output_per_1m: 75}}]
  gpt-4-turbo:
    deployments: [{provider: azure, model: gpt4-deployment}]
`,
    { env: { ANTHROPIC_API_KEY: "sk-ant-test", AZURE_KEY: "az-key", AZURE_ROUTE: "lab-east", AZURE_APIM_KEY: "apim-secret" } },
  );
  client = new OpenAI({ baseURL: gw.v1, apiKey: "x", maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await ollama?.close();
  await anthropic?.close();
  await azure?.close();
});

const lastRow = () => {
  gw.gateway.requestLog.flush();
  return gw.gateway.requestLog.recent(1)[0]!;
};

describe("ollama behind the gateway", () => {
  it("non-streaming chat: Ollama's answer in OpenAI's shape, usage from eval counts", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "llama3.1:latest", messages: [{ role: "user", content: "why is the sky blue?" }], max_tokens: 50 })
      .withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]!.message).toMatchObject({ role: "assistant", content: "Hello! How are you today?" });
    expect(data.usage).toMatchObject({ prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 });
    expect(response.headers.get("x-routed-provider")).toBe("ollama");
    const sent = ollama.bodies("chat").at(-1);
    expect(sent).toMatchObject({ model: "llama3.2", stream: false, options: { num_predict: 50 } });
    expect(lastRow()).toMatchObject({ provider: "ollama", prompt_tokens: 26, completion_tokens: 298 });
  });

  it("streaming chat: NDJSON becomes SSE chunks, with usage when asked", async () => {
    const stream = await client.chat.completions.create({
      model: "llama3.1:latest",
      messages: [{ role: "user", content: "why is the sky blue?" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.startsWith("The")).toBe(true);
    expect(finish).toBe("stop");
    expect(usage).toMatchObject({ prompt_tokens: 26, completion_tokens: 282 });
    expect(lastRow()).toMatchObject({ stream: true, prompt_tokens: 26, completion_tokens: 282 });
  });

  it("completions and embeddings", async () => {
    const c = await client.completions.create({ model: "llama3.1:latest", prompt: "Why is the sky blue?" });
    expect(c.choices[0]!.text).toBe("The sky is blue because it is the color of the sky.");
    const e = await client.embeddings.create({ model: "llama3.1:latest", input: "Why is the sky blue?" });
    expect(e.data[0]!.embedding.length).toBeGreaterThan(3);
  });

  it("the models Ollama has are discovered and listed", async () => {
    const ids = (await client.models.list()).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(["llama3.1:latest", "deepseek-r1:latest", "llama3.2:latest"]));
    const discovered = (await client.models.list()).data.find((m) => m.id === "deepseek-r1:latest");
    expect(discovered!.owned_by).toBe("ollama");
  });
});

describe("ollama model discovery", () => {
  it("one failed listing keeps the discovered models; a server that stays down loses them, and they return with it", async () => {
    const o = await startFakeOllama();
    const g = await startGateway(`providers: {ollama: {type: ollama, base_url: "${o.url}"}}`, { discoveryIntervalMs: 100 });
    const ids = async () => ((await (await fetch(g.v1 + "/models")).json()) as { data: { id: string }[] }).data.map((m) => m.id);
    try {
      expect(await ids()).toContain("deepseek-r1:latest");
      o.enqueue("tags", replies.error(500, "busy loading a model"));
      await expect.poll(() => o.requestsTo("tags").length > 2, { timeout: 3000 }).toBe(true);
      expect(await ids()).toContain("deepseek-r1:latest");
      o.setReply("tags", replies.error(500, "down"));
      await expect.poll(ids, { timeout: 3000 }).not.toContain("deepseek-r1:latest");
      o.setReply("tags", undefined);
      await expect.poll(ids, { timeout: 3000 }).toContain("deepseek-r1:latest");
    } finally {
      await g.close();
      await o.close();
    }
  });
});

describe("anthropic behind the gateway", () => {
  it("non-streaming: system prompt and roles mapped; the answer and its cost in OpenAI terms", async () => {
    const r = await client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
    });
    expect(r.choices[0]!.message.content).toBe("Hello there!");
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(r.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 6 });
    const sent = anthropic.requests.at(-1)!;
    expect(sent.headers["x-api-key"]).toBe("sk-ant-test");
    expect(sent.body).toMatchObject({ model: "claude-3-opus-20240229", system: "Be brief.", messages: [{ role: "user" }] });
    expect(lastRow().cost_usd).toBeCloseTo((11 * 15 + 6 * 75) / 1e6, 12);
  });

  it("streaming: the event stream becomes OpenAI chunks, priced like the non-streamed answer", async () => {
    const stream = await client.chat.completions.create({ model: "claude", messages: [{ role: "user", content: "Hi" }], stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text).toBe("Hello there!");
    const row = lastRow();
    expect(row).toMatchObject({ stream: true, prompt_tokens: 11, completion_tokens: 6 });
    expect(row.cost_usd).toBeCloseTo((11 * 15 + 6 * 75) / 1e6, 12);
  });
});

describe("azure behind the gateway", () => {
  it("calls the deployment URL with api-version and the api-key header", async () => {
    const r = await client.chat.completions.create({ model: "gpt-4-turbo", messages: [{ role: "user", content: "Hi" }] });
    expect(r.choices[0]!.message.content).toContain("Hello");
    const sent = azure.requests.at(-1)!;
    expect(sent.path).toBe("/openai/deployments/gpt4-deployment/chat/completions");
    expect(sent.query).toBe("api-version=2024-10-21");
    expect(sent.headers["api-key"]).toBe("az-key");
    expect(sent.headers.authorization).toBeUndefined();
  });

  it("sends the provider's headers: (secret references) with every request, streamed or not, next to the api-key", async () => {
    const before = azure.requests.length;
    await client.chat.completions.create({ model: "gpt-4-turbo", messages: [{ role: "user", content: "Hi" }] });
    const stream = await client.chat.completions.create({ model: "gpt-4-turbo", messages: [{ role: "user", content: "Hi" }], stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    expect(text).toContain("Hello");
    const sent = azure.requests.slice(before);
    expect(sent.map((r) => r.path)).toEqual(["/openai/deployments/gpt4-deployment/chat/completions", "/openai/deployments/gpt4-deployment/chat/completions"]);
    for (const r of sent) {
      expect(r.headers["x-lab-route"]).toBe("lab-east");
      expect(r.headers["ocp-apim-subscription-key"]).toBe("apim-secret");
      expect(r.headers["api-key"]).toBe("az-key");
      expect(r.query).toBe("api-version=2024-10-21");
    }
  });
});
