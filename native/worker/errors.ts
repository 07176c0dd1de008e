// Errors inside the worker, and how they reach the main thread.
import type { EngineErrorClass } from "../protocol.ts";
import type { Outbox } from "./outbox.ts";

export class WorkerError extends Error {
  readonly errorClass: EngineErrorClass;
  constructor(errorClass: EngineErrorClass, message: string) {
    super(message);
    this.errorClass = errorClass;
  }
}

export function cancelledError(): WorkerError {
  return new WorkerError("cancelled", "request cancelled");
}

export function postError(out: Outbox, id: number, err: unknown, aborted: boolean): void {
  if (err instanceof WorkerError) {
    out.post({ id, type: "error", errorClass: err.errorClass, message: err.message });
  } else if (aborted) {
    out.post({ id, type: "error", errorClass: "cancelled", message: "request cancelled" });
  } else {
    const message = err instanceof Error ? err.message : String(err);
    out.post({ id, type: "error", errorClass: "server_error", message: `embedded engine error: ${message}` });
  }
}
