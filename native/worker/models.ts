// The models loaded in this worker: one entry per distinct spec (file version,
// context, sequences, threads), loaded on first use, unloaded after its idle TTL or
// when a newer version replaces it; a file that failed to load is not retried for a
// while. Also hands out the context sequences of a loaded model.
import {
  GeneralChatWrapper,
  LlamaVocabularyType,
  resolveChatWrapper,
  type ChatWrapper,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { DEFAULT_CONTEXT_CAP, type LoadedModelStatus, type ModelSpec } from "../protocol.ts";
import { WorkerError } from "./errors.ts";
import type { LlamaHost } from "./llama-host.ts";

/** A file that failed to load is not retried before this (unless it changes on disk). */
const FAILURE_TTL_MS = 30_000;

export interface Loaded {
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

export interface Entry {
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

function specKey(s: ModelSpec): string {
  return `${s.path}\u0000${s.version}\u0000${s.contextSize ?? ""}\u0000${s.parallel}\u0000${s.threads}`;
}

export class ModelTable {
  private readonly host: LlamaHost;
  private readonly entries = new Map<string, Entry>();
  private readonly failures = new Map<string, { message: string; at: number }>();

  constructor(host: LlamaHost) {
    this.host = host;
  }

  /** The entry serving this spec, loading it if needed (throws at once for a file that failed lately). */
  get(spec: ModelSpec): Entry {
    const key = specKey(spec);
    const existing = this.entries.get(key);
    if (existing && !existing.stale) return existing;
    const failed = this.failures.get(key);
    if (failed && Date.now() - failed.at < FAILURE_TTL_MS) throw new WorkerError("unavailable", failed.message);
    // Another version of this file (or other settings) is loaded: retire it.
    for (const e of this.entries.values()) {
      if (e.spec.path === spec.path && !e.stale) {
        e.stale = true;
        if (e.active === 0) void this.unload(e);
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
    entry.ready = this.load(spec).then(
      (loaded) => {
        entry.loaded = loaded;
        this.failures.delete(key);
        return loaded;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        const message = err instanceof Error ? err.message : String(err);
        this.failures.set(key, { message, at: Date.now() });
        throw err;
      },
    );
    entry.ready.catch(() => {}); // observed by each request
    this.entries.set(key, entry);
    return entry;
  }

  async acquire(entry: Entry): Promise<Loaded> {
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

  release(entry: Entry): void {
    entry.active--;
    entry.lastUsed = Date.now();
    if (entry.active > 0) return;
    if (entry.stale) {
      void this.unload(entry);
      return;
    }
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null;
      if (entry.active === 0) void this.unload(entry);
    }, entry.spec.idleTtlMs);
  }

  async unload(entry: Entry): Promise<void> {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
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

  /** Unloads the idle entries of this file (all files when no path); busy ones go when idle. How many were unloaded. */
  async unloadMatching(path: string | undefined): Promise<number> {
    let count = 0;
    for (const e of [...this.entries.values()]) {
      if (path !== undefined && e.spec.path !== path) continue;
      if (e.active > 0) {
        e.stale = true;
        continue;
      }
      count++;
      await this.unload(e);
    }
    return count;
  }

  async unloadAll(): Promise<void> {
    await Promise.allSettled([...this.entries.values()].map((e) => this.unload(e)));
  }

  status(): LoadedModelStatus[] {
    const models: LoadedModelStatus[] = [];
    for (const e of this.entries.values()) {
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
    return models;
  }

  private async load(spec: ModelSpec): Promise<Loaded> {
    const l = await this.host.current();
    if (!l) throw new WorkerError("unavailable", "embedded engine is not initialised");
    const since = this.host.logSeq;
    let model: LlamaModel;
    try {
      model = await l.loadModel({ modelPath: spec.path });
    } catch (err) {
      throw new WorkerError("unavailable", loadError(spec, err, this.host.logSince(since)));
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
      throw new WorkerError("unavailable", `model ${spec.file} could not be loaded: cannot create a context: ${(err as Error).message}`);
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
}

/** The reason llama.cpp logged for a failed load (it only throws "Failed to load model"). */
function loadError(spec: ModelSpec, err: unknown, lines: string[]): string {
  const explicit = lines.find((l) => /error loading model: /.test(l))?.replace(/^.*error loading model: /, "");
  const other = lines.find((l) => /not within the file bounds|invalid|corrupt|unknown|unsupported|failed to read/i.test(l));
  const base = (err instanceof Error ? err.message : String(err)).replace(/^Failed simulating model resource usage\. Falling back to estimation heuristic\. Error: /, "");
  const detail = explicit ?? other ?? (/^Failed to load model$/i.test(base) ? "llama.cpp refused the file (corrupt, incomplete or an unsupported architecture)" : base);
  return `model ${spec.file} could not be loaded: ${detail}`;
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

/** A free sequence, preferring the one whose cached tokens share the longest prefix with the prompt. */
export async function takeSequence(loaded: Loaded, tokens: readonly Token[]): Promise<LlamaContextSequence> {
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

export function releaseSequence(loaded: Loaded, seq: LlamaContextSequence): void {
  if (seq.disposed) return;
  const waiter = loaded.waiters.shift();
  if (waiter) waiter(seq);
  else loaded.idle.push(seq);
}
