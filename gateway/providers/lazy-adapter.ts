// An adapter whose module is imported when its provider is built rather than when
// labgate starts. Heavy adapters (the embedded engine pulls in node-llama-cpp, the
// Ollama adapter its npm client) are imported only by configurations that have such
// a provider; see loadAdapterModules() in factory.ts, which imports them before the
// configured providers are built so those get the real adapter. This wrapper is for
// a provider that appears later (a server found on the lab's network): the import
// starts when the provider is built, calls made before it finishes wait for it, and
// calls after it go straight to the real adapter (no import on the request path).
import { UpstreamError } from "./errors.ts";
import type { CallContext, CompletionResult, HealthResult, ModelCard, OpenAIBody, ProviderAdapter, Usage } from "./types.ts";

export class LazyAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type: string;
  /** Settles when the real adapter is built; rejects (as an UpstreamError) if its module could not be imported. */
  readonly ready: Promise<ProviderAdapter>;
  private real: ProviderAdapter | undefined;

  constructor(name: string, type: string, load: () => Promise<ProviderAdapter>) {
    this.name = name;
    this.type = type;
    this.ready = load().then(
      (adapter) => (this.real = adapter),
      (err: unknown) => {
        throw new UpstreamError("unavailable", `the ${type} adapter could not be loaded: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      },
    );
    // Failures surface on each call (and in health); never as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** The real adapter once loaded (tests and admin code that need the concrete class). */
  get adapter(): ProviderAdapter | undefined {
    return this.real;
  }

  chat(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.real ? this.real.chat(body, ctx) : this.ready.then((a) => a.chat(body, ctx));
  }

  completions(body: OpenAIBody, ctx: CallContext): Promise<CompletionResult> {
    return this.real ? this.real.completions(body, ctx) : this.ready.then((a) => a.completions(body, ctx));
  }

  embeddings(body: OpenAIBody, ctx: CallContext): Promise<{ body: Record<string, unknown>; usage: Usage | null }> {
    return this.real ? this.real.embeddings(body, ctx) : this.ready.then((a) => a.embeddings(body, ctx));
  }

  async health(signal: AbortSignal): Promise<HealthResult> {
    const started = performance.now();
    try {
      return await (this.real ?? (await this.ready)).health(signal);
    } catch (err) {
      return { ok: false, detail: (err as Error).message, latencyMs: performance.now() - started };
    }
  }

  async listModels(signal: AbortSignal): Promise<ModelCard[]> {
    const a = this.real ?? (await this.ready);
    return a.listModels ? a.listModels(signal) : [];
  }

  async close(): Promise<void> {
    const a = await this.ready.catch(() => undefined);
    await a?.close();
  }
}
