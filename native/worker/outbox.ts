// The worker's one way to the main thread (native/engine.ts).
import type { MessagePort } from "node:worker_threads";
import type { FromWorker } from "../protocol.ts";

export class Outbox {
  private readonly port: MessagePort;
  /** Set while a simulated failure winds down: the worker then answers nothing, like a dead one. */
  muted = false;

  constructor(port: MessagePort) {
    this.port = port;
  }

  post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
    if (!this.muted) this.port.postMessage(msg, transfer);
  }

  close(): void {
    this.port.close();
  }
}
