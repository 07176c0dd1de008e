// renderer/src/sse.ts: the one event-stream parser of the dashboard (live events and
// process logs). Network chunks split lines, CRLF pairs and UTF-8 characters anywhere:
// every split must give the same events as the whole text.
import { describe, expect, it } from "vitest";
import { createSseParser, readEventStream, reconnectDelayMs, RECONNECT_MAX_MS, type SseEvent } from "../../renderer/src/sse.ts";
import { seededRandom } from "../fixtures/random.ts";

function parseChunks(chunks: string[]): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = createSseParser((e) => events.push(e));
  for (const c of chunks) parser.push(c);
  return events;
}

/** Every way to cut text in two, and in three at a few places. */
function splits(text: string): string[][] {
  const out: string[][] = [[text]];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  for (let i = 1; i < text.length; i += 3) for (let j = i + 1; j < text.length; j += 5) out.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
  return out;
}

const STREAM = [
  ": heartbeat",
  "id: 7",
  "event: summary",
  'data: {"requests_per_s":1}',
  "",
  "data: first line",
  "data: second line",
  "data",
  "",
  "id: 8",
  "event: log",
  "data:no space",
  "",
  ": only a comment, then a blank line: no event",
  "",
  "retry: 3000",
  "unknown: field",
  "data:  two spaces keep one",
  "",
];

const EXPECTED: SseEvent[] = [
  { type: "summary", data: '{"requests_per_s":1}', id: "7" },
  { type: "message", data: "first line\nsecond line\n", id: "7" },
  { type: "log", data: "no space", id: "8" },
  { type: "message", data: " two spaces keep one", id: "8" },
];

describe("event stream parser", () => {
  for (const [name, eol] of [
    ["\\n", "\n"],
    ["\\r\\n", "\r\n"],
    ["\\r", "\r"],
  ] as const) {
    it(`gives the same events for every split of a stream with ${name} line ends`, () => {
      const text = STREAM.join(eol) + eol;
      for (const chunks of splits(text)) expect(parseChunks(chunks), JSON.stringify(chunks)).toEqual(EXPECTED);
    });
  }

  it("takes mixed line ends, a byte order mark, and a CR at the end of one chunk with its LF first in the next", () => {
    expect(parseChunks(["\uFEFFdata: a\r", "\ndata: b\r", "\r", "data: c\n\r\n"])).toEqual([
      { type: "message", data: "a\nb", id: undefined },
      { type: "message", data: "c", id: undefined },
    ]);
    // A CR then a CR: two line ends (the second ends the event), not one.
    expect(parseChunks(["data: x\r", "\rdata: y\r\r"])).toEqual([
      { type: "message", data: "x", id: undefined },
      { type: "message", data: "y", id: undefined },
    ]);
  });

  it("holds an unfinished event until its blank line, and an id with NUL is ignored", () => {
    const events: SseEvent[] = [];
    const parser = createSseParser((e) => events.push(e));
    parser.push("id: 1\ndata: wait");
    expect(events).toEqual([]);
    parser.push("ing\n");
    expect(events).toEqual([]);
    parser.push("\nid: 2\0x\ndata: next\n\n");
    expect(events).toEqual([
      { type: "message", data: "waiting", id: "1" },
      { type: "message", data: "next", id: "1" },
    ]);
  });

  it("reads a fetch body whose chunks split a UTF-8 character and a CRLF", async () => {
    const bytes = new TextEncoder().encode('event: log\r\ndata: {"line":"café ☕"}\r\n\r\ndata: tail\r\n\r\n');
    const cuts = [3, 30, 31, 32, 33, bytes.length - 3, bytes.length - 1];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        let from = 0;
        for (const to of [...cuts, bytes.length]) {
          c.enqueue(bytes.slice(from, to));
          from = to;
        }
        c.close();
      },
    });
    const events: SseEvent[] = [];
    await readEventStream(body, (e) => events.push(e));
    expect(events).toEqual([
      { type: "log", data: '{"line":"café ☕"}', id: undefined },
      { type: "message", data: "tail", id: undefined },
    ]);
  });
});

describe("reconnect delay", () => {
  it("starts near 1 s, doubles up to 15 s, and is spread by jitter", () => {
    const low = () => 0;
    const high = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5, 20].map((n) => reconnectDelayMs(n, high))).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    expect([0, 1, 2, 3, 4].map((n) => reconnectDelayMs(n, low))).toEqual([500, 1000, 2000, 4000, 7500]);
    const random = seededRandom(13);
    const delays = Array.from({ length: 200 }, () => reconnectDelayMs(6, random));
    expect(Math.max(...delays)).toBeLessThanOrEqual(RECONNECT_MAX_MS);
    expect(new Set(delays).size).toBeGreaterThan(100);
    // The first three tries after a drop are within 7 s together: a restarted gateway is seen quickly.
    expect(reconnectDelayMs(0, high) + reconnectDelayMs(1, high) + reconnectDelayMs(2, high)).toBeLessThanOrEqual(7000);
  });
});
