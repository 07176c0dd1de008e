// Messages between the embedded engine (gateway's main thread, native/engine.ts) and
// its worker thread (native/engine-worker.ts). Plain data only: everything here is
// sent through postMessage (structured clone).

/** Context per sequence when the provider sets none: the model's trained length, capped at this. */
export const DEFAULT_CONTEXT_CAP = 8192;

export type GpuSetting = "auto" | "cuda" | "vulkan" | "metal" | false;

/** Error classes the worker reports; a subset of gateway/providers/errors.ts ErrorClass. */
export type EngineErrorClass = "unavailable" | "context_window" | "bad_request" | "cancelled" | "server_error";

/** Which file to serve and how: one loaded model per distinct spec key. */
export interface ModelSpec {
  /** Absolute path of the .gguf file (first part for split files). */
  path: string;
  /** File name shown in error messages. */
  file: string;
  /** Changes when the file changes on disk (mtime + size), so a replaced file is reloaded. */
  version: string;
  /** Context length per sequence; undefined = the model's trained length, capped. */
  contextSize?: number;
  /** Context sequences (concurrent generations) for this model. */
  parallel: number;
  /** CPU threads per evaluation. */
  threads: number;
  /** Unload after this long without use. */
  idleTtlMs: number;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export type Prompt =
  | { kind: "text"; text: string }
  | { kind: "tokens"; tokens: number[] }
  | { kind: "chat"; messages: ChatMessage[] };

export interface SamplingParams {
  /** Tokens to generate at most; undefined = until end of generation or the context is full. */
  maxTokens?: number;
  temperature: number;
  topP?: number;
  topK?: number;
  minP?: number;
  seed?: number;
  stop: string[];
  /** OpenAI logit_bias: token id -> bias (-100 bans the token). */
  logitBias?: Record<string, number>;
  /** llama.cpp extension: never stop on the end-of-generation token. */
  ignoreEos?: boolean;
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** llama.cpp extension; 1 = off. */
  repeatPenalty?: number;
  /** false: no per-token messages, the whole text comes with `done`. */
  stream: boolean;
}

export type FinishReason = "stop" | "length" | "abort";

export type ToWorker =
  | { op: "init"; id: number; gpu: GpuSetting }
  | { op: "generate"; id: number; model: ModelSpec; prompt: Prompt; params: SamplingParams }
  | { op: "embed"; id: number; model: ModelSpec; inputs: (string | number[])[] }
  | { op: "abort"; id: number }
  | { op: "status"; id: number }
  | { op: "unload"; id: number; path?: string }
  /**
   * Stop generating, free every model and llama.cpp itself, then end the thread.
   * Ending a worker with live native contexts (worker.terminate()) can abort the
   * whole process, so this always comes first. `crash` ends it with an error
   * instead (how tests make the engine lose its worker).
   */
  | { op: "shutdown"; id: number; crash?: boolean };

export interface LoadedModelStatus {
  path: string;
  file: string;
  contextSize: number;
  sequences: number;
  active: number;
  idleMs: number;
}

export type FromWorker =
  /** Answer to init: llama.cpp is up, the worker takes requests. */
  | { id: number; type: "ready"; gpu: string | false; cpuMathCores: number }
  /** Answer to init: llama.cpp cannot start here (no usable binary, no such GPU); trying again at once will not help. */
  | { id: number; type: "start-failed"; message: string }
  /** The model is loaded and the prompt fits: generation is about to start. */
  | { id: number; type: "started"; promptTokens: number; contextSize: number }
  | { id: number; type: "text"; text: string }
  | {
      id: number;
      type: "done";
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
      /** The whole text when the request did not stream. */
      text?: string;
    }
  | { id: number; type: "error"; errorClass: EngineErrorClass; message: string }
  | { id: number; type: "embeddings"; vectors: Float32Array[]; promptTokens: number }
  | { id: number; type: "status"; gpu: string | false; models: LoadedModelStatus[] }
  | { id: number; type: "unloaded"; count: number };
