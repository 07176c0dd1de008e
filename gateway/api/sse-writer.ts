// Writes an OpenAI-style SSE stream to the client, respecting back-pressure:
// when the client reads slowly we wait for 'drain' instead of buffering.
import type { ServerResponse } from "node:http";
import { RAW_JSON, type OpenAIChunk } from "../providers/types.ts";

export class SseWriter {
  private readonly res: ServerResponse;
  readonly overheadMs: number;

  constructor(res: ServerResponse, headers: Record<string, string>, overheadMs: number) {
    this.res = res;
    this.overheadMs = overheadMs;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    // No flushHeaders(): the headers leave with the first event (one write, not two);
    // the keep-alive path sends a comment at once, which carries them.
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** The chunks of one batch as one write (an empty batch writes nothing). */
  data(batch: readonly OpenAIChunk[]): Promise<void> {
    let text = "";
    for (const obj of batch) text += `data: ${obj[RAW_JSON] ?? JSON.stringify(obj)}\n\n`;
    return text === "" ? Promise.resolve() : this.write(text);
  }

  comment(text: string): void {
    if (!this.closed) this.res.write(`: ${text}\n\n`);
  }

  /** The end marker and the end of the response in one go (a few bytes: no need to wait for drain). */
  done(): Promise<void> {
    return this.end("data: [DONE]\n\n");
  }

  /** An error event the OpenAI SDKs surface as an exception, then the end of the stream. */
  error(body: unknown): Promise<void> {
    return this.end(`data: ${JSON.stringify(body)}\n\n`);
  }

  destroy(): void {
    if (!this.res.destroyed) this.res.destroy();
  }

  private end(text: string): Promise<void> {
    if (this.closed) return Promise.reject(clientClosed());
    this.res.end(text);
    return Promise.resolve();
  }

  private write(text: string): Promise<void> {
    if (this.closed) return Promise.reject(clientClosed());
    if (this.res.write(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.res.off("close", onClose);
        resolve();
      };
      const onClose = (): void => {
        this.res.off("drain", onDrain);
        reject(clientClosed());
      };
      this.res.once("drain", onDrain);
      this.res.once("close", onClose);
    });
  }
}

function clientClosed(): Error {
  return Object.assign(new Error("client closed the stream"), { code: "ECONNRESET" });
}
