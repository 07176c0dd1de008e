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
    let boundary: number;
    while ((boundary = findBoundary(buffer)) >= 0) {
      const raw = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary).replace(/^(\r?\n){2}|^\r\r/, "");
      const ev = parseEvent(raw);
      if (ev) yield ev;
    }
  }
  buffer += decoder.decode();
  const ev = parseEvent(buffer);
  if (ev) yield ev;
}

function findBoundary(s: string): number {
  const a = s.indexOf("\n\n");
  const b = s.indexOf("\r\n\r\n");
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

function parseEvent(raw: string): SseEvent | undefined {
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
