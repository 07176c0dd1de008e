// The contract between the router and the wire-protocol adapters.
// Adapters translate an OpenAI-shaped request into their upstream's protocol and
// translate the answer back into OpenAI shapes. They never route, retry or log.

/** A JSON object whose fields are not typed (upstream answers, request pieces). */
export type Json = Record<string, unknown>;

/** An OpenAI request body as the client sent it (validated loosely at the API edge). */
export type OpenAIBody = Record<string, unknown> & { model: string };

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * Where an adapter may keep a chunk's upstream JSON text when it forwards the
 * upstream's bytes unchanged: the API layer then writes that text instead of
 * serialising the object again. Such chunks are only parsed when they can carry
 * usage or an error.
 */
export const RAW_JSON: unique symbol = Symbol("labgate.rawJson");

/** One OpenAI streaming chunk object (chat.completion.chunk or text_completion). */
export type OpenAIChunk = Record<string, unknown> & { [RAW_JSON]?: string };

/** Chunks that arrived together and are forwarded together. Never empty. */
export type ChunkBatch = OpenAIChunk[];

/** What an adapter gives back for chat and completions. */
export type CompletionResult =
  | {
      kind: "json";
      body: Record<string, unknown>;
      usage: Usage | null;
      /** The upstream's JSON text when `body` is exactly it (sent as is, not re-serialised). */
      raw?: string;
    }
  | {
      kind: "stream";
      /**
       * OpenAI chunks in upstream order, in batches of the chunks that arrived
       * together (one upstream read, one Ollama line, one engine step). Each batch
       * reaches the client in one write; a batch is never empty. Usage chunks
       * (`choices: []` + `usage`) are included; the API layer decides whether the
       * client asked for them. Iteration must stop promptly when the call's signal
       * aborts, and should end as soon as the answer is complete (not when the
       * upstream connection gets round to closing the body).
       */
      batches: AsyncIterable<ChunkBatch>;
    };

export interface CallContext {
  /** Aborted when the client disconnects or the attempt times out. */
  signal: AbortSignal;
  /** The model name to send upstream (the deployment's `model`). */
  upstreamModel: string;
  /** Overall per-attempt timeout in ms (connect + whole answer for non-streams). */
  timeoutMs: number;
}

export type Operation = "chat" | "completions" | "embeddings";

export interface ModelCard {
  id: string;
  owned_by: string;
  created?: number;
  /** Context length when the upstream tells it. */
  context_length?: number;
  [extra: string]: unknown;
}

export interface HealthResult {
  ok: boolean;
  /** Human-readable reason when not ok (or a short status when ok). */
  detail: string;
  latencyMs: number;
  models?: string[];
}

/** A model loaded in a server's memory (GET /admin/lab/models). */
export interface LoadedModel {
  model: string;
  /** Memory it takes in all (bytes), when the server says. */
  size_bytes: number | null;
  /** Of that, on GPUs (bytes). */
  vram_bytes: number | null;
  context_length: number | null;
  /** When the server will unload it by itself (Ollama's keep_alive). */
  expires_at: string | null;
}

export interface ProviderAdapter {
  /** The provider's name in the config (e.g. "ollama", "llama-cpp-native"). */
  readonly name: string;
  /** The provider's config type (e.g. "ollama", "openai", "vllm"). */
  readonly type: string;
  chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult>;
  completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult>;
  embeddings(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }>;
  /** Probe the upstream now. Must not throw. */
  health(signal: AbortSignal): Promise<HealthResult>;
  /** Models the upstream serves itself (used for discovery; optional). */
  listModels?(signal: AbortSignal): Promise<ModelCard[]>;
  /** Models loaded in memory now, and what they take (optional: servers that can tell). */
  loadedModels?(signal: AbortSignal): Promise<LoadedModel[]>;
  /** Free a loaded model's memory; false when it was not loaded (optional: servers that can unload). */
  unloadModel?(model: string, signal: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}
