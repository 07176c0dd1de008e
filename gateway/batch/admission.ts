// Interactive first: the batch worker starts an item on a provider only while at most
// `interactiveThreshold` interactive requests are in flight there, and while fewer than
// the provider's batch cap of batch items run there. An interactive request counts
// from the moment its body is read (before routing, so one still waiting for a slot
// counts too) until its HTTP response ends, against every provider of its model group;
// a batch item counts the same way, since the router picks the deployment only when
// the item runs. Items already running are not interrupted (batch work yields by starting
// nothing new while interactive requests wait), unless `preempt` is on: then an
// interactive request that arrives where batch items run cancels the newest of them.
//
// Interactive requests come in bursts and chains (a client's next request follows the
// last one's end by a few milliseconds): a batch item started in such a gap competes with
// the next request for the CPU and the upstream. So after an interactive request starts
// or ends on a provider, batch items start there only once it has been quiet for
// `quietMs`, and while interactive traffic was seen there in the last second at most
// `busyCap` of them run at once.
import type { FastifyInstance } from "fastify";
import type { Router } from "../router/router.ts";

export interface AdmissionOptions {
  router: Router;
  /** Batch items in flight per provider, unless `perProvider` names it. */
  providerConcurrency: number;
  perProvider: Record<string, number>;
  interactiveThreshold: number;
  /** Cancel the newest running batch item on a provider when an interactive request arrives there. */
  preempt?: boolean;
  /** No batch start on a provider within this long (ms) of an interactive request starting or ending there (0: none). */
  quietMs?: number;
  /** Batch items in flight per provider while it has had interactive traffic within the last second (below its cap). */
  busyCap?: number;
  /** The clock (ms, monotonic); tests pass their own. */
  now?: () => number;
}

/** Batch items per provider a late batch may run whatever the interactive traffic (its minimum share). */
export const LATE_SHARE = 1;
/** How long after the last interactive request a provider counts as having interactive traffic (busyCap). */
const BUSY_WINDOW_MS = 1000;

interface BatchSlot {
  providers: string[];
  /** Cancels the item (preemption); called at most once. */
  preempt: (() => void) | undefined;
}

/** Routes whose requests are interactive traffic (with or without the /v1 prefix). */
const INTERACTIVE = /^(?:\/v1)?\/(?:chat\/completions|completions|embeddings)$/;
/** The key batch items of a model nobody serves count under (they fail fast, but are capped too). */
const UNKNOWN = "";

export class AdmissionGate {
  private readonly opts: AdmissionOptions;
  private readonly interactive = new Map<string, number>();
  private readonly batch = new Map<string, number>();
  /** Running batch items, oldest first (a Set keeps insertion order). */
  private readonly slots = new Set<BatchSlot>();
  private readonly listeners: (() => void)[] = [];
  /** When an interactive request last started or ended, per provider (ms, opts.now's clock). */
  private readonly lastInteractive = new Map<string, number>();
  private readonly now: () => number;

  constructor(opts: AdmissionOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  private noteInteractive(providers: string[]): void {
    const now = this.now();
    for (const p of providers) this.lastInteractive.set(p, now);
  }

  /** The providers a request for `model` may land on. */
  providersOf(model: string): string[] {
    const g = this.opts.router.group(model);
    if (!g) return [UNKNOWN];
    return [...new Set(g.deployments.map((d) => d.provider.name))];
  }

  /** Told when capacity may have freed up (an interactive request or a batch item ended). */
  onRelease(listener: () => void): void {
    this.listeners.push(listener);
  }

  private add(map: Map<string, number>, providers: string[], delta: number): void {
    for (const p of providers) {
      const n = (map.get(p) ?? 0) + delta;
      if (n <= 0) map.delete(p);
      else map.set(p, n);
    }
    if (delta < 0) for (const l of this.listeners) l();
  }

  /** An interactive request for `model` starts; call the returned function once when it ends. */
  interactiveStarted(model: string): () => void {
    const providers = this.providersOf(model);
    this.noteInteractive(providers);
    this.add(this.interactive, providers, 1);
    if (this.opts.preempt) this.preemptOne(providers);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.noteInteractive(providers);
      this.add(this.interactive, providers, -1);
    };
  }

  interactiveInFlight(provider: string): number {
    return this.interactive.get(provider) ?? 0;
  }

  batchInFlight(provider: string): number {
    return this.batch.get(provider) ?? 0;
  }

  capOf(provider: string): number {
    return this.opts.perProvider[provider] ?? this.opts.providerConcurrency;
  }

  /**
   * Whether a batch item for `model` may start now: if so it is counted (call `release` when
   * it ends); `preempt` cancels it should an interactive request need its place.
   */
  tryStart(model: string, preempt?: () => void, opts: { late?: boolean } = {}): { release: () => void } | { wait: "interactive" | "capacity"; retryInMs?: number } {
    const providers = this.providersOf(model);
    const normal = this.normalStart(providers);
    if (normal !== undefined) {
      // A batch the deadline estimate calls late still gets its minimum share: LATE_SHARE items
      // per provider whatever the interactive traffic (never where the cap is 0), and they are
      // not preempted. Without it steady traffic (20 req/s) would starve a batch past its window.
      if (!opts.late) return normal;
      for (const p of providers) if (this.batchInFlight(p) >= Math.min(LATE_SHARE, this.capOf(p))) return { wait: "capacity" };
      return this.admit(providers, undefined);
    }
    return this.admit(providers, preempt);
  }

  /** Why a batch item may not start on these providers under the interactive-first rules, or undefined if it may. */
  private normalStart(providers: string[]): { wait: "interactive" | "capacity"; retryInMs?: number } | undefined {
    for (const p of providers) if (this.interactiveInFlight(p) > this.opts.interactiveThreshold) return { wait: "interactive" };
    const now = this.now();
    const quietMs = this.opts.quietMs ?? 0;
    let quietIn = 0;
    let busy = false;
    for (const p of providers) {
      const last = this.lastInteractive.get(p);
      if (last === undefined) continue;
      quietIn = Math.max(quietIn, quietMs - (now - last));
      if (now - last < BUSY_WINDOW_MS) busy = true;
    }
    // Nothing ends when a quiet period does: the caller asks again then.
    if (quietIn > 0) return { wait: "interactive", retryInMs: quietIn };
    const busyCap = this.opts.busyCap;
    for (const p of providers) {
      const cap = busy && busyCap !== undefined ? Math.min(busyCap, this.capOf(p)) : this.capOf(p);
      if (this.batchInFlight(p) >= cap) return { wait: "capacity" };
    }
    return undefined;
  }

  private admit(providers: string[], preempt: (() => void) | undefined): { release: () => void } {
    this.add(this.batch, providers, 1);
    const slot: BatchSlot = { providers, preempt };
    this.slots.add(slot);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.slots.delete(slot);
        this.add(this.batch, providers, -1);
      },
    };
  }

  /** Cancels the newest running batch item on any of these providers, if there is one. */
  private preemptOne(providers: string[]): void {
    let newest: BatchSlot | undefined;
    for (const s of this.slots) if (s.preempt && s.providers.some((p) => providers.includes(p))) newest = s;
    if (!newest) return;
    const cancel = newest.preempt!;
    newest.preempt = undefined;
    cancel();
  }

  /**
   * Counts the gateway's interactive requests: a hook on every route (registered on the
   * root instance before the routes) that notes completion requests once their body is
   * parsed and forgets them when their response ends or their client goes away.
   */
  track(app: FastifyInstance): void {
    app.addHook("preHandler", async (request, reply) => {
      if (request.method !== "POST" || !INTERACTIVE.test(request.routeOptions.url ?? "")) return;
      const model = (request.body as { model?: unknown } | undefined)?.model;
      if (typeof model !== "string") return;
      const done = this.interactiveStarted(model);
      reply.raw.once("close", done);
      reply.raw.once("finish", done);
    });
  }
}
