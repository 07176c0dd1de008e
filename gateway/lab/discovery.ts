// Model discovery: models that local servers (Ollama tags, llama.cpp / vLLM
// /v1/models) and the embedded engine (GGUF files) serve by themselves become
// routable models, appearing and disappearing as they come and go.
import type { Logger } from "pino";
import type { Router } from "../router/router.ts";

const DISCOVERABLE = new Set(["ollama", "llamacpp", "vllm", "embedded"]);
const MIN_FAILURES_BEFORE_DROP = 3;

export interface Discovery {
  /** The first round (bounded in time, so a dead server never delays the start). */
  ready: Promise<void>;
  refresh(): Promise<void>;
  stop(): void;
}

export function startDiscovery(
  router: Router,
  log: Logger,
  opts: { intervalMs?: number | undefined; firstRoundMs?: number; graceMs?: number } = {},
): Discovery {
  const intervalMs = opts.intervalMs ?? 2000;
  // A server found on the machine that stops answering keeps its models for lab.discovery.grace_s
  // (at least 3 rounds); a configured provider's go after 3 failed rounds.
  const graceRounds = Math.max(MIN_FAILURES_BEFORE_DROP, Math.ceil((opts.graceMs ?? 0) / intervalMs));
  const dropAfter = (name: string): number => (router.registry.sourceOf(name) === "discovery" ? graceRounds : MIN_FAILURES_BEFORE_DROP);
  let running: Promise<void> | undefined;
  const lastError = new Map<string, string>();
  const failuresInARow = new Map<string, number>();

  const refreshOne = async (name: string): Promise<void> => {
    const p = router.registry.get(name);
    // Configured cloud hosts are not asked; servers found on the lab's machines are, whatever their kind.
    const discoverable = DISCOVERABLE.has(p?.type ?? "") || router.registry.sourceOf(name) === "discovery";
    if (!p?.adapter?.listModels || p.unavailableReason || !discoverable) return;
    try {
      // A busy server (Ollama loading a model) can take seconds to list its models.
      const cards = await p.adapter.listModels(AbortSignal.timeout(Math.max(5000, intervalMs)));
      router.setDiscoveredModels(name, cards);
      lastError.delete(name);
      failuresInARow.delete(name);
    } catch (err) {
      // One slow or failed round keeps the models (and their breaker and latency
      // state); a server that stays unreachable serves none until it comes back.
      const n = (failuresInARow.get(name) ?? 0) + 1;
      failuresInARow.set(name, n);
      if (n >= dropAfter(name)) router.setDiscoveredModels(name, []);
      const msg = (err as Error).message;
      if (lastError.get(name) !== msg) log.debug({ provider: name, err: msg }, "model discovery failed");
      lastError.set(name, msg);
    }
  };
  const refresh = (): Promise<void> => {
    running ??= Promise.allSettled(router.registry.names().map(refreshOne)).then(() => {
      running = undefined;
    });
    return running;
  };
  const first = refresh();
  const ready = Promise.race([first, new Promise<void>((r) => setTimeout(r, opts.firstRoundMs ?? 1500).unref())]);
  const timer = setInterval(() => void refresh(), intervalMs);
  timer.unref();
  return { ready, refresh, stop: () => clearInterval(timer) };
}
