// One HTTP exchange with an upstream, over undici's dispatch API.
//
// undici's request() wraps every answer in a Readable stream inside an
// AsyncResource, and reading that stream with for-await adds an async iterator
// on top. For a gateway, whose every request forwards a body, that machinery cost
// more CPU than the forwarding itself (measured: ~65 µs against ~40 µs per
// streamed answer). Here the dispatch handler feeds the body straight to its one
// reader, with back-pressure (undici pauses the socket while the reader lags).
import type { Dispatcher } from "undici";

export interface ExchangeOptions {
  url: string;
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** Aborting it aborts the exchange (before or during the body). */
  signal: AbortSignal;
  dispatcher: Dispatcher;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: UpstreamBody;
}

/** Chunks queued before undici is asked to stop reading the socket. */
const HIGH_WATER_CHUNKS = 32;
/** What dump() reads and throws away before it gives up on a connection. */
const DUMP_LIMIT_BYTES = 256 * 1024;
const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** Sends the request; resolves when the response headers are in, whatever the status. */
export function exchange(opts: ExchangeOptions): Promise<UpstreamResponse> {
  const { signal } = opts;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let body: UpstreamBody | undefined;
    const onAbort = (): void => controller?.abort(signal.reason as Error);
    const detach = (): void => signal.removeEventListener("abort", onAbort);
    signal.addEventListener("abort", onAbort, { once: true });
    const split = splitUrl(opts.url);
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal.aborted) c.abort(signal.reason as Error);
      },
      onResponseStart(c, statusCode, headers) {
        body = new UpstreamBody(c);
        resolve({ statusCode, headers: headers as UpstreamResponse["headers"], body });
      },
      onResponseData(_c, chunk) {
        body?.push(chunk);
      },
      onResponseEnd() {
        detach();
        body?.end();
      },
      onResponseError(_c, err) {
        detach();
        if (body) body.fail(err);
        else reject(err);
      },
    };
    try {
      opts.dispatcher.dispatch({ origin: split.origin, path: split.path, method: opts.method, headers: opts.headers, body: opts.body ?? null }, handler);
    } catch (err) {
      detach();
      reject(err);
    }
  });
}

/** "http://host:port/a/b?c" -> origin and path, without building a URL object per request. */
function splitUrl(url: string): { origin: string; path: string } {
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  if (slash < 0) return { origin: url, path: "/" };
  return { origin: url.slice(0, slash), path: url.slice(slash) };
}

/**
 * A response body read as an async iterator of Buffers, by one reader. Leaving
 * early (return(), destroy()) aborts the exchange; dump() lets the rest go by
 * unread so the connection can be reused.
 */
export class UpstreamBody implements AsyncIterableIterator<Buffer> {
  private readonly controller: Dispatcher.DispatchController;
  private readonly queue: Buffer[] = [];
  private ended = false;
  private failure: Error | undefined;
  private waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;
  private dumping = false;
  private dumpedBytes = 0;

  constructor(controller: Dispatcher.DispatchController) {
    this.controller = controller;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      if (this.controller.paused && this.queue.length < HIGH_WATER_CHUNKS / 2) this.controller.resume();
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The reader stopped early: the rest is not wanted, and neither is the connection. */
  return(): Promise<IteratorResult<Buffer>> {
    this.destroy();
    return Promise.resolve(DONE);
  }

  destroy(reason: Error = new Error("upstream body discarded")): void {
    if (this.ended || this.failure) return;
    this.controller.abort(reason);
  }

  /** The whole (remaining) body as UTF-8 text. */
  async text(): Promise<string> {
    const parts: Buffer[] = [];
    for (;;) {
      const r = await this.next();
      if (r.done) break;
      parts.push(r.value);
    }
    return parts.length === 1 ? parts[0]!.toString("utf8") : Buffer.concat(parts).toString("utf8");
  }

  /** Reads what is left without keeping it; a server that keeps talking is cut off. */
  dump(): void {
    if (this.ended || this.failure) return;
    this.dumping = true;
    for (const c of this.queue) this.dumpedBytes += c.length;
    this.queue.length = 0;
    if (this.dumpedBytes > DUMP_LIMIT_BYTES) this.destroy();
    else if (this.controller.paused) this.controller.resume();
  }

  /** @internal from the dispatch handler */
  push(chunk: Buffer): void {
    if (this.dumping) {
      this.dumpedBytes += chunk.length;
      if (this.dumpedBytes > DUMP_LIMIT_BYTES) this.destroy();
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve({ value: chunk, done: false });
      return;
    }
    this.queue.push(chunk);
    if (this.queue.length >= HIGH_WATER_CHUNKS && !this.controller.paused) this.controller.pause();
  }

  /** @internal */
  end(): void {
    this.ended = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(DONE);
  }

  /** @internal */
  fail(err: Error): void {
    if (this.ended) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }
}
