// Embeddings: one embedding context per loaded model, requests take turns on it.
import type { Token } from "node-llama-cpp";
import type { ToWorker } from "../protocol.ts";
import type { WorkerContext } from "./context.ts";
import { postError, WorkerError } from "./errors.ts";
import type { Entry, Loaded } from "./models.ts";

export async function embed(w: WorkerContext, msg: Extract<ToWorker, { op: "embed" }>): Promise<void> {
  const { id, model: spec } = msg;
  const { out, models } = w;
  let entry: Entry | null = null;
  let loaded: Loaded | null = null;
  try {
    entry = models.get(spec);
    loaded = await models.acquire(entry);
    const l = loaded;
    const embedContext = Math.min(l.contextSize, l.model.trainContextSize || l.contextSize);
    l.embedding ??= l.model.createEmbeddingContext({ contextSize: embedContext, threads: spec.threads });
    const ectx = await l.embedding.catch((err: unknown) => {
      l.embedding = null;
      throw new WorkerError("unavailable", `model ${spec.file} cannot compute embeddings: ${(err as Error).message}`);
    });
    // One embedding context per model: requests take turns.
    const run = l.embedChain.then(async () => {
      const vectors: Float32Array[] = [];
      let promptTokens = 0;
      for (const [i, input] of msg.inputs.entries()) {
        let tokens: Token[];
        if (typeof input === "string") tokens = l.model.tokenize(input);
        else {
          for (const t of input) if (!Number.isInteger(t) || t < 0 || t >= l.vocabSize) throw new WorkerError("bad_request", `invalid token id ${t} in input[${i}]`);
          tokens = input as Token[];
        }
        if (tokens.length >= embedContext) {
          throw new WorkerError("context_window", `input[${i}] is ${tokens.length} tokens but the maximum context length of ${spec.file} is ${embedContext} tokens`);
        }
        promptTokens += tokens.length;
        const e = await ectx.getEmbeddingFor(tokens);
        vectors.push(Float32Array.from(e.vector));
      }
      return { vectors, promptTokens };
    });
    l.embedChain = run.catch(() => {});
    const { vectors, promptTokens } = await run;
    out.post({ id, type: "embeddings", vectors, promptTokens }, vectors.map((v) => v.buffer as ArrayBuffer));
  } catch (err) {
    postError(out, id, err, false);
  } finally {
    if (entry && loaded) models.release(entry);
  }
}
