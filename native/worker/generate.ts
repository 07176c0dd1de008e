// One generation: the model loaded (or loading), the prompt rendered and checked
// against the context, a sequence taken, then text streamed (or gathered) until the
// end of generation, max tokens, a stop string or an abort.
import { LlamaCompletion, type LlamaContextSequence } from "node-llama-cpp";
import type { FinishReason, ToWorker } from "../protocol.ts";
import { StopMatcher } from "../stop.ts";
import type { WorkerContext } from "./context.ts";
import { cancelledError, postError, WorkerError } from "./errors.ts";
import { releaseSequence, takeSequence, type Entry, type Loaded } from "./models.ts";
import { renderPrompt, tokenBias } from "./prompt.ts";
import { TextRelay } from "./relay.ts";

export async function generate(w: WorkerContext, msg: Extract<ToWorker, { op: "generate" }>): Promise<void> {
  const { id, params } = msg;
  const { out, models } = w;
  const ac = new AbortController();
  w.aborts.set(id, ac);
  let entry: Entry | null = null;
  let loaded: Loaded | null = null;
  let seq: LlamaContextSequence | null = null;
  let completion: LlamaCompletion | null = null;
  let relay: TextRelay | null = null;
  try {
    entry = models.get(msg.model);
    loaded = await models.acquire(entry);
    if (ac.signal.aborted) throw cancelledError();
    const { tokens, stops } = renderPrompt(loaded, msg.prompt);
    const promptTokens = tokens.length + (loaded.bos != null ? 1 : 0);
    const room = loaded.contextSize - promptTokens;
    if (room < 1) {
      throw new WorkerError(
        "context_window",
        `prompt is ${promptTokens} tokens but the maximum context length of ${msg.model.file} is ${loaded.contextSize} tokens`,
      );
    }
    const bias = tokenBias(loaded, params);
    seq = await takeSequence(loaded, tokens);
    if (ac.signal.aborted) throw cancelledError();
    out.post({ id, type: "started", promptTokens, contextSize: loaded.contextSize });

    const maxTokens = params.maxTokens === undefined ? room : Math.min(params.maxTokens, room);
    if (maxTokens <= 0) {
      out.post({ id, type: "done", finishReason: "length", promptTokens, completionTokens: 0, text: params.stream ? undefined : "" });
      return;
    }
    let generated = 0;
    let text = "";
    relay = params.stream ? new TextRelay((t) => out.post({ id, type: "text", text: t })) : null;
    const r = relay;
    const emit = r
      ? (chunk: string) => r.push(chunk)
      : (chunk: string) => {
          text += chunk;
        };
    // Stop strings are matched on text, so the answer ends exactly before them; hitting
    // one stops generation through the same signal a client abort uses.
    const stopper = new StopMatcher(params.stop);
    const halt = new AbortController();
    const signal = AbortSignal.any([ac.signal, halt.signal]);
    completion = new LlamaCompletion({ contextSequence: seq });
    const penalties = params.frequencyPenalty || params.presencePenalty || (params.repeatPenalty !== undefined && params.repeatPenalty !== 1);
    const res = await completion.generateCompletionWithMeta(tokens, {
      maxTokens,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      minP: params.minP,
      seed: params.seed,
      tokenBias: bias,
      repeatPenalty: penalties
        ? {
            penalty: params.repeatPenalty ?? 1,
            frequencyPenalty: params.frequencyPenalty || undefined,
            presencePenalty: params.presencePenalty || undefined,
          }
        : false,
      customStopTriggers: stops.length > 0 ? stops : undefined,
      disableContextShift: true,
      contextShiftSize: 1,
      signal,
      stopOnAbortSignal: true,
      onToken: (t) => {
        if (!stopper.stopped) generated += t.length;
      },
      onTextChunk: (chunk) => {
        if (stopper.stopped) return;
        const r = stopper.push(chunk);
        emit(r.emit);
        if (r.stopped) halt.abort();
      },
    });
    emit(stopper.flush());
    relay?.flush();
    const stop = res.metadata.stopReason;
    const finishReason: FinishReason = stopper.stopped ? "stop" : stop === "maxTokens" ? "length" : stop === "abort" ? "abort" : "stop";
    out.post({ id, type: "done", finishReason, promptTokens, completionTokens: generated, text: params.stream ? undefined : text });
  } catch (err) {
    postError(out, id, err, ac.signal.aborted);
  } finally {
    relay?.close();
    completion?.dispose({ disposeSequence: false });
    if (seq && loaded) releaseSequence(loaded, seq);
    if (entry && loaded) models.release(entry);
    w.aborts.delete(id);
  }
}
