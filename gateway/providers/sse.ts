// Server-sent events, read incrementally from an upstream body.

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/** Parses an SSE byte stream into events as they arrive (no buffering of the whole body). */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const piece of body) {
    buffer += typeof piece === "string" ? piece : decoder.decode(piece, { stream: true });
    // Scan by index and cut the buffer once per network read, not once per event.
    let pos = 0;
    for (;;) {
      const end = findBoundary(buffer, pos);
      if (end < 0) break;
      const ev = parseEvent(buffer.slice(pos, end));
      pos = end + boundaryLength(buffer, end);
      if (ev) yield ev;
    }
    if (pos > 0) buffer = buffer.slice(pos);
  }
  buffer += decoder.decode();
  const ev = parseEvent(buffer);
  if (ev) yield ev;
}

/** Index of the next blank line (event boundary) at or after `from`, or -1. */
function findBoundary(s: string, from: number): number {
  const a = s.indexOf("\n\n", from);
  const b = s.indexOf("\r\n\r\n", from);
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

function boundaryLength(s: string, at: number): number {
  return s.startsWith("\r\n\r\n", at) ? 4 : 2;
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
