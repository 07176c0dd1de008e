// The embedded llama.cpp engine as the gateway's main thread sees it. All model work
// happens in a worker thread (engine-worker.ts): a long generation never blocks the
// gateway's event loop. This side admits requests per model (sequences + FIFO queue)
// and relays tokens as the worker produces them. The worker's lifecycle (start,
// ready, stop with a grace period, death) is the lab supervisor's state machine
// (gateway/lab/supervisor.ts); a worker that died is started again by the next request.
import type { Worker } from "node:worker_threads";
import { PermanentFailure, Supervisor, SupervisorStartError, type SupervisorFailure, type SupervisorState, type TransitionEvent } from "../gateway/lab/supervisor.ts";
import { WorkerChild } from "../gateway/lab/worker-child.ts";
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
  /** How long a worker may take to free its models before it is terminated. Default 5 s. */
  shutdownGraceMs?: number;
  /** How long llama.cpp may take to initialise in a new worker. Default 120 s. */
  startupTimeoutMs?: number;
  /** After llama.cpp failed to start, requests fail fast for this long before it is tried again. Default 10 s. */
  startRetryMs?: number;
  now?: () => number;
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
  /** The worker is starting or running. */
  running: boolean;
  /** The worker's supervisor state. */
  state: SupervisorState;
  /** llama.cpp could not start (it said so, or was not ready in time): the engine is down until it is tried again. */
  startFailed: boolean;
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

const SHUTDOWN_GRACE_MS = 5_000;
const STARTUP_TIMEOUT_MS = 120_000;
const START_RETRY_MS = 10_000;
const RESTARTS_ON_NEXT_REQUEST = "the request was aborted, the engine restarts on the next request";

export class EmbeddedEngine {
  private readonly opts: EngineOptions;
  /** The worker thread's lifecycle: started on demand, never restarted by itself. */
  readonly supervisor: Supervisor<WorkerChild>;
  private readonly pending = new Map<number, Handler>();
  private readonly gates = new Map<string, SlotGate>();
  private nextId = 1;
  private closed = false;
  private gpu: string | false | null = null;
  private readonly now: () => number;
  private readonly shutdownGraceMs: number;

  constructor(opts: EngineOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.shutdownGraceMs = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    const url = opts.workerUrl ?? new URL("./engine-worker.ts", import.meta.url);
    this.supervisor = new Supervisor<WorkerChild>({
      name: "embedded engine",
      spawn: () =>
        new WorkerChild({
          url,
          name: "labgate-embedded-engine",
          // The per-token path: worker -> this listener -> the request's handler.
          setup: (w) => w.on("message", (msg: FromWorker) => this.pending.get(msg.id)?.(msg)),
          // Free llama.cpp's contexts first: terminate() with them alive can abort the whole process.
          gracefulStop: (w) => w.postMessage({ op: "shutdown", id: this.nextId++, crash: false } satisfies ToWorker),
        }),
      ready: (child, signal) => this.init(child, signal),
      startupTimeoutMs: opts.startupTimeoutMs ?? STARTUP_TIMEOUT_MS,
      stopGraceMs: this.shutdownGraceMs,
      // The next request starts a worker that died; nothing restarts it meanwhile.
      restart: "never",
      describeExit: (info) => `${DEATH_PREFIX} (${info.error ?? `exit code ${info.code}`})`,
      now: this.now,
    });
    this.supervisor.events.on("transition", (e) => this.onTransition(e));
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
    const st = this.supervisor.status();
    const base = {
      state: st.state,
      startFailed: this.startFailure() !== null,
      gpu: this.gpu,
      lastError: st.lastError,
      restarts: st.restarts,
    };
    const running = (): boolean => this.supervisor.state === "starting" || this.supervisor.state === "running";
    const worker = this.worker;
    if (!worker || st.state !== "running") return { running: running(), models: [], ...base };
    try {
      const msg = await this.request(worker, (id) => ({ op: "status", id }), signal ?? AbortSignal.timeout(5000));
      if (msg.type === "status") return { running: true, ...base, gpu: msg.gpu, models: msg.models };
    } catch {
      // fall through
    }
    return { running: running(), models: [], ...base };
  }

  /** Unload one model file (or all when no path) as soon as it is idle. */
  async unload(path?: string): Promise<number> {
    const state = this.supervisor.state;
    const worker = this.worker;
    if (!worker || (state !== "running" && state !== "starting")) return 0;
    const msg = await this.request(worker, (id) => ({ op: "unload", id, path }), AbortSignal.timeout(30_000));
    return msg.type === "unloaded" ? msg.count : 0;
  }

  /** Requests running and waiting per model path. */
  queues(): { path: string; active: number; waiting: number }[] {
    return [...this.gates].map(([path, g]) => ({ path, active: g.active, waiting: g.waiting }));
  }

  /** Lose the worker as if it had failed: in-flight requests fail, the next request starts a new one. */
  async stopWorker(): Promise<void> {
    const child = this.supervisor.child;
    const worker = child?.worker;
    if (!child || !worker) return;
    worker.ref();
    // It frees llama.cpp, then ends with an error (a crash as the supervisor sees it);
    // terminated if it does not in time.
    this.post(worker, { op: "shutdown", id: this.nextId++, crash: true });
    const timer = setTimeout(() => child.stop("force"), this.shutdownGraceMs);
    await child.exited;
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = shutDown();
    for (const g of this.gates.values()) g.failAll(err);
    this.failPending(err.message);
    await this.supervisor.stop("embedded engine closed");
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
    if (this.closed) throw shutDown();
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
  private async ensureWorker(): Promise<Worker> {
    const s = this.supervisor;
    for (;;) {
      if (this.closed) throw shutDown();
      if (s.state === "running") {
        const w = this.worker;
        if (w) return w;
      }
      if (s.state !== "stopping") break;
      await s.waitFor("stopped", "failed", "backoff");
    }
    // llama.cpp itself failed to start a moment ago: it will again, answer at once.
    const failed = this.startFailure();
    if (failed && this.now() - failed.at < (this.opts.startRetryMs ?? START_RETRY_MS)) throw this.startError(failed);
    try {
      await s.start();
    } catch (err) {
      if (this.closed) throw shutDown();
      throw err instanceof SupervisorStartError && err.failure ? this.startError(err.failure) : new EngineError("unavailable", `embedded engine could not start: ${(err as Error).message}`);
    }
    const w = this.worker;
    if (!w || s.state !== "running") throw new EngineError("unavailable", `${s.status().lastError ?? "embedded engine stopped"}; ${RESTARTS_ON_NEXT_REQUEST}`);
    return w;
  }

  /** Readiness of a new worker: llama.cpp initialised in it. */
  private async init(child: WorkerChild, signal: AbortSignal): Promise<void> {
    const worker = child.worker;
    if (!worker) throw new Error("the worker did not start");
    const msg = await this.request(worker, (id) => ({ op: "init", id, gpu: this.opts.gpu }), signal);
    if (msg.type === "ready") {
      this.gpu = msg.gpu;
      return;
    }
    if (msg.type === "start-failed") throw new PermanentFailure(msg.message);
    throw toError(msg);
  }

  /** The worker left (it died, or could not start): requests still waiting on it fail now. */
  private onTransition(e: TransitionEvent): void {
    if (this.closed || !e.exit || (e.from !== "running" && e.from !== "starting")) return;
    this.failPending(`${this.supervisor.status().lastError ?? e.reason}; ${RESTARTS_ON_NEXT_REQUEST}`);
  }

  /** The failed start that keeps the engine down (the worker was alive but llama.cpp could not start), if that is the state. */
  private startFailure(): SupervisorFailure | null {
    const f = this.supervisor.status().failure;
    return f && f.exit === null ? f : null;
  }

  private startError(f: SupervisorFailure): EngineError {
    // The worker died: the same words as for requests it was serving.
    if (f.exit) return new EngineError("unavailable", `${f.reason}; ${RESTARTS_ON_NEXT_REQUEST}`);
    // It said why (llama.cpp cannot start here): its words.
    if (f.permanent) return new EngineError("unavailable", f.reason);
    return new EngineError("unavailable", `embedded engine could not start: ${f.reason}`);
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

  /** The current worker thread (from its start until it has exited). */
  private get worker(): Worker | null {
    return this.supervisor.child?.worker ?? null;
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

function shutDown(): EngineError {
  return new EngineError("unavailable", "embedded engine is shut down");
}

function toError(msg: FromWorker): EngineError {
  if (msg.type === "error") return new EngineError(msg.errorClass, msg.message);
  if (msg.type === "start-failed") return new EngineError("unavailable", msg.message);
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
