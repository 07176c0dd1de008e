// openAIBatches: however the network cuts an OpenAI event stream, usage and
// errors are found, plain chunks pass through unparsed, and the stream ends at [DONE].
import { describe, expect, it } from "vitest";
import type { UpstreamBody } from "../../gateway/providers/exchange.ts";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import { openAIBatches } from "../../gateway/providers/openai-compatible/adapter.ts";
import { RAW_JSON, type ChunkBatch } from "../../gateway/providers/types.ts";

/** An upstream body that hands out the given reads, and remembers how it was let go. */
function bodyOf(reads: string[]): UpstreamBody & { dumped: boolean; destroyed: boolean } {
  const queue = reads.map((r) => Buffer.from(r));
  const body = {
    dumped: false,
    destroyed: false,
    next: async () => (queue.length > 0 ? { value: queue.shift()!, done: false as const } : { value: undefined, done: true as const }),
    dump() {
      body.dumped = true;
    },
    destroy() {
      body.destroyed = true;
    },
  };
  return body as unknown as UpstreamBody & { dumped: boolean; destroyed: boolean };
}

async function collect(body: UpstreamBody): Promise<ChunkBatch[]> {
  const out: ChunkBatch[] = [];
  for await (const b of openAIBatches(body, new AbortController().signal)) out.push(b);
  return out;
}

const token = (t: string) => `data: {"choices":[{"index":0,"delta":{"content":"${t}"}}]}\n\n`;
const usage = `data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n`;

describe("openAIBatches", () => {
  it("one batch per read; plain chunks keep their text; usage is parsed; the stream ends at [DONE]", async () => {
    const body = bodyOf([token("a") + token("b"), token("c") + usage + "data: [DONE]\n\n", "ignored: after the end\n\n"]);
    const batches = await collect(body);
    expect(batches.map((b) => b.length)).toEqual([2, 2]);
    expect(batches[0]![0]![RAW_JSON]).toBe('{"choices":[{"index":0,"delta":{"content":"a"}}]}');
    expect(batches[1]![1]!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(body.dumped).toBe(true); // the rest goes by unread; the connection stays
    expect(body.destroyed).toBe(false);
  });

  it("finds usage and errors even when the network cuts them in half", async () => {
    const cut = usage.indexOf("age");
    const batches = await collect(bodyOf([token("a") + usage.slice(0, cut), usage.slice(cut) + "data: [DONE]\n\n"]));
    expect(batches.flat().at(-1)!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });

    const error = `data: {"error":{"message":"boom","type":"server_error"}}\n\n`;
    const at = error.indexOf("rror");
    const body = bodyOf([token("a") + error.slice(0, at), error.slice(at)]);
    const seen: ChunkBatch[] = [];
    const err = await (async () => {
      for await (const b of openAIBatches(body, new AbortController().signal)) seen.push(b);
    })().catch((e: unknown) => e);
    expect(seen.flat()).toHaveLength(1);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(/boom/);
    expect(body.destroyed).toBe(true);
  });

  it("llama.cpp's `error: {...}` line is a stream error with its message, mid-stream or first", async () => {
    const line = `error: {"code":500,"message":"the slot was released","type":"server_error"}\n\n`;
    const body = bodyOf([token("a"), line]);
    const seen: ChunkBatch[] = [];
    const err = await (async () => {
      for await (const b of openAIBatches(body, new AbortController().signal)) seen.push(b);
    })().catch((e: unknown) => e);
    expect(seen.flat()).toHaveLength(1);
    expect(err).toMatchObject({ errorClass: "server_error", message: "upstream stream error: the slot was released" });
    const first = await collect(bodyOf([line])).catch((e: unknown) => e);
    expect(first).toMatchObject({ errorClass: "server_error" });
    const named = await collect(bodyOf([`event: error\ndata: {"message":"boom"}\n\n`])).catch((e: unknown) => e);
    expect(named).toMatchObject({ errorClass: "server_error", message: "upstream stream error: boom" });
  });

  it("a cut or non-JSON payload is malformed", async () => {
    const err = await collect(bodyOf(["data: {not json\n\n"])).catch((e: unknown) => e);
    expect((err as UpstreamError).errorClass).toBe("malformed");
  });

  it("a body that ends without [DONE] gives every chunk, then fails with reset: the answer was cut short", async () => {
    const body = bodyOf([token("a"), token("b").trimEnd()]);
    const seen: ChunkBatch[] = [];
    const err = await (async () => {
      for await (const b of openAIBatches(body, new AbortController().signal)) seen.push(b);
    })().catch((e: unknown) => e);
    expect(seen.flat()).toHaveLength(2); // the last one without its blank line too
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).errorClass).toBe("reset");
  });

  it("a body that ends without [DONE] after a finish_reason (and its usage chunk) is complete", async () => {
    const finish = `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`;
    expect((await collect(bodyOf([token("a"), finish]))).flat()).toHaveLength(2);
    expect((await collect(bodyOf([token("a") + finish, usage.trimEnd()]))).flat()).toHaveLength(3);
  });
});
