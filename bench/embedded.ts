// Embedded engine: tokens/s of the tiny real model through labgate's HTTP API
// (streaming completion and chat, SSE parsed by the client) versus node-llama-cpp
// called directly in one process with the same settings (same file, context,
// threads, sampling, prompt tokens, 256 tokens with end-of-generation banned).
// Runs are interleaved (direct, gateway, direct, ...) so machine noise hits both.
//
//   node bench/embedded.ts            (or via `npm run bench`, which calls benchEmbedded())
// Knobs: BENCH_EMBEDDED_RUNS (default 11), BENCH_EMBEDDED_TOKENS (default 256),
//        BENCH_EMBEDDED_THREADS (default: the gateway's default for this machine).
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaCompletion, LlamaLogLevel, TokenBias, type LlamaModel, type Token } from "node-llama-cpp";
import { buildGateway } from "../gateway/app.ts";
import { parseConfigText } from "../gateway/config/load.ts";
import { defaultThreads } from "../gateway/providers/embedded/adapter.ts";
import { table } from "./lib/table.ts";

const MODEL_FILE = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const MODEL = "stories260K";
const CONTEXT = 2048;
const PARALLEL = 2;
/** Gateway tokens/s over direct tokens/s. */
export const GOAL_RATIO = 0.9;

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
}

interface Run {
  tokens: number;
  ms: number;
  ttftMs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const rate = (r: Run): number => (r.tokens / r.ms) * 1000;

/** One streaming request through labgate; counts tokens from the usage chunk. */
async function viaGateway(url: string, path: "completions" | "chat/completions", body: Record<string, unknown>): Promise<Run> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`gateway answered ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = "";
  let ttftMs = -1;
  let tokens = -1;
  for await (const part of res.body) {
    buf += decoder.decode(part as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6)) as { choices: { text?: string; delta?: { content?: string } }[]; usage?: { completion_tokens: number } };
      const c = chunk.choices[0];
      if (ttftMs < 0 && (c?.text || c?.delta?.content)) ttftMs = performance.now() - started;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  if (tokens < 0) throw new Error("no usage chunk in the gateway's stream");
  return { tokens, ms: performance.now() - started, ttftMs };
}

export async function benchEmbedded(): Promise<BenchRow[]> {
  const runs = Math.max(1, Number(process.env.BENCH_EMBEDDED_RUNS) || 11);
  const maxTokens = Math.max(16, Number(process.env.BENCH_EMBEDDED_TOKENS) || 256);
  const threads = Math.max(1, Number(process.env.BENCH_EMBEDDED_THREADS) || defaultThreads());
  const modelsDir = await mkdtemp(join(tmpdir(), "labgate-bench-models-"));
  const dataDir = await mkdtemp(join(tmpdir(), "labgate-bench-data-"));
  await copyFile(MODEL_FILE, join(modelsDir, `${MODEL}.gguf`));

  // --- labgate, embedded provider, discovered model
  const parsed = parseConfigText(`
providers:
  embedded: {type: embedded, models_dir: "${modelsDir}", threads: ${threads}, parallel: ${PARALLEL}, context_size: ${CONTEXT}}
`);
  if (!parsed.ok) throw new Error(`bench config rejected: ${JSON.stringify(parsed.problems)}`);
  const gateway = await buildGateway({ config: parsed.config, dataDir, modelsDir, env: {}, logLevel: "silent", healthIntervalMs: 0 });
  const url = await gateway.listen("127.0.0.1", 0);

  // --- node-llama-cpp directly, same settings
  const llama = await getLlama({ build: "never", gpu: "auto", logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true });
  const model: LlamaModel = await llama.loadModel({ modelPath: join(modelsDir, `${MODEL}.gguf`) });
  const context = await model.createContext({ sequences: PARALLEL, contextSize: CONTEXT, threads });
  const sequence = context.getSequence();
  const completion = new LlamaCompletion({ contextSequence: sequence });
  const noEos = new TokenBias(model.tokenizer);
  for (const t of [model.tokens.eos, model.tokens.eot]) if (t != null) noEos.set(t, "never");

  const prompt = "Once upon a time";
  const chatMessage = "Tell me a story about a brave little dog.";
  // The chat prompt exactly as the engine renders it (no chat template in this file: the plain one).
  const { GeneralChatWrapper } = await import("node-llama-cpp");
  const chatState = new GeneralChatWrapper().generateContextState({
    chatHistory: [
      { type: "user", text: chatMessage },
      { type: "model", response: [] },
    ],
  });
  const bos = model.tokens.bos;
  const strip = (t: Token[]): Token[] => (bos != null && t[0] === bos ? t.slice(1) : t);
  const inputs = {
    completion: { tokens: strip(model.tokenize(prompt, true, "trimLeadingSpace")), stops: undefined },
    chat: { tokens: strip(chatState.contextText.tokenize(model.tokenizer)), stops: chatState.stopGenerationTriggers },
  };

  const direct = async (kind: "completion" | "chat"): Promise<Run> => {
    const started = performance.now();
    let tokens = 0;
    let ttftMs = -1;
    await completion.generateCompletionWithMeta(inputs[kind].tokens, {
      maxTokens,
      temperature: 0,
      tokenBias: noEos,
      repeatPenalty: false,
      customStopTriggers: inputs[kind].stops,
      disableContextShift: true,
      contextShiftSize: 1,
      onToken: (t) => {
        tokens += t.length;
      },
      onTextChunk: (text) => {
        if (ttftMs < 0 && text !== "") ttftMs = performance.now() - started;
      },
    });
    return { tokens, ms: performance.now() - started, ttftMs };
  };
  const gatewayBody = {
    completion: { path: "completions" as const, body: { model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true } },
    chat: {
      path: "chat/completions" as const,
      body: { model: MODEL, messages: [{ role: "user", content: chatMessage }], max_tokens: maxTokens, temperature: 0, ignore_eos: true },
    },
  };
  const viaLabgate = (kind: "completion" | "chat"): Promise<Run> => viaGateway(url, gatewayBody[kind].path, gatewayBody[kind].body);

  const results: Record<string, { direct: Run[]; gateway: Run[] }> = { completion: { direct: [], gateway: [] }, chat: { direct: [], gateway: [] } };
  try {
    for (const kind of ["completion", "chat"] as const) {
      await direct(kind); // warm-up (and, for labgate, worker start + model load)
      await viaLabgate(kind);
      for (let i = 0; i < runs; i++) {
        // Alternate which goes first, so a slow drift in machine load favours neither.
        if (i % 2 === 0) {
          results[kind].direct.push(await direct(kind));
          results[kind].gateway.push(await viaLabgate(kind));
        } else {
          results[kind].gateway.push(await viaLabgate(kind));
          results[kind].direct.push(await direct(kind));
        }
      }
      const d = results[kind].direct[0];
      const g = results[kind].gateway[0];
      if (d.tokens !== g.tokens) throw new Error(`${kind}: direct generated ${d.tokens} tokens, labgate ${g.tokens}: the settings differ`);
    }
  } finally {
    completion.dispose();
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    await gateway.close();
    await rm(modelsDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }

  const rows: BenchRow[] = [];
  for (const kind of ["completion", "chat"] as const) {
    const d = median(results[kind].direct.map(rate));
    const g = median(results[kind].gateway.map(rate));
    const tokens = results[kind].gateway[0].tokens;
    rows.push(
      { name: `${kind}: node-llama-cpp direct (${tokens} tokens, median of ${runs})`, value: d, unit: "tokens/s" },
      { name: `${kind}: labgate HTTP stream (${tokens} tokens, median of ${runs})`, value: g, unit: "tokens/s" },
      { name: `${kind}: labgate / direct, ratio of medians (goal >= ${GOAL_RATIO})`, value: g / d, unit: "ratio" },
      {
        name: `${kind}: labgate / direct, median of paired runs`,
        value: median(results[kind].gateway.map((r, i) => rate(r) / rate(results[kind].direct[i]))),
        unit: "paired ratio",
      },
      { name: `${kind}: time to first token, direct`, value: median(results[kind].direct.map((r) => r.ttftMs)), unit: "ms" },
      { name: `${kind}: time to first token, labgate`, value: median(results[kind].gateway.map((r) => r.ttftMs)), unit: "ms" },
    );
  }
  return rows;
}

export function formatEmbeddedReport(rows: BenchRow[]): string {
  const out = table(
    ["measure", "value", "unit"],
    rows.map((r) => [r.name, r.unit.endsWith("ratio") ? r.value.toFixed(3) : r.value.toFixed(1), r.unit]),
  );
  const verdicts = rows
    .filter((r) => r.unit === "ratio")
    .map((r) => `${r.name.split(":")[0]}: ${r.value >= GOAL_RATIO ? "MET" : "NOT MET"} (${r.value.toFixed(3)} vs goal ${GOAL_RATIO})`);
  return [out, "", ...verdicts].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const threads = Math.max(1, Number(process.env.BENCH_EMBEDDED_THREADS) || defaultThreads());
  console.log(`embedded engine bench — ${MODEL}, threads ${threads}, context ${CONTEXT}, temperature 0, end-of-generation banned`);
  const rows = await benchEmbedded();
  console.log(formatEmbeddedReport(rows));
}
