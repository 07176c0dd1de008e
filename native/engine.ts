// The embedded llama.cpp engine as the gateway's main thread sees it. All model work
// happens in a worker thread (engine-worker.ts): a long generation never blocks the
// gateway's event loop. This side admits requests per model (sequences + FIFO queue),
// relays tokens as the worker produces them, and restarts the worker if it dies.
import { Worker } from "node:worker_threads";
import type { EngineErrorClass, FinishReason, FromWorker, GpuSetting, LoadedModelStatus, ModelSpec, Prompt, SamplingParams, ToWorker } from "./protocol.ts";
import { QueueFullError, SlotGate } from "./slots.ts";

export type { ChatMessage, GpuSetting, ModelSpec, Prompt, SamplingParams, FinishReason } from "./protocol.ts";

export class EngineError extends Error {
  readonly errorClass: EngineErrorClass | "overloaded";
  constructor(errorClass: EngineErrorClass | "overloaded", message: string) {
    super(message);
    this.name = "EngineError";
    this.errorClass = errorClass;
  }
}

export interface EngineOptions {
  gpu: GpuSetting;
  /** Where the worker's script is; tests may point elsewhere. */
  workerUrl?: URL;
}

export interface GenerateRequest {
  model: ModelSpec;
  prompt: Prompt;
  params: SamplingParams;
  /** Requests allowed to wait for a sequence of this model. */
  maxQueue: number;
}

export interface GenerationResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** The whole text for non-streaming requests. */
  text?: string;
}

export interface Generation {
  promptTokens: number;
  contextSize: number;
  /** Text pieces as they are produced (streaming requests). Throws on failure or abort. */
  text: AsyncIterable<string>;
  /** Settles when the worker has finished (and freed the sequence). */
  result: Promise<GenerationResult>;
  /** Stop generating now (the reader went away); `text` ends with a cancellation error. */
  cancel(): void;
}

export interface EmbedResult {
  vectors: Float32Array[];
  promptTokens: number;
}

export interface EngineStatus {
  running: boolean;
  gpu: string | false | null;
  models: LoadedModelStatus[];
  /** Why the last start failed or the worker last died, if it did. */
  lastError: string | null;
  restarts: number;
}

type Handler = (msg: FromWorker) => void;

const DEATH_PREFIX = "embedded engine stopped unexpectedly";
const NEVER_ABORTS = new AbortController().signal;

/** The promise's outcome, or a cancellation as soon as the signal aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(cancelled(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelled(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** How long a worker may take to free its models before it is terminated. */
const SHUTDOWN_GRACE_MS = 5_000;
/** After llama.cpp failed to start, requests fail fast for this long before it is tried again. */
const START_RETRY_MS = 10_000;

export class EmbeddedEngine {
  private readonly opts: EngineOptions;
  private worker: Worker | null = null;
  private starting: Promise<Worker> | null = null;
  private readonly pending = new Map<number, Handler>();
  private readonly gates = new Map<string, SlotGate>();
  private nextId = 1;
  private closed = false;
  /** Workers that have ended (so nobody waits for their 'exit' again). */
  private readonly exited = new WeakSet<Worker>();
  private gpu: string | false | null = null;
  private lastError: string | null = null;
  private restarts = 0;
  private everStarted = false;
  private ready = false;
  private startFailure: { at: number; error: EngineError } | null = null;

  constructor(opts: EngineOptions) {
    this.opts = opts;
  }

  /** Generate text. Resolves once the model is loaded and the prompt fits the context. */
  async generate(req: GenerateRequest, signal: AbortSignal): Promise<Generation> {
    const { release, worker } = await this.admitAndStart(req.model, req.maxQueue, signal);
    if (signal.aborted) {
      release();
      throw cancelled(signal);
    }

    const id = this.nextId++;
    const text = new TextQueue();
    let settle!: { resolve: (r: GenerationResult) => void; reject: (e: unknown) => void };
    const result = new Promise<GenerationResult>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => {}); // observed by the caller when it cares
    let startedResolve!: (g: Generation) => void;
    let startedReject!: (e: unknown) => void;
    const started = new Promise<Generation>((resolve, reject) => {
      startedResolve = resolve;
      startedReject = reject;
    });
    let isStarted = false;

    let abortSent = false;
    const onAbort = (): void => {
      // Stop relaying now; the worker stops generating and frees the sequence,
      // and the slot is handed on when it says it is done.
      if (!abortSent && this.pending.has(id)) this.post(worker, { op: "abort", id });
      abortSent = true;
      const err = cancelled(signal);
      text.fail(err);
      if (!isStarted) startedReject(err);
    };
    const finish = (): void => {
      signal.removeEventListener("abort", onAbort);
      this.pending.delete(id);
      this.refWorker();
      release();
    };

    this.pending.set(id, (msg) => {
      switch (msg.type) {
        case "started":
          isStarted = true;
          startedResolve({ promptTokens: msg.promptTokens, contextSize: msg.contextSize, text, result, cancel: onAbort });
          break;
        case "text":
          text.push(msg.text);
          break;
        case "done":
          finish();
          text.end();
          settle.resolve({ finishReason: msg.finishReason, promptTokens: msg.promptTokens, completionTokens: msg.completionTokens, text: msg.text });
          if (!isStarted) startedReject(cancelled(signal));
          break;
        case "error": {
          finish();
          const err = signal.aborted && msg.errorClass !== "unavailable" ? cancelled(signal) : new EngineError(msg.errorClass, msg.message);
          text.fail(err);
          settle.reject(err);
          if (!isStarted) startedReject(err);
          break;
        }
        default:
          break;
      }
    });
    this.refWorker();
    signal.addEventListener("abort", onAbort, { once: true });
    this.post(worker, { op: "generate", id, model: req.model, prompt: req.prompt, params: req.params });
    return started;
  }

  async embed(model: ModelSpec, inputs: (string | number[])[], maxQueue: number, signal: AbortSignal): Promise<EmbedResult> {
    const { release, worker } = await this.admitAndStart(model, maxQueue, signal);
    // The worker cannot stop an embedding half-way: the slot stays taken until it
    // answers (or dies), even when the caller has gone.
    const exchange = this.request(worker, (id) => ({ op: "embed", id, model, inputs }), NEVER_ABORTS);
    void exchange.then(release, release);
    const msg = await untilAborted(exchange, signal);
    if (msg.type === "embeddings") return { vectors: msg.vectors, promptTokens: msg.promptTokens };
    throw toError(msg);
  }

  /** Loaded models and worker state. Never starts the worker. */
  async status(signal?: AbortSignal): Promise<EngineStatus> {
    const base = { gpu: this.gpu, lastError: this.lastError, restarts: this.restarts };
    const worker = this.worker;
    if (!worker || !this.ready) return { running: worker !== null, models: [], ...base };
    try {
      const msg = await this.request(worker, (id) => ({ op: "status", id }), signal ?? AbortSignal.timeout(5000));
      if (msg.type === "status") return { running: true, ...base, gpu: msg.gpu, models: msg.models };
    } catch {
      // fall through
    }
    return { running: this.worker !== null, models: [], ...base };
  }

  /** Unload one model file (or all when no path) as soon as it is idle. */
  async unload(path?: string): Promise<number> {
    const worker = this.worker;
    if (!worker) return 0;
    const msg = await this.request(worker, (id) => ({ op: "unload", id, path }), AbortSignal.timeout(30_000));
    return msg.type === "unloaded" ? msg.count : 0;
  }

  /** Requests running and waiting per model path. */
  queues(): { path: string; active: number; waiting: number }[] {
    return [...this.gates].map(([path, g]) => ({ path, active: g.active, waiting: g.waiting }));
  }

  /** Lose the worker as if it had failed: in-flight requests fail, the next request starts a new one. */
  async stopWorker(): Promise<void> {
    const w = this.worker;
    if (w) await this.endWorker(w, true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new EngineError("unavailable", "embedded engine is shut down");
    for (const g of this.gates.values()) g.failAll(err);
    const w = this.worker;
    this.worker = null;
    this.starting = null;
    this.failPending(err.message);
    if (w) await this.endWorker(w, false);
  }

  /**
   * Ends a worker after it has freed its native resources. terminate() alone,
   * with llama.cpp contexts alive, can abort the whole process; it is only the
   * fallback for a worker that does not finish in time.
   */
  private async endWorker(worker: Worker, crash: boolean): Promise<void> {
    if (this.exited.has(worker)) return; // 'exit' is emitted once: waiting for it again would hang
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.ref();
    this.post(worker, { op: "shutdown", id: this.nextId++, crash });
    const timer = setTimeout(() => void worker.terminate().catch(() => {}), SHUTDOWN_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  // -------------------------------------------------------------------------

  /** A slot for this model and a running worker; the slot is given back if the worker cannot be had. */
  private async admitAndStart(model: ModelSpec, maxQueue: number, signal: AbortSignal): Promise<{ release: () => void; worker: Worker }> {
    const release = await this.admit(model, maxQueue, signal);
    try {
      return { release, worker: await untilAborted(this.ensureWorker(), signal) };
    } catch (err) {
      release();
      throw err;
    }
  }

  private async admit(model: ModelSpec, maxQueue: number, signal: AbortSignal): Promise<() => void> {
    if (this.closed) throw new EngineError("unavailable", "embedded engine is shut down");
    let gate = this.gates.get(model.path);
    if (!gate) {
      gate = new SlotGate(model.parallel, maxQueue);
      this.gates.set(model.path, gate);
    }
    gate.capacity = Math.max(1, model.parallel);
    gate.maxQueue = Math.max(0, maxQueue);
    try {
      return await gate.acquire(signal, `model ${model.file}`);
    } catch (err) {
      if (err instanceof QueueFullError) throw new EngineError("overloaded", err.message);
      if (signal.aborted) throw cancelled(signal);
      throw err;
    }
  }

  /** The running worker, started (and llama.cpp initialised) on first use. */
  private ensureWorker(): Promise<Worker> {
    if (this.closed) return Promise.reject(new EngineError("unavailable", "embedded engine is shut down"));
    if (this.starting) return this.starting;
    // llama.cpp itself failed to start a moment ago: it will again, answer at once.
    if (this.startFailure && Date.now() - this.startFailure.at < START_RETRY_MS) return Promise.reject(this.startFailure.error);
    const url = this.opts.workerUrl ?? new URL("./engine-worker.ts", import.meta.url);
    const worker = new Worker(url, { name: "labgate-embedded-engine" });
    this.worker = worker;
    this.ready = false;
    if (this.everStarted) this.restarts++;
    this.everStarted = true;
    let exitReason: string | null = null;
    worker.on("message", (msg: FromWorker) => this.pending.get(msg.id)?.(msg));
    worker.on("error", (err) => {
      exitReason = err instanceof Error ? err.message : String(err);
    });
    worker.on("exit", (code) => {
      this.exited.add(worker);
      if (this.worker !== worker) return;
      this.worker = null;
      this.starting = null;
      this.ready = false;
      if (this.closed) return;
      const why = exitReason ?? `exit code ${code}`;
      this.lastError = `${DEATH_PREFIX} (${why})`;
      this.failPending(`${DEATH_PREFIX} (${why}); the request was aborted, the engine restarts on the next request`);
    });
    const starting: Promise<Worker> = this.request(worker, (id) => ({ op: "init", id, gpu: this.opts.gpu }), AbortSignal.timeout(120_000))
      .then((msg) => {
        if (msg.type !== "ready") throw toError(msg);
        this.gpu = msg.gpu;
        this.startFailure = null;
        if (this.worker === worker) this.ready = true;
        this.refWorker();
        return worker;
      })
      .catch(async (err: unknown) => {
        // llama.cpp could not start: report it, and let the next request try again.
        const e = err instanceof EngineError ? err : new EngineError("unavailable", `embedded engine could not start: ${(err as Error).message}`);
        this.lastError = e.message;
        if (/could not start/.test(e.message)) this.startFailure = { at: Date.now(), error: e };
        if (this.worker === worker) {
          this.worker = null;
          this.starting = null;
          this.ready = false;
        }
        void this.endWorker(worker, false).catch(() => {});
        throw e;
      });
    this.starting = starting;
    return starting;
  }

  /** One request/answer exchange with the worker. */
  private request(worker: Worker, build: (id: number) => ToWorker, signal: AbortSignal): Promise<FromWorker> {
    const id = this.nextId++;
    return new Promise<FromWorker>((resolve, reject) => {
      const onAbort = (): void => {
        this.pending.delete(id);
        this.refWorker();
        reject(cancelled(signal));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, (msg) => {
        signal.removeEventListener("abort", onAbort);
        this.pending.delete(id);
        this.refWorker();
        resolve(msg);
      });
      this.refWorker();
      this.post(worker, build(id));
    });
  }

  private post(worker: Worker, msg: ToWorker): void {
    try {
      worker.postMessage(msg);
    } catch {
      // the worker is gone; its exit handler fails the request
    }
  }

  private failPending(message: string): void {
    const handlers = [...this.pending.entries()];
    this.pending.clear();
    for (const [id, h] of handlers) h({ id, type: "error", errorClass: "unavailable", message });
  }

  /** The worker keeps the process alive only while it has work. */
  private refWorker(): void {
    const w = this.worker;
    if (!w) return;
    if (this.pending.size > 0) w.ref();
    else w.unref();
  }
}

function cancelled(signal: AbortSignal): unknown {
  const reason = signal.reason as unknown;
  // A typed reason (e.g. the router's timeout error) is passed through as is.
  if (reason instanceof Error && reason.name !== "AbortError") return reason;
  return new EngineError("cancelled", "request cancelled");
}

function toError(msg: FromWorker): EngineError {
  if (msg.type === "error") return new EngineError(msg.errorClass, msg.message);
  return new EngineError("server_error", `embedded engine answered ${msg.type} unexpectedly`);
}

/** Text pieces from the worker, read once by one consumer. */
class TextQueue implements AsyncIterable<string> {
  private readonly items: string[] = [];
  private ended = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;

  push(s: string): void {
    if (this.ended || this.error) return;
    this.items.push(s);
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  fail(err: unknown): void {
    if (this.ended || this.error) return;
    this.error = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.items.length > 0) {
        // Hand over everything that arrived since the last read in one piece.
        const s = this.items.length === 1 ? this.items[0] : this.items.join("");
        this.items.length = 0;
        yield s;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
