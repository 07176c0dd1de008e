// The demo model shipped in resources/models/: listed by the embedded adapter while
// its models folder holds no GGUF of its own, and not once it holds one. (Through the
// real CLI and a chat completion: test/integration/cli-first-run.test.ts.)
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEMO_MODELS_DIR, demoModelsDir } from "../../gateway/config/defaults.ts";
import { EmbeddedAdapter } from "../../gateway/providers/embedded/adapter.ts";
import { startGateway } from "../fixtures/gateway.ts";

const SHARED_MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url).pathname;
const signal = new AbortController().signal;
const adapters: EmbeddedAdapter[] = [];
const dirs: string[] = [];

function adapter(demo: boolean): { a: EmbeddedAdapter; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "labgate-demo-"));
  dirs.push(dir);
  const a = new EmbeddedAdapter({
    name: "embedded",
    config: { type: "embedded", threads: 1, gpu: false },
    modelsDir: dir,
    ...(demo ? { demoDir: DEMO_MODELS_DIR } : {}),
  });
  adapters.push(a);
  return { a, dir };
}

afterEach(async () => {
  for (const a of adapters.splice(0)) await a.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("the demo model", () => {
  it("is the project's test model, byte for byte, with its origin and licence beside it", () => {
    const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
    expect(sha(join(DEMO_MODELS_DIR, "stories260K.gguf"))).toBe(sha(SHARED_MODEL));
    const readme = readFileSync(join(DEMO_MODELS_DIR, "README.md"), "utf8");
    expect(readme).toMatch(/karpathy/);
    expect(readme).toMatch(/MIT/);
  });

  it("is listed, marked as the demo, while the models folder has no GGUF", async () => {
    const { a, dir } = adapter(true);
    expect(await a.listModels(signal)).toEqual([expect.objectContaining({ id: "stories260K", owned_by: "embedded", demo: true })]);
    expect((await a.health(signal)).detail).toMatch(new RegExp(`no \\*\\.gguf files in ${dir}: serving the demo model stories260K`));
    // Files that are not GGUF models do not count as the user's own.
    writeFileSync(join(dir, "notes.txt"), "hello");
    expect((await a.listModels(signal)).map((m) => m.id)).toEqual(["stories260K"]);
  });

  it("is not listed once the folder has a GGUF of its own, and comes back when it is gone", async () => {
    const { a, dir } = adapter(true);
    copyFileSync(SHARED_MODEL, join(dir, "mine.gguf"));
    const cards = await a.listModels(signal);
    expect(cards.map((m) => m.id)).toEqual(["mine"]);
    expect(cards[0]).not.toHaveProperty("demo");
    expect((await a.health(signal)).detail).toMatch(/^1 model in /);
    rmSync(join(dir, "mine.gguf"));
    expect((await a.listModels(signal)).map((m) => m.id)).toEqual(["stories260K"]);
  });

  it("is not served by an adapter given no demo folder (a models_dir named in the config)", async () => {
    const { a } = adapter(false);
    expect(await a.listModels(signal)).toEqual([]);
    expect((await a.health(signal)).detail).toMatch(/^no models: no \*\.gguf files in /);
  });

  it("comes from LABGATE_DEMO_MODELS_DIR when set (the desktop app's unpacked copy), else from beside the sources", async () => {
    expect(demoModelsDir({})).toBe(DEMO_MODELS_DIR);
    expect(demoModelsDir({ LABGATE_DEMO_MODELS_DIR: "" })).toBe(DEMO_MODELS_DIR);
    const unpacked = mkdtempSync(join(tmpdir(), "labgate-demo-unpacked-"));
    dirs.push(unpacked);
    expect(demoModelsDir({ LABGATE_DEMO_MODELS_DIR: unpacked })).toBe(unpacked);
    // A gateway given the variable serves the model found there (renamed here, to tell it from the one beside the sources).
    copyFileSync(SHARED_MODEL, join(unpacked, "unpacked-demo.gguf"));
    const gw = await startGateway(["providers:", "  embedded: {type: embedded, threads: 1, gpu: false}", "models: {}"].join("\n"), {
      env: { LABGATE_DEMO_MODELS_DIR: unpacked },
    });
    try {
      const models = (await (await fetch(`${gw.v1}/models`)).json()) as { data: { id: string; demo?: boolean }[] };
      expect(models.data).toContainEqual(expect.objectContaining({ id: "unpacked-demo", owned_by: "embedded", demo: true }));
      expect(models.data.map((m) => m.id)).not.toContain("stories260K");
    } finally {
      await gw.close();
    }
  });
});
