// Event streams (text/event-stream) read with fetch, because EventSource cannot send
// the admin key as a header (and the key must never go into a URL). One parser for
// every stream of the dashboard (the live events, a process's log): incremental, so a
// line end, a field or a CRLF split across network chunks is put back together.
// Follows the HTML spec's rules (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// lines end with \n, \r\n or \r; ":" starts a comment (heartbeats); "data" lines join
// with \n; a blank line ends the event; "id" is remembered for the events after it.

export interface SseEvent {
  /** The "event" field, "message" without one. */
  type: string;
  /** The "data" lines joined with "\n". */
  data: string;
  /** The last "id" the stream sent (at or before this event), undefined before any. */
  id: string | undefined;
}

export interface SseParser {
  /** Feed decoded text, in chunks as they arrive: complete events go to onEvent. */
  push(chunk: string): void;
}

const LINE_END = /[\r\n]/g;

export function createSseParser(onEvent: (e: SseEvent) => void): SseParser {
  /** The start of a line whose end has not arrived yet. */
  let partial = "";
  /** The previous chunk ended with \r: a \n first in the next one is the same line end. */
  let afterCR = false;
  let first = true;
  let type = "";
  let data: string[] = [];
  let lastId: string | undefined;

  const dispatch = (): void => {
    if (data.length > 0) onEvent({ type: type || "message", data: data.join("\n"), id: lastId });
    data = [];
    type = "";
  };

  const line = (text: string): void => {
    if (text === "") return dispatch();
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) lastId = value;
    // "retry" and unknown fields: the caller decides when to reconnect.
  };

  return {
    push(chunk: string): void {
      if (chunk === "") return;
      let start = 0;
      if (first) {
        first = false;
        if (chunk.startsWith("\uFEFF")) start = 1;
      }
      if (afterCR && chunk[start] === "\n") start++;
      afterCR = false;
      LINE_END.lastIndex = start;
      let m: RegExpExecArray | null;
      while ((m = LINE_END.exec(chunk)) !== null) {
        const end = m.index;
        line(partial + chunk.slice(start, end));
        partial = "";
        start = end + 1;
        if (chunk[end] === "\r") {
          if (chunk[end + 1] === "\n") start++;
          else if (end + 1 === chunk.length) afterCR = true;
        }
        LINE_END.lastIndex = start;
      }
      partial += chunk.slice(start);
    },
  };
}

/** Reads an event stream body to its end (or until its fetch is aborted, which rejects). */
export async function readEventStream(body: ReadableStream<Uint8Array>, onEvent: (e: SseEvent) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = createSseParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      // An event without its blank line at the end of the stream is dropped, as EventSource does.
      parser.push(decoder.decode());
      return;
    }
    parser.push(decoder.decode(value, { stream: true }));
  }
}

/**
 * How long to wait before reconnecting after `failures` tries in a row failed (0 for the
 * first retry): doubling from 1 s to 15 s, each drawn between half and all of that
 * ("equal jitter", so many tabs of a restarted gateway do not come back in step).
 * The first tries stay quick: a gateway back after a restart is seen within seconds.
 */
export function reconnectDelayMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.max(0, Math.min(failures, 10)));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export const RECONNECT_MIN_MS = 1000;
export const RECONNECT_MAX_MS = 15_000;

/** Resolves after ms, or at once when signal aborts (never rejects). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
