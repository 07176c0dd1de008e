// Adapter for the embedded llama.cpp engine (native/): every *.gguf in the models
// folder is a model; requests run in the engine's worker thread, tokens stream back
// as they are produced. This file only translates OpenAI shapes; admission, model
// loading and generation live in native/.
import { availableParallelism } from "node:os";
import { EmbeddedEngine, EngineError, type Generation, type GpuSetting, type ModelSpec } from "../../../native/engine.ts";
import { GgufCatalog, type GgufModel, type ScanResult } from "../../../native/gguf.ts";
import { DEFAULT_CONTEXT_CAP, type Prompt, type SamplingParams } from "../../../native/protocol.ts";
import type { ProviderConfig } from "../../config/schema.ts";
import { IdSource } from "../../store/ids.ts";
import { UpstreamError } from "../errors.ts";
import type { CallContext, ChunkBatch, CompletionResult, HealthResult, LoadedModel, ModelCard, OpenAIBody, OpenAIChunk, ProviderAdapter, Usage } from "../types.ts";
import { chatMessages, completionPrompt, embeddingInputs, newId, openAIFinish, samplingParams, usage } from "./mapping.ts";
import { embeddingToBase64 } from "../mapping-helpers.ts";
import { chatChunk, chatCompletion, textChunk, textCompletion, usageChunk, type EnvelopeMeta } from "../openai-envelopes.ts";

export interface EmbeddedOptions {
  name: string;
  config: ProviderConfig;
  modelsDir: string;
  /**
   * Folder of demo models (the tiny one shipped in resources/models/), served only
   * while the models folder holds no GGUF of its own, so a first chat answers.
   */
  demoDir?: string;
  /** Where response ids come from: the gateway's one id source (default: this adapter's own). */
  ids?: IdSource;
}

/** The models being served right now: the folder's own, or the demo's while it has none. */
interface Served {
  scan: ScanResult;
  demo: boolean;
  /** The models folder's own scan (the same as `scan` unless `demo`). */
  own: ScanResult;
}

export const EMBEDDED_DEFAULTS = {
  parallel: 2,
  maxQueue: 16,
  idleTtlS: 300,
} as const;

/** CPU threads per generation when the config sets none: half the machine, at least one. */
export function defaultThreads(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

export function gpuSetting(gpu: ProviderConfig["gpu"]): GpuSetting {
  if (gpu === false) return false;
  if (gpu === undefined || gpu === true || gpu === "auto") return "auto";
  return gpu;
}

export function createEmbeddedAdapter(opts: EmbeddedOptions): ProviderAdapter {
  return new EmbeddedAdapter(opts);
}

export class EmbeddedAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type = "embedded";
  readonly modelsDir: string;
  readonly engine: EmbeddedEngine;
  readonly catalog: GgufCatalog;
  /** The demo models' catalog, consulted only while `catalog` finds no model. */
  readonly demoCatalog: GgufCatalog | null;
  private readonly threads: number;
  private readonly parallel: number;
  private readonly maxQueue: number;
  private readonly idleTtlMs: number;
  private readonly contextSize: number | undefined;
  private readonly ids: IdSource;
  private listed = new Set<string>();

  constructor(opts: EmbeddedOptions) {
    const c = opts.config;
    this.name = opts.name;
    this.ids = opts.ids ?? new IdSource();
    this.modelsDir = opts.modelsDir;
    this.threads = c.threads ?? defaultThreads();
    this.parallel = c.parallel ?? EMBEDDED_DEFAULTS.parallel;
    this.maxQueue = c.max_queue ?? EMBEDDED_DEFAULTS.maxQueue;
    this.idleTtlMs = (c.idle_ttl_s ?? EMBEDDED_DEFAULTS.idleTtlS) * 1000;
    this.contextSize = c.context_size;
    this.catalog = new GgufCatalog({ dir: opts.modelsDir, names: c.model_names });
    this.demoCatalog = opts.demoDir ? new GgufCatalog({ dir: opts.demoDir }) : null;
    this.engine = new EmbeddedEngine({ gpu: gpuSetting(c.gpu) });
  }

  chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.complete("chat", body, ctx, { kind: "chat", messages: chatMessages(body) });
  }

  completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.complete("completions", body, ctx, completionPrompt(body));
  }

  async embeddings(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }> {
    const inputs = embeddingInputs(body);
    const format = body.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") throw new UpstreamError("bad_request", "encoding_format must be float or base64", { upstreamStatus: 400 });
    const model = await this.resolve(ctx.upstreamModel);
    let res;
    try {
      res = await this.engine.embed(this.spec(model), inputs, this.maxQueue, ctx.signal);
    } catch (err) {
      throw toUpstream(err);
    }
    const u = usage(res.promptTokens, 0);
    return {
      body: {
        object: "list",
        data: res.vectors.map((v, index) => ({ object: "embedding", index, embedding: format === "base64" ? embeddingToBase64(v) : Array.from(v) })),
        model: ctx.upstreamModel,
        usage: { prompt_tokens: u.prompt_tokens, total_tokens: u.total_tokens },
      },
      usage: u,
    };
  }

  async health(_signal: AbortSignal): Promise<HealthResult> {
    const started = performance.now();
    try {
      const { scan, demo, own } = await this.served();
      const status = await this.engine.status(AbortSignal.timeout(2000));
      const ids = scan.models.map((m) => m.id);
      const broken = scan.models.filter((m) => m.error);
      let detail: string;
      const none = own.exists ? `no *.gguf files in ${own.dir}` : `the models folder ${own.dir} does not exist yet`;
      if (demo && ids.length > 0) detail = `${none}: serving the demo model ${ids.join(", ")} (${scan.dir}) until it has one`;
      else if (own.models.length === 0) detail = `no models: ${none}`;
      else detail = `${ids.length} model${ids.length === 1 ? "" : "s"} in ${own.dir}`;
      if (broken.length > 0) detail += `; unusable: ${broken.map((m) => `${m.file} (${m.error})`).join(", ")}`;
      if (status.models.length > 0) detail += `; loaded: ${status.models.map((m) => `${m.file} (${m.active} running)`).join(", ")}`;
      if (status.gpu) detail += `; gpu: ${status.gpu}`;
      // The engine only counts as down when llama.cpp itself cannot start.
      const startFailed = status.startFailed;
      if (status.restarts > 0 || startFailed) detail += `; ${status.lastError}${status.restarts > 0 ? ` (restarted ${status.restarts}x)` : ""}`;
      return { ok: !startFailed, detail, latencyMs: performance.now() - started, models: ids };
    } catch (err) {
      return { ok: false, detail: `cannot read the models folder ${this.modelsDir}: ${(err as Error).message}`, latencyMs: performance.now() - started };
    }
  }

  async listModels(_signal: AbortSignal): Promise<ModelCard[]> {
    const { scan, demo } = await this.served();
    // A file that left the folder frees its memory now rather than after the idle TTL.
    const present = new Set(scan.models.map((m) => m.path));
    for (const path of this.listed) if (!present.has(path)) void this.engine.unload(path).catch(() => {});
    this.listed = present;
    return scan.models.map((m) => (demo ? { ...this.card(m), demo: true } : this.card(m)));
  }

  /** The GGUF files the engine holds in memory (their file size is what they take, near enough). */
  async loadedModels(signal: AbortSignal): Promise<LoadedModel[]> {
    const status = await this.engine.status(signal);
    const { scan } = await this.served();
    return status.models.map((m) => {
      const known = scan.models.find((x) => x.path === m.path);
      return { model: known?.id ?? m.file, size_bytes: known?.sizeBytes ?? null, vram_bytes: null, context_length: m.contextSize, expires_at: null };
    });
  }

  async unloadModel(model: string, _signal: AbortSignal): Promise<boolean> {
    const found = await this.resolve(model);
    return (await this.engine.unload(found.path)) > 0;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }

  // -------------------------------------------------------------------------

  /** The folder's own models; the demo models instead while the folder has no GGUF. */
  private async served(): Promise<Served> {
    const own = await this.catalog.scan();
    if (own.models.length > 0 || !this.demoCatalog) return { scan: own, demo: false, own };
    return { scan: await this.demoCatalog.scan(), demo: true, own };
  }

  private card(m: GgufModel): ModelCard {
    return {
      id: m.id,
      object: "model",
      owned_by: "embedded",
      created: Math.floor(m.mtimeMs / 1000),
      ...(m.contextLength !== undefined || this.contextSize !== undefined ? { context_length: this.effectiveContext(m) } : {}),
      ...(m.contextLength !== undefined ? { n_ctx_train: m.contextLength } : {}),
      ...(m.architecture !== undefined ? { architecture: m.architecture } : {}),
      size_bytes: m.sizeBytes,
      file: m.file,
      ...(m.chatTemplate !== undefined ? { chat_template: m.chatTemplate } : {}),
      ...(m.error !== undefined ? { error: m.error } : {}),
    };
  }

  /** The context each sequence gets (what the engine will actually serve). */
  private effectiveContext(m: GgufModel): number {
    return this.contextSize ?? Math.min(m.contextLength ?? DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
  }

  private async resolve(name: string): Promise<GgufModel> {
    let model: GgufModel | undefined;
    try {
      model = await this.catalog.find(name);
      if (!model && this.demoCatalog) {
        const { scan, demo } = await this.served();
        if (demo) model = scan.models.find((m) => m.id === name || m.file === name || m.file === `${name}.gguf`);
      }
    } catch (err) {
      throw new UpstreamError("unavailable", `cannot read the models folder ${this.modelsDir}: ${(err as Error).message}`);
    }
    if (!model) throw new UpstreamError("not_found", `model ${name} not found: no ${name}.gguf in ${this.modelsDir}`, { upstreamStatus: 404 });
    if (model.error) throw new UpstreamError("unavailable", `model ${model.file} could not be loaded: ${model.error}`);
    return model;
  }

  private spec(m: GgufModel): ModelSpec {
    return {
      path: m.path,
      file: m.file,
      version: m.version,
      ...(this.contextSize !== undefined ? { contextSize: this.contextSize } : {}),
      parallel: this.parallel,
      threads: this.threads,
      idleTtlMs: this.idleTtlMs,
    };
  }

  private async complete(op: "chat" | "completions", body: OpenAIBody, ctx: CallContext, prompt: Prompt): Promise<CompletionResult> {
    const params = samplingParams(body, op);
    const echo = op === "completions" && body.echo === true && prompt.kind === "text" ? prompt.text : "";
    const model = await this.resolve(ctx.upstreamModel);
    let gen: Generation;
    try {
      gen = await this.engine.generate({ model: this.spec(model), prompt, params, maxQueue: this.maxQueue }, ctx.signal);
    } catch (err) {
      throw toUpstream(err);
    }
    const created = Math.floor(Date.now() / 1000);
    // Chat answers say system_fingerprint: null (as llama-server does); completions have none.
    const meta: EnvelopeMeta =
      op === "chat"
        ? { id: newId(this.ids, "chatcmpl"), created, model: ctx.upstreamModel, system_fingerprint: null }
        : { id: newId(this.ids, "cmpl"), created, model: ctx.upstreamModel };

    if (!params.stream) {
      let r;
      try {
        r = await gen.result;
      } catch (err) {
        throw toUpstream(err);
      }
      const u = usage(r.promptTokens, r.completionTokens);
      const finish = openAIFinish(r.finishReason);
      const text = r.text ?? "";
      const out =
        op === "chat"
          ? chatCompletion(meta, { role: "assistant", content: text, refusal: null }, finish, u)
          : textCompletion(meta, echo + text, finish, u);
      return { kind: "json", body: out, usage: u };
    }
    return { kind: "stream", batches: streamBatches(op, gen, meta, echo) };
  }
}

/** One batch per piece of text the engine sends (it already groups tokens that come close together). */
async function* streamBatches(op: "chat" | "completions", gen: Generation, meta: EnvelopeMeta, echo: string): AsyncGenerator<ChunkBatch> {
  let finished = false;
  try {
    if (op === "chat") yield [chatChunk(meta, { role: "assistant", content: "" }, null)];
    else if (echo) yield [textChunk(meta, echo, null)];
    for await (const text of gen.text) {
      yield [op === "chat" ? chatChunk(meta, { content: text }, null) : textChunk(meta, text, null)];
    }
    const r = await gen.result;
    const finish = openAIFinish(r.finishReason);
    finished = true;
    yield [
      op === "chat" ? chatChunk(meta, {}, finish) : textChunk(meta, "", finish),
      usageChunk(op === "chat" ? "chat.completion.chunk" : "text_completion", meta, usage(r.promptTokens, r.completionTokens)),
    ];
  } catch (err) {
    throw toUpstream(err);
  } finally {
    // The reader stopped early (client gone, router gave up): stop generating.
    if (!finished) gen.cancel();
  }
}

function toUpstream(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof EngineError) {
    const status = err.errorClass === "context_window" || err.errorClass === "bad_request" ? { upstreamStatus: 400 } : {};
    return new UpstreamError(err.errorClass, err.message, { ...status, cause: err });
  }
  return new UpstreamError("server_error", `embedded engine error: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
