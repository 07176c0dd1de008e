// Anthropic's event stream (https://docs.anthropic.com/en/api/messages-streaming)
// -> OpenAI chunks (`chat.completion.chunk` or `text_completion`).
import { UpstreamError, fromNetworkError } from "../errors.ts";
import { isRecord } from "../mapping-helpers.ts";
import { deltaChoice, streamChunk, textChoice, usageChunk, type ChunkObject, type EnvelopeMeta } from "../openai-envelopes.ts";
import type { Redactor } from "../redact.ts";
import { parseSseBatches, type SseEvent } from "../sse.ts";
import type { ChunkBatch, Json, OpenAIChunk, Usage } from "../types.ts";
import { anthropicError } from "./errors.ts";
import { finishReason, nowSeconds, readAnthropicUsage } from "./response.ts";

export interface StreamTranslator {
  /** Translates one Anthropic event; returns the OpenAI chunks to send now. Throws UpstreamError on an `error` event. */
  push(type: string, data: Json): OpenAIChunk[];
  /** Whether message_stop arrived (nothing more will come). */
  readonly stopped: boolean;
  /** Call when the upstream body ended: the closing chunks, or throws when the answer is incomplete. */
  end(): OpenAIChunk[];
}

/**
 * Anthropic events -> OpenAI chunks, one event at a time.
 * Always ends with a usage chunk (`choices: []`), whether the client asked for it or not.
 */
export function createStreamTranslator(kind: "chat" | "text"): StreamTranslator {
  const object: ChunkObject = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  // id and model come with message_start.
  const meta: EnvelopeMeta = { id: "", created: nowSeconds(), model: "" };
  let started = false;
  let stopped = false;
  let finish: string | undefined;
  let usageSent = false;
  let usageIn: Json = {};
  let outputTokens = 0;
  const toolIndexByBlock = new Map<number, number>();

  const chunk = (choice: Json): OpenAIChunk => streamChunk(object, meta, [choice]);
  const usageOut = (): OpenAIChunk => {
    usageSent = true;
    return usageChunk(object, meta, readAnthropicUsage({ ...usageIn, output_tokens: outputTokens }) as Usage);
  };
  const mergeUsage = (u: unknown) => {
    if (!isRecord(u)) return;
    for (const k of ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]) {
      if (typeof u[k] === "number") usageIn[k] = u[k];
    }
    if (typeof u.output_tokens === "number") outputTokens = u.output_tokens; // cumulative per the docs
  };

  return {
    get stopped() {
      return stopped;
    },
    push(type, data) {
      switch (type) {
        case "message_start": {
          const m = isRecord(data.message) ? data.message : {};
          meta.id = String(m.id ?? meta.id);
          meta.model = String(m.model ?? meta.model);
          usageIn = {};
          mergeUsage(m.usage);
          started = true;
          return kind === "chat" ? [chunk(deltaChoice({ role: "assistant", content: "" }))] : [];
        }
        case "content_block_start": {
          const b = isRecord(data.content_block) ? data.content_block : {};
          const index = typeof data.index === "number" ? data.index : -1;
          if (b.type === "tool_use" && kind === "chat") {
            const toolIndex = toolIndexByBlock.size;
            toolIndexByBlock.set(index, toolIndex);
            return [
              chunk(
                deltaChoice({
                  tool_calls: [{ index: toolIndex, id: String(b.id ?? ""), type: "function", function: { name: String(b.name ?? ""), arguments: "" } }],
                }),
              ),
            ];
          }
          if (b.type === "text" && typeof b.text === "string" && b.text !== "") {
            return [chunk(kind === "chat" ? deltaChoice({ content: b.text }) : textChoice(b.text))];
          }
          return [];
        }
        case "content_block_delta": {
          const d = isRecord(data.delta) ? data.delta : {};
          if (d.type === "text_delta" && typeof d.text === "string" && d.text !== "") {
            return [chunk(kind === "chat" ? deltaChoice({ content: d.text }) : textChoice(d.text))];
          }
          if (d.type === "input_json_delta" && typeof d.partial_json === "string" && d.partial_json !== "") {
            const toolIndex = toolIndexByBlock.get(typeof data.index === "number" ? data.index : -1);
            if (toolIndex === undefined) return [];
            return [chunk(deltaChoice({ tool_calls: [{ index: toolIndex, function: { arguments: d.partial_json } }] }))];
          }
          return []; // thinking_delta, signature_delta, citations_delta: nothing OpenAI-shaped to say
        }
        case "message_delta": {
          mergeUsage(data.usage);
          const d = isRecord(data.delta) ? data.delta : {};
          if (d.stop_reason != null && finish === undefined) {
            finish = finishReason(d.stop_reason);
            return [chunk(kind === "chat" ? deltaChoice({}, finish) : textChoice("", finish))];
          }
          return [];
        }
        case "message_stop":
          stopped = true;
          return usageSent ? [] : [usageOut()];
        case "error":
          throw anthropicError(data.error);
        default: // ping, content_block_stop, and event types added later
          return [];
      }
    },
    end() {
      if (!started) throw new UpstreamError("malformed", "upstream sent no Anthropic event stream (no message_start)");
      // message_stop is the end marker: without it the answer may be cut short, whatever came before.
      if (!stopped) throw new UpstreamError("reset", "upstream stream ended before the answer was complete (no message_stop)");
      return usageSent ? [] : [usageOut()];
    },
  };
}

/**
 * Anthropic event stream -> OpenAI chunks, one batch per upstream read.
 * An `error` event, a dropped connection or a stream that ends before its
 * `message_stop` is thrown as an UpstreamError, and a body that is not an event
 * stream as `malformed` before the first batch; the upstream body is released on
 * every way out (including the consumer stopping early).
 */
export async function* anthropicBatches(
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void },
  kind: "chat" | "text",
  signal: AbortSignal,
  opts: { contentType?: string; redactor?: Redactor; provider?: string } = {},
): AsyncGenerator<ChunkBatch> {
  const translator = createStreamTranslator(kind);
  let complete = false;
  try {
    for await (const events of parseSseBatches(body, { requireSse: true, contentType: opts.contentType })) {
      const batch: ChunkBatch = [];
      let fault: unknown;
      for (const ev of events) {
        // After message_stop, read on to the body's end rather than breaking out:
        // leaving early aborts the exchange, and the keep-alive connection is lost.
        if (translator.stopped || ev.data === "") continue;
        try {
          batch.push(...translateEvent(translator, ev));
        } catch (err) {
          fault = err;
          break;
        }
      }
      // What came before a fault in the same read still reaches the client.
      if (batch.length > 0) yield batch;
      if (fault !== undefined) throw fault;
    }
    if (signal.aborted) throw fromNetworkError(signal.reason, signal);
    const last = translator.end();
    if (last.length > 0) yield last;
    complete = true;
  } catch (err) {
    const e = err instanceof UpstreamError ? err : fromNetworkError(err, signal);
    throw opts.redactor ? opts.redactor.error(e, opts.provider) : e;
  } finally {
    if (!complete) body.destroy?.();
  }
}

function translateEvent(translator: StreamTranslator, ev: SseEvent): OpenAIChunk[] {
  let data: Json;
  try {
    data = JSON.parse(ev.data) as Json;
  } catch {
    throw new UpstreamError("malformed", `upstream sent invalid JSON in stream: ${ev.data.slice(0, 120)}`);
  }
  const type = ev.event ?? (typeof data.type === "string" ? data.type : "");
  return translator.push(type, data);
}
