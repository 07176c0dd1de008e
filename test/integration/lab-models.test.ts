// Loaded models as an operator sees them: what is in memory where (Ollama's
// /api/ps, llama.cpp's one model, the embedded engine's GGUF files) and an unload
// button that frees it (Ollama: keep_alive 0; embedded: the engine unloads).
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeLabServer } from "../fixtures/fake-lab-server.ts";
import { startFakeOllama } from "../fixtures/fake-ollama.ts";
import { startGateway } from "../fixtures/gateway.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url);
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

interface Loaded {
  provider: string;
  model: string;
  size_bytes: number | null;
  vram_bytes: number | null;
  context_length: number | null;
  expires_at: string | null;
  can_unload: boolean;
}

describe("loaded models", () => {
  it("lists what is loaded on Ollama, llama.cpp and the embedded engine, and unloads it", async () => {
    const ollama = await startFakeOllama();
    closers.push(() => ollama.close());
    const llama = await startFakeLabServer("llamacpp");
    closers.push(() => llama.close());
    const modelsDir = await mkdtemp(join(tmpdir(), "labgate-models-"));
    closers.push(() => rm(modelsDir, { recursive: true, force: true }));
    await copyFile(MODEL, join(modelsDir, "stories260K.gguf"));
    const gw = await startGateway(
      JSON.stringify({
        providers: {
          ollama: { type: "ollama", base_url: ollama.url },
          "llama-cpp": { type: "llamacpp", base_url: `http://127.0.0.1:${llama.port}` },
          embedded: { type: "embedded", models_dir: modelsDir, threads: 1 },
        },
      }),
      { modelsDir },
    );
    closers.push(() => gw.close());
    const list = async (): Promise<Loaded[]> => ((await (await fetch(`${gw.url}/admin/lab/models`)).json()) as { data: Loaded[] }).data;

    // The embedded engine loads its model on first use.
    const chat = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", messages: [{ role: "user", content: "Once" }], max_tokens: 4 }),
    });
    expect(chat.status).toBe(200);

    const before = await list();
    const by = (provider: string) => before.filter((m) => m.provider === provider);
    expect(by("ollama")).toEqual([
      { provider: "ollama", type: "ollama", can_unload: true, model: "mistral:latest", size_bytes: 5137025024, vram_bytes: 5137025024, context_length: null, expires_at: "2024-06-04T21:38:31.837Z" },
    ]);
    expect(by("llama-cpp")).toMatchObject([{ model: "../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", size_bytes: 4912898304, can_unload: false }]);
    const embedded = by("embedded");
    expect(embedded).toHaveLength(1);
    expect(embedded[0]).toMatchObject({ model: "stories260K", can_unload: true });
    expect(embedded[0]!.size_bytes).toBeGreaterThan(1_000_000);
    expect(embedded[0]!.context_length).toBeGreaterThan(0);

    // Unload from Ollama: the request Ollama documents, and it is gone from the list.
    const off = await fetch(`${gw.url}/admin/lab/models/${encodeURIComponent("mistral:latest")}/unload`, { method: "POST" });
    expect(await off.json()).toEqual({ model: "mistral:latest", unloaded: ["ollama"] });
    expect(ollama.bodies("generate").at(-1)).toMatchObject({ model: "mistral:latest", keep_alive: 0, prompt: "" });
    // And from the embedded engine.
    const off2 = await fetch(`${gw.url}/admin/lab/models/stories260K/unload?provider=embedded`, { method: "POST" });
    expect(await off2.json()).toEqual({ model: "stories260K", unloaded: ["embedded"] });
    const after = await list();
    expect(after.map((m) => m.provider)).toEqual(["llama-cpp"]);

    // llama.cpp cannot unload (it serves the model it was started with); an unknown model is not loaded.
    const cannot = await fetch(`${gw.url}/admin/lab/models/x/unload?provider=llama-cpp`, { method: "POST" });
    expect(cannot.status).toBe(409);
    expect(((await cannot.json()) as { error: { code: string } }).error.code).toBe("unload_not_supported");
    const missing = await fetch(`${gw.url}/admin/lab/models/nothing-here/unload`, { method: "POST" });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("model_not_loaded");
  });
});
