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

  data(obj: OpenAIChunk): Promise<void> {
    return this.write(`data: ${obj[RAW_JSON] ?? JSON.stringify(obj)}\n\n`);
  }

  comment(text: string): void {
    if (!this.closed) this.res.write(`: ${text}\n\n`);
  }

  async done(): Promise<void> {
    await this.write("data: [DONE]\n\n");
    this.res.end();
  }

  /** An error event the OpenAI SDKs surface as an exception, then the end of the stream. */
  async error(body: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(body)}\n\n`);
    this.res.end();
  }

  destroy(): void {
    if (!this.res.destroyed) this.res.destroy();
  }

  private write(text: string): Promise<void> {
    if (this.closed) return Promise.reject(Object.assign(new Error("client closed the stream"), { code: "ECONNRESET" }));
    if (this.res.write(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.res.off("close", onClose);
        resolve();
      };
      const onClose = (): void => {
        this.res.off("drain", onDrain);
        reject(Object.assign(new Error("client closed the stream"), { code: "ECONNRESET" }));
      };
      this.res.once("drain", onDrain);
      this.res.once("close", onClose);
    });
  }
}
