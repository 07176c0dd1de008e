// Operator toggles as the router applies them: disabling `openai` moves
// gpt-4-turbo (openai 60 / azure 25 / anthropic 15) to azure and anthropic only,
// the toggle survives a restart on the same data folder, enabling restores it;
// X-Debug-Mode: true shows the attempts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeAnthropic, type FakeAnthropic } from "../fixtures/fake-anthropic.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const env = { OPENAI_API_KEY: "sk-openai", AZURE_API_KEY: "az-key", ANTHROPIC_API_KEY: "sk-ant" };

async function chat(gw: TestGateway, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: "gpt-4-turbo", messages: [{ role: "user", content: "hi" }] }),
  });
}

async function spread(gw: TestGateway, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        next++;
        const res = await chat(gw);
        expect(res.status).toBe(200);
        await res.text();
        const p = res.headers.get("x-routed-provider")!;
        counts[p] = (counts[p] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

async function providerList(gw: TestGateway): Promise<Record<string, boolean>> {
  const body = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; enabled: boolean }[] };
  return Object.fromEntries(body.data.map((p) => [p.name, p.enabled]));
}

describe("disabling a provider", () => {
  let openai: FakeOpenAI;
  let azure: FakeOpenAI;
  let anthropic: FakeAnthropic;
  let dataDir: string;
  let yaml: string;

  beforeAll(async () => {
    openai = await startFakeOpenAI({ name: "openai", reply: ["from", " openai"] });
    azure = await startFakeOpenAI({ name: "azure", reply: ["from", " azure"] });
    anthropic = await startFakeAnthropic();
    dataDir = mkdtempSync(join(tmpdir(), "labgate-admin-"));
    // The example config's shape, each provider type speaking its own wire format to a loopback fake.
    yaml = JSON.stringify({
      providers: {
        openai: { type: "openai", base_url: openai.v1, api_key: "env:OPENAI_API_KEY" },
        azure: { type: "azure", base_url: azure.url, api_version: "2024-10-21", api_key: "env:AZURE_API_KEY" },
        anthropic: { type: "anthropic", base_url: anthropic.url, api_key: "env:ANTHROPIC_API_KEY" },
      },
      models: {
        "gpt-4-turbo": {
          strategy: "weighted",
          deployments: [
            { provider: "openai", model: "gpt-4-turbo", weight: 60, tier: "premium", price: { input_per_1m: 10, output_per_1m: 30 } },
            { provider: "azure", model: "gpt-4-turbo", weight: 25, tier: "premium" },
            { provider: "anthropic", model: "claude-3-opus-20240229", weight: 15, tier: "premium" },
          ],
        },
      },
      router: { timeout_s: 30, retries: 2 },
    });
  });
  afterAll(async () => {
    await openai?.close();
    await azure?.close();
    await anthropic?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const anthropicHits = () => anthropic.requests.filter((r) => r.method === "POST" && r.path === "/v1/messages").length;

  it("sends gpt-4-turbo to azure and anthropic only, remembers it across a restart, and enable restores openai", async () => {
    let gw = await startGateway(yaml, { env, dataDir });
    try {
      const before = await spread(gw, 100);
      expect(before.openai).toBeGreaterThan(40);
      expect(Object.keys(before).sort()).toEqual(["anthropic", "azure", "openai"]);

      const res = await fetch(`${gw.url}/admin/providers/openai/disable`, { method: "POST" });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ name: "openai", enabled: false });
      expect((await providerList(gw)).openai).toBe(false);

      const openaiHits = openai.hits();
      const during = await spread(gw, 200);
      expect(openai.hits()).toBe(openaiHits);
      expect(during.openai).toBeUndefined();
      expect((during.azure ?? 0) + (during.anthropic ?? 0)).toBe(200);
      // 25:15 between the two that are left.
      expect(during.azure! / 200).toBeGreaterThan(0.45);
      expect(during.azure! / 200).toBeLessThan(0.8);
      expect(during.anthropic).toBeGreaterThan(35);
      // Answers from the remaining providers are not flagged as fallbacks: nothing failed.
      const one = await chat(gw);
      expect(one.headers.get("x-is-fallback")).toBe("false");
      await one.text();
    } finally {
      await gw.close();
    }

    // A restart on the same data folder remembers the toggle.
    gw = await startGateway(yaml, { env, dataDir });
    try {
      expect(await providerList(gw)).toEqual({ openai: false, azure: true, anthropic: true });
      const openaiHits = openai.hits();
      const afterRestart = await spread(gw, 60);
      expect(afterRestart.openai).toBeUndefined();
      expect(openai.hits()).toBe(openaiHits);

      const res = await fetch(`${gw.url}/admin/providers/openai/enable`, { method: "POST" });
      expect(await res.json()).toEqual({ name: "openai", enabled: true });
      const restored = await spread(gw, 100);
      expect(restored.openai).toBeGreaterThan(40);
      expect(openai.hits()).toBe(openaiHits + restored.openai!);
    } finally {
      await gw.close();
    }

    // ...and that too survives a restart.
    gw = await startGateway(yaml, { env, dataDir });
    try {
      expect(await providerList(gw)).toEqual({ openai: true, azure: true, anthropic: true });
    } finally {
      await gw.close();
    }
    expect(anthropicHits()).toBeGreaterThan(0);
    const azureCall = azure.requests.find((r) => r.method === "POST")!;
    expect(azureCall.path).toBe("/openai/deployments/gpt-4-turbo/chat/completions");
    expect(azureCall.headers["api-key"]).toBe("az-key");
    expect(anthropic.requests.find((r) => r.path === "/v1/messages")?.body?.model).toBe("claude-3-opus-20240229");
  });

  it("disabling an unknown provider is a 404 in OpenAI's error shape", async () => {
    const gw = await startGateway(yaml, { env });
    try {
      const res = await fetch(`${gw.url}/admin/providers/nope/disable`, { method: "POST" });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("provider_not_found");
    } finally {
      await gw.close();
    }
  });

  it("every provider disabled: a clean 503 saying they are disabled, no upstream call", async () => {
    const gw = await startGateway(yaml, { env });
    try {
      for (const p of ["openai", "azure", "anthropic"]) await fetch(`${gw.url}/admin/providers/${p}/disable`, { method: "POST" });
      const hits = openai.hits() + azure.hits() + anthropicHits();
      const res = await chat(gw);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { message: string; code: string } };
      expect(body.error.code).toBe("no_healthy_deployment");
      expect(body.error.message).toMatch(/3 disabled/);
      expect(openai.hits() + azure.hits() + anthropicHits()).toBe(hits);
    } finally {
      await gw.close();
    }
  });

  it("X-Debug-Mode: true returns X-Labgate-Attempts; without it the header is absent", async () => {
    const gw = await startGateway(yaml, { env });
    try {
      // openai fails this once: the attempts show it, then whoever answered.
      await fetch(`${gw.url}/admin/providers/azure/disable`, { method: "POST" });
      await fetch(`${gw.url}/admin/providers/anthropic/disable`, { method: "POST" });
      const plain = await chat(gw);
      expect(plain.headers.get("x-labgate-attempts")).toBeNull();
      await plain.text();

      await fetch(`${gw.url}/admin/providers/azure/enable`, { method: "POST" });
      openai.faultNext({ kind: "status", status: 503 });
      // Weighted: openai is picked first most of the time; retry until it was (bounded).
      let attempts: { attempt: number; provider: string; deployment: string; error_class: string | null; ms: number }[] = [];
      for (let i = 0; i < 30 && !(attempts.length === 2); i++) {
        const res = await chat(gw, { "x-debug-mode": "true" });
        expect(res.status).toBe(200);
        await res.text();
        attempts = JSON.parse(res.headers.get("x-labgate-attempts")!) as typeof attempts;
        expect(attempts.at(-1)?.error_class).toBeNull();
      }
      expect(attempts.map((a) => [a.attempt, a.provider, a.deployment, a.error_class])).toEqual([
        [1, "openai", "gpt-4-turbo#0", "server_error"],
        [2, "azure", "gpt-4-turbo#1", null],
      ]);
      expect(attempts.every((a) => typeof a.ms === "number" && a.ms >= 0)).toBe(true);
    } finally {
      await gw.close();
    }
  });
});
