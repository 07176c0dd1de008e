// The NDJSON reader the Ollama adapter's streams go through (gateway/providers/ollama/ndjson.ts),
// on a scripted body: how upstream reads are cut must not change what comes out.
import { describe, expect, it } from "vitest";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import type { UpstreamBody } from "../../gateway/providers/exchange.ts";
import { ndjsonBatches } from "../../gateway/providers/ollama/ndjson.ts";
import type { ChunkBatch, Json, OpenAIChunk } from "../../gateway/providers/types.ts";

interface ScriptedBody {
  body: UpstreamBody;
  /** Reads the reader asked for. */
  reads: () => number;
  released: () => "dumped" | "destroyed" | undefined;
}

/** A body that hands out these pieces, one per read, then ends (or fails with `fail`). */
function scripted(pieces: (string | Buffer)[], fail?: Error): ScriptedBody {
  let i = 0;
  let released: "dumped" | "destroyed" | undefined;
  const body = {
    next: async (): Promise<IteratorResult<Buffer>> => {
      if (i < pieces.length) {
        const p = pieces[i++]!;
        return { done: false, value: typeof p === "string" ? Buffer.from(p) : p };
      }
      i++;
      if (fail) throw fail;
      return { done: true, value: undefined };
    },
    dump: () => void (released ??= "dumped"),
    destroy: () => void (released ??= "destroyed"),
  } as unknown as UpstreamBody;
  return { body, reads: () => i, released: () => released };
}

/** Each line's content (or "done") as one chunk, so what was read can be seen. */
const echo = (obj: Json): OpenAIChunk[] => [{ line: obj.done === true ? "done" : (obj.message as { content: string }).content }];

const line = (content: string) => JSON.stringify({ model: "m", message: { role: "assistant", content }, done: false }) + "\n";
const DONE = JSON.stringify({ model: "m", message: { role: "assistant", content: "" }, done: true, eval_count: 3 }) + "\n";

async function readAll(b: ScriptedBody, signal = new AbortController().signal): Promise<{ batches: unknown[][]; error?: UpstreamError }> {
  const batches: unknown[][] = [];
  try {
    for await (const batch of ndjsonBatches(b.body, echo, signal)) batches.push(batch.map((c: ChunkBatch[number]) => c.line));
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return { batches, error: err as UpstreamError };
  }
  return { batches };
}

describe("ollama NDJSON reader", () => {
  it("gives the lines of one read as one batch, and ends at the done object", async () => {
    const b = scripted([line("a") + line("b"), line("c"), DONE]);
    expect(await readAll(b)).toEqual({ batches: [["a", "b"], ["c"], ["done"]] });
    expect(b.released()).toBe("dumped"); // the rest of the body (its end) goes by unread: the connection stays
  });

  it("is not fooled by reads cut anywhere, inside a line or a multi-byte character", async () => {
    const text = line("héllo wörld ✓ 🦙") + line("b") + DONE;
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const { batches, error } = await readAll(scripted([bytes.subarray(0, cut), bytes.subarray(cut)]));
      expect(error).toBeUndefined();
      expect(batches.flat()).toEqual(["héllo wörld ✓ 🦙", "b", "done"]);
    }
    const bytewise = await readAll(scripted([...bytes].map((x) => Buffer.from([x]))));
    expect(bytewise.batches.flat()).toEqual(["héllo wörld ✓ 🦙", "b", "done"]);
  });

  it("takes CRLF line ends, blank lines, and a last line without its newline", async () => {
    const b = scripted([line("a").replace("\n", "\r\n") + "\n  \n", DONE.trimEnd()]);
    expect(await readAll(b)).toEqual({ batches: [["a"], ["done"]] });
    expect(b.released()).toBeUndefined(); // the body had ended: nothing to release
  });

  it("reads nothing after the done object", async () => {
    const b = scripted([line("a") + DONE + line("after"), line("later")]);
    expect((await readAll(b)).batches).toEqual([["a", "done"]]);
    expect(b.reads()).toBe(1);
  });

  it('fails with server_error on an {"error": …} line, after the chunks before it in the same read', async () => {
    const b = scripted([line("a") + line("b") + JSON.stringify({ error: "an error was encountered while running the model" }) + "\n" + line("c")]);
    const { batches, error } = await readAll(b);
    expect(batches).toEqual([["a", "b"]]);
    expect(error?.errorClass).toBe("server_error");
    expect(error?.message).toContain("an error was encountered while running the model");
    expect(b.released()).toBe("destroyed");
  });

  it("fails with malformed on a line that is not JSON or not an object, or that the mapping cannot take", async () => {
    for (const bad of ["{not json\n", "[1,2]\n", "42\n"]) {
      const { batches, error } = await readAll(scripted([line("a"), bad, DONE]));
      expect(batches).toEqual([["a"]]);
      expect(error?.errorClass).toBe("malformed");
    }
    const throwing = scripted([line("a")]);
    const it = ndjsonBatches(throwing.body, () => {
      throw new TypeError("no");
    }, new AbortController().signal);
    await expect(it.next()).rejects.toMatchObject({ errorClass: "malformed" });
  });

  it("fails with reset when the body ends before the done object, cut mid-line as malformed", async () => {
    expect((await readAll(scripted([line("a"), line("b")])))).toMatchObject({ batches: [["a"], ["b"]], error: { errorClass: "reset" } });
    expect((await readAll(scripted([]))).error?.errorClass).toBe("reset");
    expect((await readAll(scripted([line("a"), line("b").slice(0, 10)]))).error?.errorClass).toBe("malformed");
    const dropped = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
    expect((await readAll(scripted([line("a")], dropped))).error?.errorClass).toBe("reset");
  });

  it("a reader that stops early drops the connection; an abort's reason is what it throws", async () => {
    const b = scripted([line("a"), line("b"), DONE]);
    for await (const _ of ndjsonBatches(b.body, echo, new AbortController().signal)) break;
    expect(b.released()).toBe("destroyed");

    const ac = new AbortController();
    const reason = new UpstreamError("timeout", "attempt timed out");
    ac.abort(reason);
    const aborted = scripted([line("a")], reason);
    expect((await readAll(aborted, ac.signal)).error).toBe(reason);
  });
});
