// How a streamed attempt starts: the upstream call and its first chunk race a
// keep-alive timer (local servers often send headers only with the first token),
// and the stream that follows fails instead of hanging when it goes silent.
import { UpstreamError, fromNetworkError } from "../providers/errors.ts";
import type { ChunkBatch, CompletionResult } from "../providers/types.ts";

export interface StreamStart {
  /** The upstream's iterator once its call answered. */
  iterator: Promise<AsyncIterator<ChunkBatch>>;
  /** The first batch (or the end of an empty stream). */
  first: Promise<IteratorResult<ChunkBatch>>;
  /** The whole stream from the start, whether or not the iterator is known yet. */
  lazy: AsyncIterator<ChunkBatch>;
}

export function startStream(call: Promise<CompletionResult>): StreamStart {
  const iterator = call.then((result) => {
    if (result.kind !== "stream") throw new UpstreamError("malformed", "adapter answered JSON to a stream request");
    return result.batches[Symbol.asyncIterator]();
  });
  const first = iterator.then((it) => it.next());
  first.catch(() => {}); // observed by the caller; avoid an unhandled rejection after an early commit
  const lazy: AsyncIterator<ChunkBatch> = {
    next: async () => (await iterator).next(),
    return: async () => {
      const it = await iterator.catch(() => undefined);
      await it?.return?.();
      return { done: true, value: undefined };
    },
  };
  return { iterator, first, lazy };
}

/** The first batch, or "early" once keepAliveMs passed without one (undefined: never commit early). */
export async function firstOrEarly(first: Promise<IteratorResult<ChunkBatch>>, keepAliveMs: number | undefined): Promise<IteratorResult<ChunkBatch> | "early"> {
  if (keepAliveMs === undefined) return first;
  let timer: NodeJS.Timeout | undefined;
  const early = new Promise<"early">((resolve) => {
    timer = setTimeout(() => resolve("early"), keepAliveMs);
  });
  try {
    return await Promise.race([first, early]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Wraps a chunk iterator so a stream that goes silent for longer than the
 * attempt timeout fails instead of hanging, and errors carry their class.
 */
export function withIdleTimeout(it: AsyncIterator<ChunkBatch>, idleMs: number, ac: AbortController): AsyncIterator<ChunkBatch> {
  // One timer for the whole stream (not one per chunk). It only counts time spent
  // waiting on the upstream: while the client is slow to read, it re-arms instead.
  let timer: NodeJS.Timeout | undefined;
  let waiting = false;
  const stop = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const onIdle = (): void => {
    if (waiting) ac.abort(new UpstreamError("timeout", `stream idle for ${idleMs} ms`));
    else timer?.refresh();
  };
  return {
    async next() {
      if (timer) timer.refresh();
      else timer = setTimeout(onIdle, idleMs).unref();
      waiting = true;
      try {
        const r = await it.next();
        if (r.done) stop();
        return r;
      } catch (err) {
        stop();
        throw ac.signal.aborted && ac.signal.reason instanceof UpstreamError ? ac.signal.reason : fromNetworkError(err, ac.signal);
      } finally {
        waiting = false;
      }
    },
    async return() {
      stop();
      ac.abort(new UpstreamError("cancelled", "stream closed"));
      try {
        await it.return?.();
      } catch {
        // the upstream is being torn down; nothing to report
      }
      return { done: true, value: undefined };
    },
  };
}
