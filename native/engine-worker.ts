// The embedded llama.cpp engine's worker thread. It owns the node-llama-cpp instance,
// the loaded models, their contexts and sequences; the gateway's main thread only
// sends requests (native/engine.ts) and receives tokens as they are produced.
//
// Started with `new Worker(new URL("./engine-worker.ts", import.meta.url))`.
import { parentPort } from "node:worker_threads";
import {
  GeneralChatWrapper,
  getLlama,
  LlamaCompletion,
  LlamaLogLevel,
  LlamaVocabularyType,
  resolveChatWrapper,
  TokenBias,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type LlamaText,
  type Token,
} from "node-llama-cpp";
import type {
  EngineErrorClass,
  FinishReason,
  FromWorker,
  GpuSetting,
  LoadedModelStatus,
  ModelSpec,
  Prompt,
  SamplingParams,
  ToWorker,
} from "./protocol.ts";
import { DEFAULT_CONTEXT_CAP } from "./protocol.ts";
import { StopMatcher } from "./stop.ts";

if (!parentPort) throw new Error("engine-worker.ts must run in a worker thread");
const port = parentPort;

/** A file that failed to load is not retried before this (unless it changes on disk). */
const FAILURE_TTL_MS = 30_000;

class EngineError extends Error {
  readonly errorClass: EngineErrorClass;
  constructor(errorClass: EngineErrorClass, message: string) {
    super(message);
    this.errorClass = errorClass;
  }
}

/** Set while a simulated failure winds down: the worker then answers nothing, like a dead one. */
let muted = false;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  if (!muted) port.postMessage(msg, transfer);
}

// ---------------------------------------------------------------------------
// llama.cpp instance and its log

let llama: Llama | null = null;
let llamaInit: Promise<Llama> | null = null;
/** Recent llama.cpp warnings and errors: the reason a load failed is only logged there. */
const recentLog: { seq: number; text: string }[] = [];
let logSeq = 0;

function logger(level: LlamaLogLevel, message: string): void {
  if (level !== LlamaLogLevel.error && level !== LlamaLogLevel.warn && level !== LlamaLogLevel.fatal) return;
  recentLog.push({ seq: ++logSeq, text: message.trim() });
  if (recentLog.length > 100) recentLog.shift();
}

function initLlama(gpu: GpuSetting): Promise<Llama> {
  llamaInit ??= getLlama({
    build: "never",
    gpu,
    logLevel: LlamaLogLevel.warn,
    logger,
    progressLogs: false,
    skipDownload: true,
  }).then((l) => {
    llama = l;
    return l;
  });
  return llamaInit;
}

// ---------------------------------------------------------------------------
// Loaded models

interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
  contextSize: number;
  wrapper: ChatWrapper;
  /** The token LlamaCompletion puts in front of every input (null when none). */
  bos: Token | null;
  vocabSize: number;
  idle: LlamaContextSequence[];
  waiters: ((seq: LlamaContextSequence) => void)[];
  embedding: Promise<LlamaEmbeddingContext> | null;
  embedChain: Promise<unknown>;
}

interface Entry {
  key: string;
  spec: ModelSpec;
  ready: Promise<Loaded>;
  loaded: Loaded | null;
  active: number;
  lastUsed: number;
  idleTimer: NodeJS.Timeout | null;
  /** A newer version of the file (or other settings) replaced this one: unload when idle. */
  stale: boolean;
}

const entries = new Map<string, Entry>();
const failures = new Map<string, { message: string; at: number }>();
const aborts = new Map<number, AbortController>();

function specKey(s: ModelSpec): string {
  return `${s.path}\u0000${s.version}\u0000${s.contextSize ?? ""}\u0000${s.parallel}\u0000${s.threads}`;
}

/** The reason llama.cpp logged for a failed load (it only throws "Failed to load model"). */
function loadError(spec: ModelSpec, err: unknown, since: number): string {
  const lines = recentLog.filter((l) => l.seq > since).map((l) => l.text);
  const explicit = lines.find((l) => /error loading model: /.test(l))?.replace(/^.*error loading model: /, "");
  const other = lines.find((l) => /not within the file bounds|invalid|corrupt|unknown|unsupported|failed to read/i.test(l));
  const base = (err instanceof Error ? err.message : String(err)).replace(/^Failed simulating model resource usage\. Falling back to estimation heuristic\. Error: /, "");
  const detail = explicit ?? other ?? (/^Failed to load model$/i.test(base) ? "llama.cpp refused the file (corrupt, incomplete or an unsupported architecture)" : base);
  return `model ${spec.file} could not be loaded: ${detail}`;
}

async function loadModel(spec: ModelSpec): Promise<Loaded> {
  const l = llama ?? (await llamaInit);
  if (!l) throw new EngineError("unavailable", "embedded engine is not initialised");
  const since = logSeq;
  let model: LlamaModel;
  try {
    model = await l.loadModel({ modelPath: spec.path });
  } catch (err) {
    throw new EngineError("unavailable", loadError(spec, err, since));
  }
  let context: LlamaContext;
  try {
    const cap = Math.min(model.trainContextSize || DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
    context = await model.createContext({
      sequences: spec.parallel,
      contextSize: spec.contextSize ?? { max: cap },
      threads: spec.threads,
    });
  } catch (err) {
    await model.dispose().catch(() => {});
    throw new EngineError("unavailable", `model ${spec.file} could not be loaded: cannot create a context: ${(err as Error).message}`);
  }
  const md = model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: unknown[] } } };
  return {
    model,
    context,
    contextSize: context.contextSize,
    wrapper: chatWrapperFor(model),
    bos: beginningToken(model),
    vocabSize: md.tokenizer?.ggml?.tokens?.length ?? Number.MAX_SAFE_INTEGER,
    idle: [],
    waiters: [],
    embedding: null,
    embedChain: Promise.resolve(),
  };
}

/**
 * The model's own chat template when its GGUF has one (a specialised wrapper when
 * node-llama-cpp recognises it, else the Jinja template itself). Without a template,
 * only the file name may pick one; otherwise a plain "### Human / ### Assistant" template.
 */
function chatWrapperFor(model: LlamaModel): ChatWrapper {
  const template = (model.fileInfo.metadata as { tokenizer?: { chat_template?: string } }).tokenizer?.chat_template;
  if (template && template.trim() !== "") return resolveChatWrapper(model, { warningLogs: false });
  return (
    resolveChatWrapper({
      filename: model.filename,
      fileInfo: model.fileInfo,
      tokenizer: model.tokenizer,
      // no bosString: "<s>" alone would select the Llama 2 chat template for any llama
      warningLogs: false,
    }) ?? new GeneralChatWrapper()
  );
}

/** Mirrors LlamaCompletion's choice of the token it prepends to every input. */
function beginningToken(model: LlamaModel): Token | null {
  const vt = model.vocabularyType;
  if (vt === LlamaVocabularyType.rwkv || vt === LlamaVocabularyType.ugm) return null;
  if (vt === LlamaVocabularyType.wpm) return model.tokens.bos;
  return model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
}

function getEntry(spec: ModelSpec): Entry {
  const key = specKey(spec);
  const existing = entries.get(key);
  if (existing && !existing.stale) return existing;
  const failed = failures.get(key);
  if (failed && Date.now() - failed.at < FAILURE_TTL_MS) throw new EngineError("unavailable", failed.message);
  // Another version of this file (or other settings) is loaded: retire it.
  for (const e of entries.values()) {
    if (e.spec.path === spec.path && !e.stale) {
      e.stale = true;
      if (e.active === 0) void unload(e);
    }
  }
  const entry: Entry = {
    key,
    spec,
    ready: null as unknown as Promise<Loaded>,
    loaded: null,
    active: 0,
    lastUsed: Date.now(),
    idleTimer: null,
    stale: false,
  };
  entry.ready = loadModel(spec).then(
    (loaded) => {
      entry.loaded = loaded;
      failures.delete(key);
      return loaded;
    },
    (err: unknown) => {
      if (entries.get(key) === entry) entries.delete(key);
      const message = err instanceof Error ? err.message : String(err);
      failures.set(key, { message, at: Date.now() });
      throw err;
    },
  );
  entry.ready.catch(() => {}); // observed by each request
  entries.set(key, entry);
  return entry;
}

async function acquireModel(entry: Entry): Promise<Loaded> {
  entry.active++;
  entry.lastUsed = Date.now();
  if (entry.idleTimer) {
    clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
  }
  try {
    return await entry.ready;
  } catch (err) {
    entry.active--;
    throw err;
  }
}

function releaseModel(entry: Entry): void {
  entry.active--;
  entry.lastUsed = Date.now();
  if (entry.active > 0) return;
  if (entry.stale) {
    void unload(entry);
    return;
  }
  entry.idleTimer = setTimeout(() => {
    entry.idleTimer = null;
    if (entry.active === 0) void unload(entry);
  }, entry.spec.idleTtlMs);
}

async function unload(entry: Entry): Promise<void> {
  if (entries.get(entry.key) === entry) entries.delete(entry.key);
  if (entry.idleTimer) clearTimeout(entry.idleTimer);
  const loaded = entry.loaded ?? (await entry.ready.catch(() => null));
  if (!loaded) return;
  try {
    if (loaded.embedding) await (await loaded.embedding.catch(() => null))?.dispose();
    await loaded.context.dispose();
    await loaded.model.dispose();
  } catch {
    // already gone
  }
}

/** A free sequence, preferring the one whose cached tokens share the longest prefix with the prompt. */
async function takeSequence(loaded: Loaded, tokens: readonly Token[]): Promise<LlamaContextSequence> {
  if (loaded.idle.length > 0) {
    let best = loaded.idle.length - 1;
    let bestLen = -1;
    for (let i = 0; i < loaded.idle.length; i++) {
      const cached = loaded.idle[i].contextTokens;
      let n = 0;
      const max = Math.min(cached.length, tokens.length + 1);
      while (n < max && cached[n] === (n === 0 && loaded.bos != null ? loaded.bos : tokens[loaded.bos != null ? n - 1 : n])) n++;
      if (n > bestLen) {
        bestLen = n;
        best = i;
      }
    }
    return loaded.idle.splice(best, 1)[0];
  }
  if (loaded.context.sequencesLeft > 0) return loaded.context.getSequence();
  // The main thread admits at most `parallel` requests per model, so this only
  // waits for a sequence that is being handed back.
  return new Promise((resolve) => loaded.waiters.push(resolve));
}

function releaseSequence(loaded: Loaded, seq: LlamaContextSequence): void {
  if (seq.disposed) return;
  const waiter = loaded.waiters.shift();
  if (waiter) waiter(seq);
  else loaded.idle.push(seq);
}

// ---------------------------------------------------------------------------
// Prompts

function renderPrompt(loaded: Loaded, prompt: Prompt): { tokens: Token[]; stops: (LlamaText | string)[] } {
  const { model } = loaded;
  let tokens: Token[];
  let stops: (LlamaText | string)[] = [];
  if (prompt.kind === "tokens") {
    for (const t of prompt.tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= loaded.vocabSize) throw new EngineError("bad_request", `invalid token id ${t} in prompt (vocabulary has ${loaded.vocabSize} tokens)`);
    }
    tokens = prompt.tokens.slice() as Token[];
  } else if (prompt.kind === "text") {
    // Special tokens written in the prompt count as such (as llama-server does).
    tokens = model.tokenize(prompt.text, true, loaded.bos != null ? "trimLeadingSpace" : undefined);
  } else {
    const history: ChatHistoryItem[] = [];
    for (const m of prompt.messages) {
      if (m.role === "system") history.push({ type: "system", text: m.content });
      else if (m.role === "user") history.push({ type: "user", text: m.content });
      else history.push({ type: "model", response: [m.content] });
    }
    // The model answers after the last message; an assistant message last is continued.
    if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
    const state = loaded.wrapper.generateContextState({ chatHistory: history });
    tokens = state.contextText.tokenize(model.tokenizer);
    stops = state.stopGenerationTriggers;
  }
  // LlamaCompletion prepends the beginning token itself.
  if (loaded.bos != null && tokens[0] === loaded.bos) tokens = tokens.slice(1);
  return { tokens, stops };
}

function tokenBias(loaded: Loaded, params: SamplingParams): TokenBias | undefined {
  const entries = Object.entries(params.logitBias ?? {});
  if (entries.length === 0 && !params.ignoreEos) return undefined;
  const bias = new TokenBias(loaded.model.tokenizer);
  for (const [k, v] of entries) {
    const token = Number(k);
    if (!Number.isInteger(token) || token < 0 || token >= loaded.vocabSize) throw new EngineError("bad_request", `logit_bias: invalid token id ${k}`);
    if (typeof v !== "number" || !Number.isFinite(v)) throw new EngineError("bad_request", `logit_bias: invalid bias for token ${k}`);
    bias.set(token as Token, v <= -100 ? "never" : { logit: v });
  }
  if (params.ignoreEos) {
    for (const t of [loaded.model.tokens.eos, loaded.model.tokens.eot]) if (t != null) bias.set(t, "never");
  }
  return bias;
}

// ---------------------------------------------------------------------------
// Requests

/**
 * Streams text to the main thread as it is produced. A token is sent at once unless
 * the previous message went out less than RELAY_MS ago; then it is sent with whatever
 * follows within that window. Below 200 tokens/s (any real model on real hardware)
 * every token is its own message and SSE event; at thousands of tokens/s (the tiny
 * test model) the gateway's event loop handles a few tokens per event instead of one
 * (measured: main-thread time per 256-token stream 44 ms -> 19 ms).
 */
const RELAY_MS = 5;

class TextRelay {
  private readonly send: (text: string) => void;
  private pending = "";
  private last = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(send: (text: string) => void) {
    this.send = send;
  }

  push(text: string): void {
    if (text === "") return;
    this.pending += text;
    const now = performance.now();
    if (now - this.last >= RELAY_MS) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), RELAY_MS - (now - this.last));
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending === "") return;
    this.last = performance.now();
    const t = this.pending;
    this.pending = "";
    this.send(t);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = "";
  }
}

async function generate(msg: Extract<ToWorker, { op: "generate" }>): Promise<void> {
  const { id, params } = msg;
  const ac = new AbortController();
  aborts.set(id, ac);
  let entry: Entry | null = null;
  let loaded: Loaded | null = null;
  let seq: LlamaContextSequence | null = null;
  let completion: LlamaCompletion | null = null;
  let relay: TextRelay | null = null;
  try {
    entry = getEntry(msg.model);
    loaded = await acquireModel(entry);
    if (ac.signal.aborted) throw new EngineError("cancelled", "request cancelled");
    const { tokens, stops } = renderPrompt(loaded, msg.prompt);
    const promptTokens = tokens.length + (loaded.bos != null ? 1 : 0);
    const room = loaded.contextSize - promptTokens;
    if (room < 1) {
      throw new EngineError(
        "context_window",
        `prompt is ${promptTokens} tokens but the maximum context length of ${msg.model.file} is ${loaded.contextSize} tokens`,
      );
    }
    const bias = tokenBias(loaded, params);
    seq = await takeSequence(loaded, tokens);
    if (ac.signal.aborted) throw new EngineError("cancelled", "request cancelled");
    post({ id, type: "started", promptTokens, contextSize: loaded.contextSize });

    const maxTokens = params.maxTokens === undefined ? room : Math.min(params.maxTokens, room);
    if (maxTokens <= 0) {
      post({ id, type: "done", finishReason: "length", promptTokens, completionTokens: 0, text: params.stream ? undefined : "" });
      return;
    }
    let generated = 0;
    let text = "";
    relay = params.stream ? new TextRelay((t) => post({ id, type: "text", text: t })) : null;
    const r = relay;
    const emit = r
      ? (chunk: string) => r.push(chunk)
      : (chunk: string) => {
          text += chunk;
        };
    // Stop strings are matched on text, so the answer ends exactly before them; hitting
    // one stops generation through the same signal a client abort uses.
    const stopper = new StopMatcher(params.stop);
    const halt = new AbortController();
    const signal = AbortSignal.any([ac.signal, halt.signal]);
    completion = new LlamaCompletion({ contextSequence: seq });
    const penalties = params.frequencyPenalty || params.presencePenalty || (params.repeatPenalty !== undefined && params.repeatPenalty !== 1);
    const res = await completion.generateCompletionWithMeta(tokens, {
      maxTokens,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      minP: params.minP,
      seed: params.seed,
      tokenBias: bias,
      repeatPenalty: penalties
        ? {
            penalty: params.repeatPenalty ?? 1,
            frequencyPenalty: params.frequencyPenalty || undefined,
            presencePenalty: params.presencePenalty || undefined,
          }
        : false,
      customStopTriggers: stops.length > 0 ? stops : undefined,
      disableContextShift: true,
      contextShiftSize: 1,
      signal,
      stopOnAbortSignal: true,
      onToken: (t) => {
        if (!stopper.stopped) generated += t.length;
      },
      onTextChunk: (chunk) => {
        if (stopper.stopped) return;
        const r = stopper.push(chunk);
        emit(r.emit);
        if (r.stopped) halt.abort();
      },
    });
    emit(stopper.flush());
    relay?.flush();
    const stop = res.metadata.stopReason;
    const finishReason: FinishReason = stopper.stopped ? "stop" : stop === "maxTokens" ? "length" : stop === "abort" ? "abort" : "stop";
    post({ id, type: "done", finishReason, promptTokens, completionTokens: generated, text: params.stream ? undefined : text });
  } catch (err) {
    postError(id, err, ac.signal.aborted);
  } finally {
    relay?.close();
    completion?.dispose({ disposeSequence: false });
    if (seq && loaded) releaseSequence(loaded, seq);
    if (entry && loaded) releaseModel(entry);
    aborts.delete(id);
  }
}

async function embed(msg: Extract<ToWorker, { op: "embed" }>): Promise<void> {
  const { id, model: spec } = msg;
  let entry: Entry | null = null;
  let loaded: Loaded | null = null;
  try {
    entry = getEntry(spec);
    loaded = await acquireModel(entry);
    const l = loaded;
    const embedContext = Math.min(l.contextSize, l.model.trainContextSize || l.contextSize);
    l.embedding ??= l.model.createEmbeddingContext({ contextSize: embedContext, threads: spec.threads });
    const ectx = await l.embedding.catch((err: unknown) => {
      l.embedding = null;
      throw new EngineError("unavailable", `model ${spec.file} cannot compute embeddings: ${(err as Error).message}`);
    });
    // One embedding context per model: requests take turns.
    const run = l.embedChain.then(async () => {
      const vectors: Float32Array[] = [];
      let promptTokens = 0;
      for (const [i, input] of msg.inputs.entries()) {
        let tokens: Token[];
        if (typeof input === "string") tokens = l.model.tokenize(input);
        else {
          for (const t of input) if (!Number.isInteger(t) || t < 0 || t >= l.vocabSize) throw new EngineError("bad_request", `invalid token id ${t} in input[${i}]`);
          tokens = input as Token[];
        }
        if (tokens.length >= embedContext) {
          throw new EngineError("context_window", `input[${i}] is ${tokens.length} tokens but the maximum context length of ${spec.file} is ${embedContext} tokens`);
        }
        promptTokens += tokens.length;
        const e = await ectx.getEmbeddingFor(tokens);
        vectors.push(Float32Array.from(e.vector));
      }
      return { vectors, promptTokens };
    });
    l.embedChain = run.catch(() => {});
    const { vectors, promptTokens } = await run;
    post({ id, type: "embeddings", vectors, promptTokens }, vectors.map((v) => v.buffer as ArrayBuffer));
  } catch (err) {
    postError(id, err, false);
  } finally {
    if (entry && loaded) releaseModel(entry);
  }
}

function postError(id: number, err: unknown, aborted: boolean): void {
  if (err instanceof EngineError) {
    post({ id, type: "error", errorClass: err.errorClass, message: err.message });
  } else if (aborted) {
    post({ id, type: "error", errorClass: "cancelled", message: "request cancelled" });
  } else {
    const message = err instanceof Error ? err.message : String(err);
    post({ id, type: "error", errorClass: "server_error", message: `embedded engine error: ${message}` });
  }
}

function status(id: number): void {
  const models: LoadedModelStatus[] = [];
  for (const e of entries.values()) {
    if (!e.loaded) continue;
    models.push({
      path: e.spec.path,
      file: e.spec.file,
      contextSize: e.loaded.contextSize,
      sequences: e.spec.parallel,
      active: e.active,
      idleMs: e.active > 0 ? 0 : Date.now() - e.lastUsed,
    });
  }
  post({ id, type: "status", gpu: llama?.gpu ?? false, models });
}

async function unloadMatching(id: number, path: string | undefined): Promise<void> {
  let count = 0;
  for (const e of [...entries.values()]) {
    if (path !== undefined && e.spec.path !== path) continue;
    if (e.active > 0) {
      e.stale = true;
      continue;
    }
    count++;
    await unload(e);
  }
  post({ id, type: "unloaded", count });
}

port.on("message", (msg: ToWorker) => {
  switch (msg.op) {
    case "init":
      initLlama(msg.gpu).then(
        (l) => post({ id: msg.id, type: "ready", gpu: l.gpu, cpuMathCores: l.cpuMathCores }),
        (err: unknown) => {
          llamaInit = null;
          const e = err as Error;
          const why =
            e?.name === "NoBinaryFoundError" || e?.message === "NoBinaryFoundError"
              ? `no prebuilt llama.cpp binary works here for gpu: ${JSON.stringify(msg.gpu)} (building from source is disabled)`
              : (e?.message ?? String(err));
          post({ id: msg.id, type: "error", errorClass: "unavailable", message: `embedded engine could not start llama.cpp: ${why}` });
        },
      );
      break;
    case "generate":
      void generate(msg);
      break;
    case "embed":
      void embed(msg);
      break;
    case "abort":
      aborts.get(msg.id)?.abort();
      break;
    case "status":
      status(msg.id);
      break;
    case "unload":
      void unloadMatching(msg.id, msg.path);
      break;
    case "shutdown":
      void shutdown(msg.crash === true);
      break;
  }
});

async function shutdown(crash: boolean): Promise<void> {
  muted = crash;
  for (const ac of aborts.values()) ac.abort();
  await Promise.allSettled([...entries.values()].map((e) => unload(e)));
  const l = llama ?? (await llamaInit?.catch(() => null));
  await l?.dispose().catch(() => {});
  if (crash) {
    // Surfaces as the worker's 'error' then 'exit' events, like a real failure.
    setImmediate(() => {
      throw new Error("embedded engine worker stopped (simulated failure)");
    });
    return;
  }
  port.close();
}

// A stray rejection must not take the engine (and every in-flight request) down.
process.on("unhandledRejection", (reason) => {
  logger(LlamaLogLevel.error, `unhandled rejection in embedded engine: ${String((reason as Error)?.stack ?? reason)}`);
});
