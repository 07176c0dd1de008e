// What the worker's request handlers share: created once by the worker's entry point
// (engine-worker.ts; a worker thread is its own isolate) and passed to them.
import type { LlamaHost } from "./llama-host.ts";
import type { ModelTable } from "./models.ts";
import type { Outbox } from "./outbox.ts";

export interface WorkerContext {
  out: Outbox;
  llama: LlamaHost;
  models: ModelTable;
  /** Generations in progress by request id, so an abort message can stop one. */
  aborts: Map<number, AbortController>;
}
