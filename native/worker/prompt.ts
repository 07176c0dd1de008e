// Prompts as tokens for a loaded model: raw tokens, text, or chat messages through the
// model's chat template; and OpenAI's logit_bias / ignore_eos as a token bias.
import { TokenBias, type ChatHistoryItem, type LlamaText, type Token } from "node-llama-cpp";
import type { Prompt, SamplingParams } from "../protocol.ts";
import { WorkerError } from "./errors.ts";
import type { Loaded } from "./models.ts";

export function renderPrompt(loaded: Loaded, prompt: Prompt): { tokens: Token[]; stops: (LlamaText | string)[] } {
  const { model } = loaded;
  let tokens: Token[];
  let stops: (LlamaText | string)[] = [];
  if (prompt.kind === "tokens") {
    for (const t of prompt.tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= loaded.vocabSize) throw new WorkerError("bad_request", `invalid token id ${t} in prompt (vocabulary has ${loaded.vocabSize} tokens)`);
    }
    tokens = prompt.tokens.slice() as Token[];
  } else if (prompt.kind === "text") {
    // Special tokens written in the prompt count as such (as llama-server does).
    tokens = model.tokenize(prompt.text, true, loaded.bos != null ? "trimLeadingSpace" : undefined);
  } else {
    const history: ChatHistoryItem[] = [];
    for (const m of prompt.messages) {
      if (m.role === "system") history.push({ type: "system", text: m.content });
      else if (m.role === "user") history.push({ type: "user", text: m.content });
      else history.push({ type: "model", response: [m.content] });
    }
    // The model answers after the last message; an assistant message last is continued.
    if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
    const state = loaded.wrapper.generateContextState({ chatHistory: history });
    tokens = state.contextText.tokenize(model.tokenizer);
    stops = state.stopGenerationTriggers;
  }
  // LlamaCompletion prepends the beginning token itself.
  if (loaded.bos != null && tokens[0] === loaded.bos) tokens = tokens.slice(1);
  return { tokens, stops };
}

export function tokenBias(loaded: Loaded, params: SamplingParams): TokenBias | undefined {
  const entries = Object.entries(params.logitBias ?? {});
  if (entries.length === 0 && !params.ignoreEos) return undefined;
  const bias = new TokenBias(loaded.model.tokenizer);
  for (const [k, v] of entries) {
    const token = Number(k);
    if (!Number.isInteger(token) || token < 0 || token >= loaded.vocabSize) throw new WorkerError("bad_request", `logit_bias: invalid token id ${k}`);
    if (typeof v !== "number" || !Number.isFinite(v)) throw new WorkerError("bad_request", `logit_bias: invalid bias for token ${k}`);
    bias.set(token as Token, v <= -100 ? "never" : { logit: v });
  }
  if (params.ignoreEos) {
    for (const t of [loaded.model.tokens.eos, loaded.model.tokens.eot]) if (t != null) bias.set(t, "never");
  }
  return bias;
}
