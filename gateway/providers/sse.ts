// Server-sent events, read incrementally from an upstream body.
import { StringDecoder } from "node:string_decoder";

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/**
 * Parses an SSE byte stream as it arrives, one batch of events per network read:
 * events that arrived together are handled (and later written to the client)
 * together, instead of paying an async hop and a socket write for each one.
 * Empty reads (an event cut in the middle) yield nothing.
 */
export async function* parseSseBatches(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent[]> {
  const parser = new SseParser();
  for await (const piece of body) {
    const events = parser.push(piece);
    if (events.length > 0) yield events;
  }
  const last = parser.end();
  if (last.length > 0) yield last;
}

/** Incremental SSE parser: feed it reads, get back the events they complete. */
export class SseParser {
  // StringDecoder keeps a character split across reads whole, like TextDecoder's
  // stream mode, at a fraction of the cost per read.
  private readonly decoder = new StringDecoder("utf8");
  private buffer = "";
  /** The raw text of the events the last push() or end() completed: one place to search them all at once. */
  lastText = "";

  /** Part of an event is waiting for the rest of it (the network cut it). */
  get hasPartialEvent(): boolean {
    return this.buffer.length > 0;
  }

  push(piece: Uint8Array | string): SseEvent[] {
    this.buffer += typeof piece === "string" ? piece : this.decoder.write(piece as Buffer);
    const events: SseEvent[] = [];
    // Scan by index and cut the buffer once per read, not once per event.
    // Both separators are looked up again only once the cut passes them: no
    // rescanning of the whole read for each event.
    const buffer = this.buffer;
    let pos = 0;
    let lf = buffer.indexOf("\n\n");
    let crlf = buffer.indexOf("\r\n\r\n");
    for (;;) {
      if (lf >= 0 && lf < pos) lf = buffer.indexOf("\n\n", pos);
      if (crlf >= 0 && crlf < pos) crlf = buffer.indexOf("\r\n\r\n", pos);
      const end = lf < 0 ? crlf : crlf < 0 ? lf : Math.min(lf, crlf);
      if (end < 0) break;
      const ev = parseEvent(buffer.slice(pos, end));
      pos = end + (end === crlf ? 4 : 2);
      if (ev) events.push(ev);
    }
    this.lastText = buffer.slice(0, pos);
    if (pos > 0) this.buffer = buffer.slice(pos);
    return events;
  }

  /** The body ended: whatever is left is the last event (servers may omit the final blank line). */
  end(): SseEvent[] {
    const rest = this.buffer + this.decoder.end();
    this.buffer = "";
    this.lastText = rest;
    const ev = parseEvent(rest);
    return ev ? [ev] : [];
  }
}

function parseEvent(raw: string): SseEvent | undefined {
  // The common case from OpenAI-compatible servers: one `data:` line.
  if (raw.startsWith("data: ") && raw.indexOf("\n") < 0) return { event: undefined, data: raw.slice(6) };
  let event: string | undefined;
  const data: string[] = [];
  for (const line of raw.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0 && event === undefined) return undefined;
  return { event, data: data.join("\n") };
}
