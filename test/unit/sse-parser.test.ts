// The SSE parser against the event-stream specification. Most cases (inputs and
// the events expected from them) follow eventsource-parser's test suite
// (github.com/rexxars/eventsource-parser, test/parse.test.ts and test/fixtures.ts);
// the rest are labgate's own: reads cut anywhere give the same events, the
// fast path's flags, and telling an event stream from something else.
import { describe, expect, it } from "vitest";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import { SseParser, parseSseBatches, type SseEvent } from "../../gateway/providers/sse.ts";
import { seededRandom as seeded } from "../fixtures/random.ts";

/** Feeds the reads in order; with `end`, the end of the body too. */
function parse(reads: (string | Uint8Array)[], opts: { end?: boolean; parser?: SseParser } = {}): SseEvent[] {
  const parser = opts.parser ?? new SseParser();
  const out: SseEvent[] = [];
  for (const r of reads) out.push(...parser.push(r));
  if (opts.end) out.push(...parser.end());
  return out;
}

const ev = (data: string, event?: string): SseEvent => ({ event, data });
const done = "event: done\ndata: ✔\n\n";

describe("SseParser: the specification's cases", () => {
  it("basic unnamed events, then a named one", () => {
    const reads = [0, 1, 2, 3, 4].map((i) => `data: ${i}\n\n`).concat(done);
    expect(parse(reads)).toEqual([ev("0"), ev("1"), ev("2"), ev("3"), ev("4"), ev("✔", "done")]);
  });

  it("multi-line data events, one line per read", () => {
    const reads = ["event: stock\n", "data: YHOO\n", "data: +2\n", "data: 10\n\n", "event: stock\n", "data: GOOG\n", "data: -8\n", "data: 1881\n\n", done];
    expect(parse(reads)).toEqual([ev("YHOO\n+2\n10", "stock"), ev("GOOG\n-8\n1881", "stock"), ev("✔", "done")]);
  });

  it("multi-byte characters cut between reads, and empty lines before the first event", () => {
    const bytes = Buffer.from("\n\n\n\nid: 1\ndata: 我現在都看實況不玩遊戲\n\n" + done);
    const reads: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 5) reads.push(bytes.subarray(i, i + 5)); // cuts inside 3-byte characters
    const parser = new SseParser();
    expect(parse(reads, { parser })).toEqual([ev("我現在都看實況不玩遊戲"), ev("✔", "done")]);
    expect(parser.lastEventId).toBe("1");
  });

  it("one leading BOM is stripped, even cut in half; a BOM later on makes its line an unknown field", () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const reads = [bom.subarray(0, 1), Buffer.concat([bom.subarray(1), Buffer.from("data: bomful 1\n\n")]), "\uFEFFdata: bomful 2\n\n", "data: bomless 3\n\n", done];
    expect(parse(reads)).toEqual([ev("bomful 1"), ev("bomless 3"), ev("✔", "done")]);
    expect(parse(["\uFEFFdata: first\ndata: second\n\n"])).toEqual([ev("first\nsecond")]);
  });

  it("CR, LF and CRLF line ends", () => {
    expect(parse(["data: dog\r", "data: bark\r\r", "data: cat\r", "data: meow\r\r", done])).toEqual([ev("dog\nbark"), ev("cat\nmeow"), ev("✔", "done")]);
    expect(parse(["data: cow\n", "data: moo\n\n", "data: horse\n", "data: neigh\n\n", done])).toEqual([ev("cow\nmoo"), ev("horse\nneigh"), ev("✔", "done")]);
    expect(parse(["data: sheep\r\n", "data: bleat\r\n\r\n", "data: pig\r\n", "data: oink\r\n\r\n", done])).toEqual([
      ev("sheep\nbleat"),
      ev("pig\noink"),
      ev("✔", "done"),
    ]);
  });

  it("comments of every shape, cut anywhere", () => {
    const reads = [
      ": Hello\n\n",
      ":".repeat(300),
      "\n",
      "data: First\n\n",
      ": Первый",
      ": 第二",
      "\n",
      "data: Second\n\n",
      ...Array.from({ length: 10 }, () => ": Moop \n"),
      ": ثالث",
      "\n",
      "data: Third\n\n",
      ":നാലാമത്തെ",
      "\n",
      "data: Fourth\n\n",
      ": 😀 😁 😂 :",
      "\n",
      "data: Fifth\n\n",
      done,
    ];
    expect(parse(reads)).toEqual(["First", "Second", "Third", "Fourth", "Fifth"].map((d) => ev(d)).concat(ev("✔", "done")));
  });

  it("even odder comments: CR ends, NUL, long comments across reads; an event without its blank line waits", () => {
    const long = "x".repeat(2 * 1024 + 1);
    const reads = ["data:1\r\r:\0\n:\r\ndata:2\n\n:", long, "\rdata:3\n\n:data:fail\r:", long, "\ndata:4\n\n", "data:5"];
    const parser = new SseParser();
    expect(parse(reads, { parser })).toEqual([ev("1"), ev("2"), ev("3"), ev("4")]);
    // labgate's one leniency: at the end of the body, the last event counts without its blank line.
    expect(parser.end()).toEqual([ev("5")]);
  });

  it("an empty event field is the default type", () => {
    expect(parse(["event:\ndata: Hello 1\n\n", "event:\n\n", done])).toEqual([ev("Hello 1"), ev("✔", "done")]);
  });

  it("retry: only digits count; id: a value with NUL is ignored", () => {
    const parser = new SseParser();
    expect(parse(["retry:1000\nretry:2000x\ndata:x\n\n"], { parser })).toEqual([ev("x")]);
    expect(parser.retryMs).toBe(1000);
    expect(parse(["id: 123\nid: bad\0id\ndata: hello\n\n"], { parser })).toEqual([ev("hello")]);
    expect(parser.lastEventId).toBe("123");
    expect(parse(["id:2\nretry:\ndata:🧹\n\n"], { parser })).toEqual([ev("🧹")]);
    expect(parser.lastEventId).toBe("2");
    expect(parser.retryMs).toBe(1000);
  });

  it("oddly shaped data fields: `data:` alone, `data` without a colon", () => {
    expect(parse(["data:\n\ndata\ndata\n\ndata:test\n\n", done])).toEqual([ev(""), ev("\n"), ev("test"), ev("✔", "done")]);
  });

  it("unknown fields and lines without a colon are ignored; a leading space is not a field name", () => {
    expect(parse(["data:abc\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:123\n\n", done])).toEqual([ev("abc\n\n123"), ev("✔", "done")]);
  });

  it("only the one space after the colon is removed", () => {
    expect(parse(["data:  two spaces\n\ndata:none\n\n"])).toEqual([ev(" two spaces"), ev("none")]);
  });

  it("a CR at the end of a read may be half a CRLF: one event, not two", () => {
    expect(parse(["data: A\r\n", "data: B\r", "\n", "data: C\r\n", "\n"])).toEqual([ev("A\nB\nC")]);
    expect(parse(["data: one\r", "\r", "\n"])).toEqual([ev("one")]);
  });

  it("a comment or a bare field ended by a CR at a read's end", () => {
    expect(parse(["data: one\n:ignored\r", "\ndata: two\n\n"])).toEqual([ev("one\ntwo")]);
    expect(parse(["data: one\n:ignored\r", "data: two\n\n"])).toEqual([ev("one\ntwo")]);
    expect(parse(["data: one\n:", "ignored\r", "\ndata: two\n\n"])).toEqual([ev("one\ntwo")]);
    expect(parse(["data: one\ndata\r", "\ndata: two\n\n"])).toEqual([ev("one\n\ntwo")]);
    expect(parse(["garbage\r", "data: ok\n\n"])).toEqual([ev("ok")]);
    expect(parse(["da", "ta\n\n"])).toEqual([ev("")]);
  });

  it("a block with only an id dispatches nothing", () => {
    const parser = new SseParser();
    expect(parse(["id: 42\n\n", "id: 43\r\r"], { parser })).toEqual([]);
    expect(parser.lastEventId).toBe("43");
  });

  it("a 1 MB event in 64 KB reads", () => {
    const big = "y".repeat(1024 * 1024);
    const text = `: hello\n\ndata: ${big}\n\ndata: after\n\n`;
    const reads: string[] = [];
    for (let i = 0; i < text.length; i += 65536) reads.push(text.slice(i, i + 65536));
    const events = parse(reads);
    expect(events).toHaveLength(2);
    expect(events[0]!.data.length).toBe(big.length);
    expect(events[1]).toEqual(ev("after"));
  });
});

describe("SseParser: reads cut anywhere give the same events", () => {
  const stream =
    "\uFEFF: comment\n\n" +
    'data: {"choices":[{"delta":{"content":"a"}}]}\n\n' +
    "event: message_start\ndata: {\"type\":\"message_start\"}\n\n" +
    'data: {"a":\ndata: 1}\n\n' +
    "data: crlf\r\n\r\n" +
    "data: cr\r\r" +
    "id: 7\nretry: 10\ndata: x\n\n" +
    "data: 我現在都看實況\n\n" +
    "data: [DONE]\n\n";
  const expected = [
    ev('{"choices":[{"delta":{"content":"a"}}]}'),
    ev('{"type":"message_start"}', "message_start"),
    ev('{"a":\n1}'),
    ev("crlf"),
    ev("cr"),
    ev("x"),
    ev("我現在都看實況"),
    ev("[DONE]"),
  ];
  const bytes = Buffer.from(stream);

  it("in one read, one byte at a time, and in 200 random cuttings", () => {
    expect(parse([bytes], { end: true })).toEqual(expected);
    expect(parse([...bytes].map((b) => Uint8Array.of(b)), { end: true })).toEqual(expected);
    const random = seeded(7);
    for (let run = 0; run < 200; run++) {
      const reads: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + Math.floor(random() * 40);
        reads.push(bytes.subarray(i, i + n));
        i += n;
      }
      expect(parse(reads, { end: true }), `run ${run}`).toEqual(expected);
    }
  });
});

describe("SseParser: llama.cpp's error field", () => {
  it("with errorField, an `error:` line is an event of type error; without, an unknown field", () => {
    const line = 'error: {"code":500,"message":"boom"}\n\n';
    expect(parse([line], { parser: new SseParser({ errorField: true }) })).toEqual([ev('{"code":500,"message":"boom"}', "error")]);
    expect(parse([line])).toEqual([]);
    expect(() => new SseParser({ requireSse: true, errorField: true }).push(line)).not.toThrow();
  });
});

describe("SseParser: the fast path", () => {
  it("single-line data events separated by LF LF keep their payload as is and leave `unusual` off", () => {
    const parser = new SseParser();
    const read = 'data: {"x":1}\n\ndata:{"y":2}\n\n';
    expect(parser.push(read)).toEqual([ev('{"x":1}'), ev('{"y":2}')]);
    expect(parser.unusual).toBe(false);
    expect(parser.lastText).toBe(read);
    expect(parser.hasPartialEvent).toBe(false);
    // A read cut inside an event: the part waits, and says so.
    expect(parser.push('data: {"z"')).toEqual([]);
    expect(parser.hasPartialEvent).toBe(true);
    expect(parser.push(":3}\n\n")).toEqual([ev('{"z":3}')]);
    expect(parser.unusual).toBe(false);
  });

  it("anything else in a read turns `unusual` on for that read", () => {
    for (const read of [": keep-alive\n\n", "event: x\ndata: y\n\n", "data: a\ndata: b\n\n", "data: a\r\n\r\n", "id: 1\ndata: a\n\n"]) {
      const parser = new SseParser();
      parser.push(read);
      expect(parser.unusual, JSON.stringify(read)).toBe(true);
    }
  });
});

describe("SseParser: requireSse tells an event stream from something else at its first line", () => {
  const notSse = (reads: string[]): unknown => {
    const parser = new SseParser({ requireSse: true, contentType: "text/html" });
    try {
      for (const r of reads) parser.push(r);
      parser.end();
    } catch (err) {
      return err;
    }
    return undefined;
  };

  it("an HTML page, half a JSON body, a JSON error line, plain text: malformed, at the first read that shows it", () => {
    for (const reads of [["<!DOCTYPE html>"], ['{"id":'], ['{"error":"Internal Server Error"}\n'], ["Well, this is not what I expected\n"], ["dat", "um: 1\n"]]) {
      const err = notSse(reads);
      expect(err, JSON.stringify(reads)).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).errorClass).toBe("malformed");
    }
    expect((notSse(["<html>"]) as Error).message).toMatch(/content-type text\/html/);
  });

  it("event streams pass, whatever comes before their first field", () => {
    for (const reads of [["data: x\n\n"], ["\uFEFFdata: x\n\n"], [": ping\n\n", "data: x\n\n"], ["\n\nevent: message_start\ndata: {}\n\n"], ["da", "ta: x\n\n"], ["id: 1\n", "garbage-after-the-first-field\n"]]) {
      expect(notSse(reads), JSON.stringify(reads)).toBeUndefined();
    }
  });

  it("parseSseBatches throws it before yielding anything", async () => {
    async function* body() {
      yield Buffer.from("<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>");
    }
    const seen: unknown[] = [];
    const err = await (async () => {
      for await (const b of parseSseBatches(body(), { requireSse: true })) seen.push(b);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([]);
    expect((err as UpstreamError).errorClass).toBe("malformed");
  });
});
