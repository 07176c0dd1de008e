// Chat templates: a GGUF that carries its own template is rendered with it (through
// node-llama-cpp's wrappers), one without gets the plain template. The test renders the
// same chat with node-llama-cpp here and compares prompt token counts.
// Its own file: loading llama.cpp in the test process takes over llama.cpp's (process-wide)
// log callback, which the engine's worker reads load errors from.
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GeneralChatWrapper, getLlama, JinjaTemplateChatWrapper, LlamaLogLevel, readGgufFileInfo, type ChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedAdapter } from "../../gateway/providers/embedded/adapter.ts";
import type { CallContext } from "../../gateway/providers/types.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url);

/** A template no specialised wrapper in node-llama-cpp matches, so it is rendered as Jinja. */
const TEMPLATE =
  "{% for message in messages %}[{{ message['role'] }}] {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";

/** The tiny model with one more string in its GGUF header. */
async function withHeaderString(key: string, value: string): Promise<Buffer> {
  const src = await readFile(MODEL);
  const info = await readGgufFileInfo(fileURLToPath(MODEL));
  const t0 = info.tensorInfo![0];
  const dataStart = Number(t0.fileOffset) - Number(t0.offset);
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const stringType = Buffer.alloc(4);
  stringType.writeUInt32LE(8);
  const prefix = Buffer.from(src.subarray(0, 24)); // magic, version, tensor count, kv count
  prefix.writeBigUInt64LE(prefix.readBigUInt64LE(16) + 1n, 16);
  const kv = [u64(Buffer.byteLength(key)), Buffer.from(key), stringType, u64(Buffer.byteLength(value)), Buffer.from(value)];
  const header = Buffer.concat([prefix, ...kv, src.subarray(24, Number(info.infoEndOffset))]);
  return Buffer.concat([header, Buffer.alloc((32 - (header.length % 32)) % 32), src.subarray(dataStart)]);
}

let dir: string;
let a: EmbeddedAdapter;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "labgate-template-"));
  await copyFile(MODEL, join(dir, "stories260K.gguf"));
  await writeFile(join(dir, "templated.gguf"), await withHeaderString("tokenizer.chat_template", TEMPLATE));
  a = new EmbeddedAdapter({ name: "embedded", config: { type: "embedded", threads: 1, gpu: false }, modelsDir: dir });
});

afterAll(async () => {
  await a?.close();
  await rm(dir, { recursive: true, force: true });
});

const ctx = (model: string): CallContext => ({ signal: new AbortController().signal, upstreamModel: model, timeoutMs: 60_000 });

describe("embedded chat templates", () => {
  it("uses the GGUF's own template when it has one, else the plain one", async () => {
    const cards = await a.listModels(new AbortController().signal);
    expect(cards.find((c) => c.id === "templated")?.chat_template).toBe(true);
    expect(cards.find((c) => c.id === "stories260K")?.chat_template).toBe(false);

    const llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {} });
    const model = await llama.loadModel({ modelPath: join(dir, "templated.gguf") });
    const history = [
      { type: "system" as const, text: "Be brief." },
      { type: "user" as const, text: "hi" },
      { type: "model" as const, response: [] },
    ];
    const count = (w: ChatWrapper): number => {
      const t = w.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer);
      return t[0] === model.tokens.bos ? t.length : t.length + 1; // the engine always starts with BOS
    };
    const jinja = count(new JinjaTemplateChatWrapper({ template: TEMPLATE, tokenizer: model.tokenizer }));
    const plain = count(new GeneralChatWrapper());
    await model.dispose();
    await llama.dispose();
    expect(jinja).not.toBe(plain);

    const ask = { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }], max_tokens: 3, temperature: 0 };
    const viaTemplate = await a.chat({ model: "templated", ...ask }, ctx("templated"));
    expect(viaTemplate.kind === "json" && viaTemplate.usage?.prompt_tokens).toBe(jinja);
    const viaPlain = await a.chat({ model: "stories260K", ...ask }, ctx("stories260K"));
    expect(viaPlain.kind === "json" && viaPlain.usage?.prompt_tokens).toBe(plain);
  });
});
