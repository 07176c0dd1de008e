// Servers already running on the machine: each found on its port, classified by
// what answers (never by the port), added as a provider whose models become model
// groups; one that goes away turns unhealthy and its models leave after the grace
// period; one that appears is added without a restart.
import { afterEach, describe, expect, it } from "vitest";
import { startFakeLabServer, type FakeLabServer } from "../fixtures/fake-lab-server.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function lab(kind: Parameters<typeof startFakeLabServer>[0], port = 0): Promise<FakeLabServer> {
  const s = await startFakeLabServer(kind, port);
  closers.push(() => s.close().catch(() => {}));
  return s;
}

async function gatewayProbing(ports: number[], extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway(
    JSON.stringify({ lab: { discovery: { hosts: ["127.0.0.1"], ports, interval_s: 0.2, grace_s: 0.6 } }, ...extra }),
    { serverDiscovery: true, discoveryIntervalMs: 200 },
  );
  closers.push(() => gw.close());
  return gw;
}

interface Found {
  host: string;
  port: number;
  kind: string | null;
  provider: string | null;
  discovered: boolean;
  answering: boolean;
  healthy: boolean;
  evidence: string[];
  models: string[];
}

const servers = async (gw: TestGateway): Promise<Found[]> =>
  ((await (await fetch(`${gw.url}/admin/lab/servers`)).json()) as { data: Found[] }).data.sort((a, b) => a.port - b.port);

const modelIds = async (gw: TestGateway): Promise<string[]> => ((await (await fetch(`${gw.v1}/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id).sort();

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await what();
  for (let i = 0; i < 100 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = await what();
  }
  return v;
}

describe("servers found on the machine", () => {
  it("classifies each server by what answers, with its evidence, and serves their models", async () => {
    const ollama = await lab("ollama");
    const llama = await lab("llamacpp");
    const vllm = await lab("vllm");
    const web = await lab("not-an-llm");
    const generic: FakeOpenAI = await startFakeOpenAI({ name: "generic" });
    closers.push(() => generic.close());
    const genericPort = Number(new URL(generic.url).port);
    const nothing = await freePort();
    const gw = await gatewayProbing([ollama.port, llama.port, vllm.port, web.port, genericPort, nothing]);

    const found = await until(() => servers(gw), (s) => s.length === 5);
    const byPort = new Map(found.map((s) => [s.port, s]));
    expect(byPort.get(ollama.port)).toMatchObject({ kind: "ollama", provider: "ollama", discovered: true, answering: true });
    expect(byPort.get(ollama.port)!.evidence[0]).toMatch(/GET \/api\/version -> 200 .*0\.5\.1/);
    expect(byPort.get(llama.port)).toMatchObject({ kind: "llamacpp", provider: "llama-cpp" });
    expect(byPort.get(llama.port)!.evidence.join("\n")).toMatch(/GET \/props -> 200 \{ "default_generation_settings"/);
    expect(byPort.get(vllm.port)).toMatchObject({ kind: "vllm", provider: "vllm" });
    expect(byPort.get(vllm.port)!.evidence.join("\n")).toMatch(/GET \/metrics -> 200 # HELP vllm:/);
    expect(byPort.get(genericPort)).toMatchObject({ kind: "openai-compatible", provider: "openai-compatible" });
    expect(byPort.get(web.port)).toMatchObject({ kind: null, provider: null });
    expect(byPort.has(nothing)).toBe(false);

    // Each became a provider of source "discovery", and their models are routable.
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; type: string; source: string }[] };
    expect(providers.data.map((p) => [p.name, p.type, p.source]).sort()).toEqual([
      ["llama-cpp", "llamacpp", "discovery"],
      ["ollama", "ollama", "discovery"],
      ["openai-compatible", "openai-compatible", "discovery"],
      ["vllm", "vllm", "discovery"],
    ]);
    const models = await until(() => modelIds(gw), (m) => m.length >= 5);
    expect(models).toEqual(
      expect.arrayContaining(["deepseek-r1:latest", "llama3.2:latest", "../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "meta-llama/Llama-3.1-8B-Instruct"]),
    );
    const genericModels = (await servers(gw)).find((s) => s.port === genericPort)!.models;
    expect(genericModels.length).toBeGreaterThan(0);
    const chat = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: genericModels[0], messages: [{ role: "user", content: "hi" }] }),
    });
    expect(chat.status).toBe(200);
    expect(chat.headers.get("x-routed-provider")).toBe("openai-compatible");

    // The operator's toggle works on a discovered provider as on a configured one.
    const ask = () =>
      fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: genericModels[0], messages: [{ role: "user", content: "hi" }] }),
      }).then((r) => r.status);
    await fetch(`${gw.url}/admin/providers/openai-compatible/disable`, { method: "POST" });
    expect(await ask()).toBe(503);
    await fetch(`${gw.url}/admin/providers/openai-compatible/enable`, { method: "POST" });
    expect(await ask()).toBe(200);
  });

  it("a server that goes away turns unhealthy and its models leave; one that appears is added without a restart", async () => {
    const ollama = await lab("ollama");
    const laterPort = await freePort();
    const gw = await gatewayProbing([ollama.port, laterPort]);
    await until(() => modelIds(gw), (m) => m.includes("llama3.2:latest"));

    await ollama.close();
    const gone = await until(() => servers(gw), (s) => s[0]?.answering === false);
    expect(gone[0]).toMatchObject({ kind: "ollama", provider: "ollama", answering: false, healthy: false });
    expect(await until(() => modelIds(gw), (m) => !m.includes("llama3.2:latest"))).not.toContain("llama3.2:latest");

    // A llama.cpp server starts on another watched port, and the Ollama one comes back.
    await lab("llamacpp", laterPort);
    await lab("ollama", ollama.port);
    const back = await until(() => servers(gw), (s) => s.length === 2 && s.every((x) => x.answering && x.healthy));
    expect(Object.fromEntries(back.map((s) => [s.port, [s.kind, s.provider]]))).toEqual({
      [ollama.port]: ["ollama", "ollama"],
      [laterPort]: ["llamacpp", "llama-cpp"],
    });
    expect(await until(() => modelIds(gw), (m) => m.includes("llama3.2:latest") && m.some((x) => x.endsWith(".gguf")))).toEqual(
      expect.arrayContaining(["llama3.2:latest", "../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"]),
    );
  });

  it("a server the config already names is served by that provider, not added twice", async () => {
    const ollama = await lab("ollama");
    const gw = await gatewayProbing([ollama.port], { providers: { "my-ollama": { type: "ollama", base_url: `http://localhost:${ollama.port}` } } });
    const found = await until(() => servers(gw), (s) => s.length === 1);
    expect(found[0]).toMatchObject({ kind: "ollama", provider: "my-ollama", discovered: false });
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string }[] };
    expect(providers.data.map((p) => p.name)).toEqual(["my-ollama"]);
  });
});
