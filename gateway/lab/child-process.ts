// A child process as a supervised child (supervisor.ts): llama-server, ollama serve,
// vllm serve. It runs in its own process group (detached), so a stop reaches
// everything it started: SIGTERM to the group, SIGKILL to the group when forced.
// Its stdout and stderr are kept line by line in a bounded ring buffer (lines())
// and announced one by one ('log').
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { StringDecoder } from "node:string_decoder";
import { RingBuffer } from "./ring-buffer.ts";
import type { ChildHandle, ExitInfo, LogLine } from "./supervisor.ts";

/** After the process exited, how long its output may still be read before the exit is reported. */
const OUTPUT_DRAIN_MS = 200;

export interface ProcessChildOptions {
  command: string;
  args?: readonly string[];
  /** The whole environment (default: the gateway's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Lines kept; pass `log` instead to keep them across restarts. Default 200. */
  logLines?: number;
  /** A buffer shared by the incarnations of one supervised server. */
  log?: RingBuffer<LogLine>;
  /** Longer lines are cut (the rest of the line is dropped). Default 4096 characters. */
  maxLineLength?: number;
  now?: () => number;
}

export interface ProcessChildEvents {
  log: [LogLine];
}

export class ProcessChild extends EventEmitter<ProcessChildEvents> implements ChildHandle {
  readonly opts: ProcessChildOptions;
  readonly log: RingBuffer<LogLine>;
  private proc: ChildProcess | null = null;
  private exitInfo: ExitInfo | null = null;
  private readonly exitCallbacks: ((info: ExitInfo) => void)[] = [];
  private readonly now: () => number;
  private readonly maxLine: number;
  /** Kills the group if the gateway itself exits first, so no server outlives it. */
  private readonly onGatewayExit = (): void => this.signalGroup("SIGKILL");

  constructor(opts: ProcessChildOptions) {
    super();
    this.opts = opts;
    this.log = opts.log ?? new RingBuffer<LogLine>(opts.logLines ?? 200);
    this.now = opts.now ?? Date.now;
    this.maxLine = opts.maxLineLength ?? 4096;
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  /** Recent output lines, oldest first. */
  lines(n?: number): string[] {
    return this.log.toArray(n).map((l) => l.line);
  }

  onLog(cb: (line: LogLine) => void): void {
    this.on("log", cb);
  }

  onExit(cb: (info: ExitInfo) => void): void {
    if (this.exitInfo) queueMicrotask(() => cb(this.exitInfo!));
    else this.exitCallbacks.push(cb);
  }

  /** Resolves once the process exists; rejects when it could not be spawned (its exit is reported too). */
  start(): Promise<void> {
    if (this.proc) return Promise.reject(new Error("a ProcessChild starts once; the supervisor spawns a new one per start"));
    const proc = spawn(this.opts.command, this.opts.args ?? [], {
      cwd: this.opts.cwd,
      env: this.opts.env ?? process.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    this.readLines(proc.stdout!, "stdout");
    this.readLines(proc.stderr!, "stderr");
    return new Promise<void>((resolve, reject) => {
      proc.once("spawn", () => {
        process.once("exit", this.onGatewayExit);
        resolve();
      });
      proc.on("error", (err) => {
        // Before 'spawn' it never ran (ENOENT, EACCES); after, a signal could not be sent: nothing to do.
        if (proc.pid !== undefined) return;
        reject(err);
        // Its exit too, after the rejection has been seen: a supervisor then reports "could not be started".
        setImmediate(() => this.exit({ code: null, signal: null, error: err.message }));
      });
      proc.once("exit", (code, signal) => {
        // Its last lines are usually still in the pipes: report the exit once they are read
        // ('close'), or soon anyway when something it started keeps the pipes open.
        const report = (): void => {
          clearTimeout(timer);
          this.exit({ code, signal });
        };
        const timer = setTimeout(report, OUTPUT_DRAIN_MS);
        proc.once("close", report);
      });
    });
  }

  stop(signal: "graceful" | "force"): void {
    this.signalGroup(signal === "force" ? "SIGKILL" : "SIGTERM");
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.proc?.pid;
    if (pid === undefined || this.exitInfo) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // the group is gone already
      try {
        this.proc?.kill(sig);
      } catch {
        // so is the process
      }
    }
  }

  private exit(info: ExitInfo): void {
    if (this.exitInfo) return;
    this.exitInfo = info;
    process.removeListener("exit", this.onGatewayExit);
    for (const cb of this.exitCallbacks.splice(0)) cb(info);
  }

  private readLines(stream: NodeJS.ReadableStream, name: "stdout" | "stderr"): void {
    const decoder = new StringDecoder("utf8");
    let partial = "";
    let cut = false;
    const emit = (line: string): void => {
      const entry: LogLine = { stream: name, line: line.endsWith("\r") ? line.slice(0, -1) : line, at: this.now() };
      this.log.push(entry);
      this.emit("log", entry);
    };
    const take = (text: string): void => {
      let start = 0;
      for (;;) {
        const nl = text.indexOf("\n", start);
        if (nl < 0) break;
        const piece = text.slice(start, nl);
        if (!cut) emit((partial + piece).slice(0, this.maxLine));
        partial = "";
        cut = false;
        start = nl + 1;
      }
      if (cut) return;
      partial += text.slice(start);
      if (partial.length > this.maxLine) {
        emit(partial.slice(0, this.maxLine));
        partial = "";
        cut = true;
      }
    };
    stream.on("data", (chunk: Buffer) => take(decoder.write(chunk)));
    stream.on("end", () => {
      const rest = partial + decoder.end();
      partial = "";
      if (rest !== "" && !cut) emit(rest.slice(0, this.maxLine));
    });
    stream.on("error", () => {});
  }
}

/** A supervisor's `spawn` for one server: a new process per start, one log buffer across them. */
export function processSpawner(opts: ProcessChildOptions): { spawn: () => ProcessChild; log: RingBuffer<LogLine> } {
  const log = opts.log ?? new RingBuffer<LogLine>(opts.logLines ?? 200);
  return { spawn: () => new ProcessChild({ ...opts, log }), log };
}
