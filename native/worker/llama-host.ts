// The node-llama-cpp instance of this worker and llama.cpp's recent warnings and
// errors (the reason a model failed to load is only logged there).
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import type { GpuSetting } from "../protocol.ts";

/** Log lines kept. */
const RECENT_LOG = 100;

export class LlamaHost {
  private instance: Llama | null = null;
  private initializing: Promise<Llama> | null = null;
  private readonly recent: { seq: number; text: string }[] = [];
  private seq = 0;

  /** The instance once initialised. */
  get llama(): Llama | null {
    return this.instance;
  }

  /** Sequence number of the last log line: pass it to `logSince` to read what comes after. */
  get logSeq(): number {
    return this.seq;
  }

  readonly logger = (level: LlamaLogLevel, message: string): void => {
    if (level !== LlamaLogLevel.error && level !== LlamaLogLevel.warn && level !== LlamaLogLevel.fatal) return;
    this.recent.push({ seq: ++this.seq, text: message.trim() });
    if (this.recent.length > RECENT_LOG) this.recent.shift();
  };

  logSince(seq: number): string[] {
    return this.recent.filter((l) => l.seq > seq).map((l) => l.text);
  }

  /** Starts llama.cpp once; a failed start may be tried again. */
  init(gpu: GpuSetting): Promise<Llama> {
    this.initializing ??= getLlama({
      build: "never",
      gpu,
      logLevel: LlamaLogLevel.warn,
      logger: this.logger,
      progressLogs: false,
      skipDownload: true,
    }).then(
      (l) => {
        this.instance = l;
        return l;
      },
      (err: unknown) => {
        this.initializing = null;
        throw err;
      },
    );
    return this.initializing;
  }

  /** The instance, waiting for an initialisation in progress (null when there is none). */
  async current(): Promise<Llama | null> {
    return this.instance ?? (await this.initializing?.catch(() => null)) ?? null;
  }

  async dispose(): Promise<void> {
    const l = await this.current();
    await l?.dispose().catch(() => {});
  }
}

/** Why llama.cpp could not start, in words an operator can act on. */
export function startFailureReason(err: unknown, gpu: GpuSetting): string {
  const e = err as Error;
  const why =
    e?.name === "NoBinaryFoundError" || e?.message === "NoBinaryFoundError"
      ? `no prebuilt llama.cpp binary works here for gpu: ${JSON.stringify(gpu)} (building from source is disabled)`
      : (e?.message ?? String(err));
  return `embedded engine could not start llama.cpp: ${why}`;
}
