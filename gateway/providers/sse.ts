// Server-sent events, read incrementally from an upstream body, as the HTML
// specification parses them (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream):
// lines end in LF, CRLF or CR; a blank line dispatches the event; `data` lines
// join with LF; `event`, `id` and `retry` fields; `:` comments; unknown fields
// ignored; one leading BOM stripped.
//
// Most reads from an LLM server hold nothing but single-line `data:` events
// separated by LF LF. Those take a fast path: one indexOf per event and the
// payload sliced out as is. Every other line (multi-line events, CR line ends,
// comments, other fields) goes through the line-by-line path, which keeps the
// event being built across reads.
import { StringDecoder } from "node:string_decoder";
import { UpstreamError } from "./errors.ts";

export interface SseEvent {
  /** The `event` field; undefined when absent or empty (the spec's default type, "message"). */
  event: string | undefined;
  data: string;
}

export interface SseParserOptions {
  /**
   * The body must be an event stream from its first line on: when its first
   * field is not one of SSE's (`data`, `event`, `id`, `retry`) — an HTML page,
   * half a JSON body — push() throws UpstreamError("malformed") at once, before
   * any event. Comments, blank lines and a BOM before the first field are fine.
   */
  requireSse?: boolean;
  /** The response's content-type, named in that error. */
  contentType?: string;
  /**
   * llama.cpp's server writes a stream error as an `error: <json>` line (the event
   * name used as the field name): with this, such a line counts as an SSE field and
   * yields an event of type "error" with that data, like `event: error` + `data:`.
   */
  errorField?: boolean;
}

const NO_EVENTS: SseEvent[] = [];
const LF = 10;
const CR = 13;
const SPACE = 32;

/**
 * Parses an SSE byte stream as it arrives, one batch of events per network read:
 * events that arrived together are handled (and later written to the client)
 * together, instead of paying an async hop and a socket write for each one.
 * Empty reads (an event cut in the middle) yield nothing.
 */
export async function* parseSseBatches(body: AsyncIterable<Uint8Array | string>, opts: SseParserOptions = {}): AsyncGenerator<SseEvent[]> {
  const parser = new SseParser(opts);
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
  private readonly contentType: string | undefined;
  private readonly errorField: boolean;
  /** Text after the last complete line (always starts at a line start). */
  private buffer = "";
  /** The buffer ends with a CR that may be the first half of a CRLF. */
  private keptCr = false;
  /** Some text has arrived (the leading BOM was dealt with). */
  private started = false;
  /** requireSse, and no SSE field seen yet. */
  private sniffing: boolean;
  // The event being built by the line-by-line path (lines read, blank line not yet).
  private pending = false;
  private data = "";
  private hasData = false;
  private eventType: string | undefined;

  /** The raw text of the events the last push() or end() completed: one place to search them all at once. */
  lastText = "";
  /**
   * The last push() or end() read a line off the fast path (a multi-line event,
   * CR line ends, a comment, another field): its events' data may hold newlines.
   */
  unusual = false;
  /** The last `id` field (the spec's last event ID buffer). */
  lastEventId = "";
  /** The last valid `retry` field, in ms. */
  retryMs: number | undefined;

  constructor(opts: SseParserOptions = {}) {
    this.sniffing = opts.requireSse === true;
    this.contentType = opts.contentType;
    this.errorField = opts.errorField === true;
  }

  /** Part of an event is waiting for the rest of it (the network cut it). */
  get hasPartialEvent(): boolean {
    return this.buffer.length > 0 || this.pending;
  }

  push(piece: Uint8Array | string): SseEvent[] {
    let text = typeof piece === "string" ? piece : this.decoder.write(piece as Buffer);
    if (!this.started) {
      if (text.length === 0) return NO_EVENTS;
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // What was left from earlier reads holds no line end, but for a CR at its very end
    // (maybe half a CRLF): only the new text is searched. A read without any line end
    // completes nothing and is only appended, so a long event costs no copy per read.
    const kept = this.buffer;
    const keptCr = this.keptCr;
    const lf = text.indexOf("\n");
    const cr = text.indexOf("\r");
    this.unusual = false;
    this.keptCr = false;
    if (lf < 0 && cr < 0 && !keptCr) {
      this.buffer = kept === "" ? text : kept + text;
      this.lastText = "";
      if (this.sniffing && this.buffer.length > 0) this.sniffPartialLine();
      return NO_EVENTS;
    }
    const buffer = kept === "" ? text : kept + text;
    const off = kept.length;
    const events: SseEvent[] = [];
    const pos =
      cr < 0 && !keptCr
        ? this.scanLf(buffer, events, off + lf)
        : this.scanAny(buffer, events, false, lf < 0 ? -1 : off + lf, keptCr ? off - 1 : off + cr);
    this.lastText = pos === buffer.length ? buffer : buffer.slice(0, pos);
    this.buffer = pos === 0 ? buffer : buffer.slice(pos);
    if (this.sniffing && this.buffer.length > 0) this.sniffPartialLine();
    return events;
  }

  /** The body ended: the last line and event count even without their line end and blank line (servers may omit them). */
  end(): SseEvent[] {
    let rest = this.buffer + this.decoder.end();
    if (!this.started && rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
    this.started = true;
    this.buffer = "";
    this.unusual = false;
    const events: SseEvent[] = [];
    this.keptCr = false;
    const pos = this.scanAny(rest, events, true, rest.indexOf("\n"), rest.indexOf("\r"));
    if (pos < rest.length) this.line(rest, pos, rest.length, events);
    this.dispatch(events);
    this.lastText = rest;
    return events;
  }

  /** A read with LF line ends only; `nl` is the first one. */
  private scanLf(buffer: string, events: SseEvent[], first: number): number {
    let pos = 0;
    let nl = first;
    for (;;) {
      if (nl >= 0 && nl < pos) nl = buffer.indexOf("\n", pos);
      if (nl < 0) return pos;
      // The fast path: a lone `data:` line and its blank line, nothing pending: one event, its payload as is.
      if (!this.pending && buffer.charCodeAt(nl + 1) === LF && buffer.startsWith("data:", pos)) {
        events.push({ event: undefined, data: buffer.slice(buffer.charCodeAt(pos + 5) === SPACE ? pos + 6 : pos + 5, nl) });
        this.sniffing = false;
        pos = nl + 2;
        continue;
      }
      this.unusual = true;
      this.line(buffer, pos, nl, events);
      pos = nl + 1;
    }
  }

  /** A read with CR somewhere: lines end in CRLF, LF or CR. A CR that ends the read may be half a CRLF, so it waits (unless final). */
  private scanAny(buffer: string, events: SseEvent[], final: boolean, firstLf: number, firstCr: number): number {
    const len = buffer.length;
    let pos = 0;
    let lf = firstLf;
    let cr = firstCr;
    for (;;) {
      if (lf >= 0 && lf < pos) lf = buffer.indexOf("\n", pos);
      if (cr >= 0 && cr < pos) cr = buffer.indexOf("\r", pos);
      const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (end < 0) return pos;
      let next = end + 1;
      if (end === cr) {
        if (next === len && !final) {
          this.keptCr = true;
          return pos;
        }
        if (buffer.charCodeAt(next) === LF) next++;
      }
      this.unusual = true;
      this.line(buffer, pos, end, events);
      pos = next;
    }
  }

  /** One line, buffer[start, end), without its line end. */
  private line(buffer: string, start: number, end: number, events: SseEvent[]): void {
    if (start === end) {
      this.dispatch(events);
      return;
    }
    if (buffer.charCodeAt(start) === 58 /* : */) return; // a comment
    const colon = buffer.indexOf(":", start);
    let field: string;
    let value: string;
    if (colon < 0 || colon >= end) {
      field = buffer.slice(start, end);
      value = "";
    } else {
      field = buffer.slice(start, colon);
      const from = buffer.charCodeAt(colon + 1) === SPACE && colon + 1 < end ? colon + 2 : colon + 1;
      value = buffer.slice(from, end);
    }
    switch (field) {
      case "data":
        this.data = this.hasData ? this.data + "\n" + value : value;
        this.hasData = true;
        this.pending = true;
        break;
      case "event":
        this.eventType = value;
        this.pending = true;
        break;
      case "id":
        if (value.indexOf("\0") < 0) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        if (field === "error" && this.errorField) {
          this.eventType = "error";
          this.data = this.hasData ? this.data + "\n" + value : value;
          this.hasData = true;
          this.pending = true;
          break;
        }
        if (this.sniffing) throw this.notSse(buffer.slice(start));
        return; // unknown fields are ignored
    }
    this.sniffing = false;
  }

  private dispatch(events: SseEvent[]): void {
    if (!this.pending) return;
    if (this.hasData) events.push({ event: this.eventType === "" ? undefined : this.eventType, data: this.data });
    this.pending = false;
    this.hasData = false;
    this.data = "";
    this.eventType = undefined;
  }

  /** Before the first field: the line still being received must be able to become a comment or an SSE field. */
  private sniffPartialLine(): void {
    const rest = this.buffer;
    const colon = rest.indexOf(":");
    if (colon === 0) return;
    const head = colon < 0 ? rest.replace(/\r$/, "") : rest.slice(0, colon);
    const ok = colon < 0 ? FIELDS.some((f) => f.startsWith(head)) : FIELDS.includes(head);
    if (!ok) throw this.notSse(rest);
  }

  private notSse(text: string): UpstreamError {
    const type = this.contentType ? ` (content-type ${this.contentType})` : "";
    return new UpstreamError("malformed", `upstream answered a stream request with something that is not an event stream${type}: ${text.slice(0, 200)}`);
  }
}

const FIELDS = ["data", "event", "id", "retry"];
