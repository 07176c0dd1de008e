// Ollama's NDJSON streams (/api/chat, /api/generate with stream: true) read straight
// off an undici exchange (providers/exchange.ts), the way openAIBatches reads SSE:
// no web streams, no re-encoding of the lines, one batch of OpenAI chunks per
// upstream read.
import { UpstreamError, fromNetworkError } from "../errors.ts";
import type { UpstreamBody } from "../exchange.ts";
import type { ChunkBatch, Json, OpenAIChunk } from "../types.ts";

const NEWLINE = 10;

/**
 * Ollama NDJSON -> batches of OpenAI chunks: each line is parsed and `map`ped as it
 * is read, and the chunks of the lines of one read make one batch (a batch is never
 * empty). The stream fails with an UpstreamError:
 * - `malformed` on a line that is not a JSON object, or one `map` cannot take;
 * - `server_error` on an `{"error": …}` line (Ollama keeps HTTP 200 for errors
 *   after the first byte);
 * - `reset` when the body ends (or drops) before the `done` object;
 * always after the chunks of the lines before the fault. The stream ends at the
 * `done` object; what may follow it in the body goes by unread, which keeps the
 * keep-alive connection reusable. A reader that leaves early, a fault and an abort
 * drop the connection.
 */
export async function* ndjsonBatches(
  body: UpstreamBody,
  map: (obj: Json) => OpenAIChunk[],
  signal: AbortSignal,
  clean: (err: UpstreamError) => UpstreamError = (e) => e,
): AsyncGenerator<ChunkBatch> {
  let rest: Buffer | undefined; // an incomplete line carried over from the last read
  let sawDone = false;
  let bodyEnded = false;
  try {
    while (!sawDone && !bodyEnded) {
      const read = await body.next();
      bodyEnded = read.done === true;
      let buf: Buffer;
      if (bodyEnded) {
        if (rest === undefined) break;
        buf = rest;
        rest = undefined;
      } else {
        buf = rest === undefined ? read.value : Buffer.concat([rest, read.value]);
        rest = undefined;
      }
      const batch: ChunkBatch = [];
      let fault: UpstreamError | undefined;
      let start = 0;
      while (start < buf.length) {
        let end = buf.indexOf(NEWLINE, start);
        if (end < 0) {
          if (!bodyEnded) {
            rest = buf.subarray(start);
            break;
          }
          end = buf.length; // the last line, without its newline
        }
        const line = buf.toString("utf8", start, end);
        start = end + 1;
        try {
          const obj = parseLine(line);
          if (obj === undefined) continue;
          const chunks = mapLine(map, obj);
          for (let i = 0; i < chunks.length; i++) batch.push(chunks[i]!);
          if (obj.done === true) {
            sawDone = true;
            break;
          }
        } catch (err) {
          fault = err as UpstreamError;
          break;
        }
      }
      // What came before a fault in the same read still reaches the client.
      if (batch.length > 0) yield batch;
      if (fault) throw fault;
    }
    if (!sawDone) {
      if (signal.aborted) throw fromNetworkError(signal.reason, signal);
      throw new UpstreamError("reset", "Ollama's stream ended before its final (done) object");
    }
  } catch (err) {
    throw clean(err instanceof UpstreamError ? err : fromNetworkError(err, signal));
  } finally {
    if (bodyEnded) {
      // nothing left to release
    } else if (sawDone) body.dump();
    else body.destroy(); // the reader left early or the stream failed: drop the connection
  }
}

/** One NDJSON line -> its object, or undefined for a blank line; throws on a line that is not an object or is Ollama's error. */
function parseLine(line: string): Json | undefined {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    const text = line.trim();
    if (text === "") return undefined;
    throw new UpstreamError("malformed", `Ollama sent an invalid NDJSON line: ${text.slice(0, 120)}`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new UpstreamError("malformed", `Ollama sent a stream line that is not an object: ${line.trim().slice(0, 120)}`);
  }
  const error = (obj as Json).error;
  if (error !== undefined) {
    throw new UpstreamError("server_error", `Ollama stream error: ${typeof error === "string" ? error : JSON.stringify(error)}`);
  }
  return obj as Json;
}

function mapLine(map: (obj: Json) => OpenAIChunk[], obj: Json): OpenAIChunk[] {
  try {
    return map(obj);
  } catch (err) {
    throw new UpstreamError("malformed", `Ollama sent an unexpected stream object: ${(err as Error).message}`);
  }
}
