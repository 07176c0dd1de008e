// A node:worker_threads Worker as a supervised child (supervisor.ts). The worker's
// own protocol stays with its owner: `setup` attaches message listeners (the
// per-message path never goes through the supervisor), `gracefulStop` sends its
// shutdown message; a forced stop is terminate().
import type { Worker } from "node:worker_threads";
import { startWorker } from "../../bin/prestripped.js";
import type { ChildHandle, ExitInfo } from "./supervisor.ts";

export interface WorkerChildOptions {
  url: URL;
  /** The thread's name (shown in inspectors and heap snapshots). */
  name?: string;
  workerData?: unknown;
  /** Called once the Worker exists, before it runs: attach message listeners here. */
  setup?(worker: Worker): void;
  /** Ask the worker to end by itself (free native resources first). Without it, a graceful stop is terminate() too. */
  gracefulStop?(worker: Worker): void;
}

export class WorkerChild implements ChildHandle {
  readonly opts: WorkerChildOptions;
  private w: Worker | null = null;
  private exitInfo: ExitInfo | null = null;
  private error: string | undefined;
  private readonly exitCallbacks: ((info: ExitInfo) => void)[] = [];
  private resolveExited!: (info: ExitInfo) => void;
  /** Settles with the exit, whatever ended it. */
  readonly exited: Promise<ExitInfo> = new Promise((resolve) => (this.resolveExited = resolve));

  constructor(opts: WorkerChildOptions) {
    this.opts = opts;
  }

  /** The thread (null before start). */
  get worker(): Worker | null {
    return this.w;
  }

  get pid(): number | null {
    return null; // a thread of this process
  }

  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  start(): void {
    if (this.w) throw new Error("a WorkerChild starts once; the supervisor spawns a new one per start");
    const worker = startWorker(this.opts.url, { name: this.opts.name, workerData: this.opts.workerData });
    this.w = worker;
    this.opts.setup?.(worker);
    worker.on("error", (err) => {
      this.error = err instanceof Error ? err.message : String(err);
    });
    worker.on("exit", (code) => this.exit({ code, signal: null, ...(this.error !== undefined ? { error: this.error } : {}) }));
  }

  stop(signal: "graceful" | "force"): void {
    const worker = this.w;
    if (!worker || this.exitInfo) return;
    // A stopping worker keeps the process alive until it has ended.
    worker.ref();
    if (signal === "graceful" && this.opts.gracefulStop) {
      try {
        this.opts.gracefulStop(worker);
        return;
      } catch {
        // the port is closed: fall through to terminate
      }
    }
    void worker.terminate().catch(() => {});
  }

  onExit(cb: (info: ExitInfo) => void): void {
    if (this.exitInfo) queueMicrotask(() => cb(this.exitInfo!));
    else this.exitCallbacks.push(cb);
  }

  private exit(info: ExitInfo): void {
    if (this.exitInfo) return;
    this.exitInfo = info;
    this.resolveExited(info);
    for (const cb of this.exitCallbacks.splice(0)) cb(info);
  }
}
