// The lab's live events, for the dashboard and the tray: what changed (provider
// health, breakers, panic, toggles, providers and models coming and going,
// supervised processes, GPU figures, budgets) as it happens, and once a second a
// summary of the traffic (requests, errors, p50/p95 TTFB, spend, per provider).
// Events carry increasing ids and the last ones are kept, so a client that
// reconnects with Last-Event-ID is given what it missed.
import type { RequestOutcome } from "../completion/outcome.ts";
import type { RegistryEvent } from "../providers/registry.ts";

export interface LabEvent {
  id: number;
  /** The SSE event name: provider, breaker, panic, models, process, gpu, budget, summary... */
  type: string;
  /** ms since the epoch. */
  at: number;
  data: unknown;
}

export type EventListener = (e: LabEvent) => void;

export interface EventHubOptions {
  /** Events kept for clients that reconnect (default 1000). */
  keep?: number;
  /** Summary period (default 1000 ms); 0 turns the summary off. */
  summaryMs?: number;
  now?: () => number;
}

interface Bucket {
  requests: number;
  errors: number;
  spend: number;
  ttfbs: number[];
}

const quantile = (sorted: number[], q: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

export class EventHub {
  private readonly keep: number;
  private readonly now: () => number;
  private readonly recent: LabEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  /**
   * Ids start at the start time in µs, so the ids of a restarted gateway are larger
   * than any of the last run's, and a Last-Event-ID from that run is recognised.
   */
  private readonly firstId: number;
  private nextId: number;
  /** The newest id of a change that was dropped from `recent`: a client behind it must start again. */
  private droppedUpTo: number;
  private timer: NodeJS.Timeout | undefined;
  private total: Bucket = { requests: 0, errors: 0, spend: 0, ttfbs: [] };
  private byProvider = new Map<string, Bucket>();

  constructor(opts: EventHubOptions = {}) {
    this.keep = opts.keep ?? 1000;
    this.now = opts.now ?? Date.now;
    this.firstId = this.now() * 1000;
    this.nextId = this.firstId;
    this.droppedUpTo = this.firstId - 1;
    const summaryMs = opts.summaryMs ?? 1000;
    if (summaryMs > 0) {
      this.timer = setInterval(() => this.summarise(summaryMs), summaryMs);
      this.timer.unref();
    }
  }

  /**
   * Send an event to every client. Changes are kept for clients that reconnect;
   * summaries are not (the next one is a second away), so they never push changes out.
   */
  publish(type: string, data: unknown, opts: { keep?: boolean } = {}): LabEvent {
    const e: LabEvent = { id: this.nextId++, type, at: this.now(), data };
    if (opts.keep !== false) {
      this.recent.push(e);
      if (this.recent.length > this.keep) this.droppedUpTo = this.recent.splice(0, this.recent.length - this.keep).at(-1)!.id;
    }
    for (const l of this.listeners) l(e);
    return e;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get clients(): number {
    return this.listeners.size;
  }

  /**
   * The events after `lastId`, or undefined when some of them are no longer kept
   * (the client must then start again from a snapshot).
   */
  since(lastId: number): LabEvent[] | undefined {
    // An id from another run of the gateway, or one whose successors were dropped: start again.
    if (!Number.isSafeInteger(lastId) || lastId >= this.nextId || lastId < this.droppedUpTo) return undefined;
    return this.recent.filter((e) => e.id > lastId);
  }

  get lastId(): number {
    return this.nextId - 1;
  }

  /** Registry events become lab events (one per change; the registry already coalesces). */
  fromRegistry(e: RegistryEvent): void {
    switch (e.type) {
      case "added":
      case "replaced":
      case "removed":
        this.publish("provider", { change: e.type, provider: e.provider, ...(e.type !== "removed" ? { source: e.source } : {}) });
        return;
      case "enabled":
        this.publish("provider", { change: "enabled", provider: e.provider, enabled: e.enabled });
        return;
      case "health":
        this.publish("provider", { change: "health", provider: e.provider, healthy: e.healthy, detail: e.detail });
        return;
      case "breaker":
        this.publish("breaker", { provider: e.provider, deployment: e.deployment, from: e.from, to: e.to });
        return;
      case "panic":
        this.publish("panic", { model: e.group, panic: e.panic, enabled_deployments: e.enabledDeployments, breaker_not_open: e.breakerNotOpen });
        return;
      case "models":
        this.publish("models", { provider: e.provider, models: e.models });
        return;
    }
  }

  /** Each request's outcome feeds the next summary. */
  observe(o: RequestOutcome): void {
    if (this.listeners.size === 0) return; // nobody follows the summaries: nothing to gather (this runs per request)
    const provider = o.provider ?? "none";
    let b = this.byProvider.get(provider);
    if (!b) this.byProvider.set(provider, (b = { requests: 0, errors: 0, spend: 0, ttfbs: [] }));
    for (const x of [this.total, b]) {
      x.requests++;
      if (o.errorClass !== null && o.errorClass !== "cancelled") x.errors++;
      if (o.costUsd) x.spend += o.costUsd;
      if (o.ttfbMs !== null) x.ttfbs.push(o.ttfbMs);
    }
  }

  /** The traffic of the last period, then a fresh period. */
  summarise(periodMs: number): LabEvent {
    const view = (b: Bucket) => {
      const sorted = b.ttfbs.sort((x, y) => x - y);
      return {
        requests: b.requests,
        errors: b.errors,
        requests_per_s: b.requests / (periodMs / 1000),
        ttfb_p50_ms: quantile(sorted, 0.5),
        ttfb_p95_ms: quantile(sorted, 0.95),
        spend_usd: b.spend,
      };
    };
    const providers = Object.fromEntries([...this.byProvider].map(([name, b]) => [name, view(b)]));
    const e = this.publish("summary", { period_ms: periodMs, ...view(this.total), providers }, { keep: false });
    this.total = { requests: 0, errors: 0, spend: 0, ttfbs: [] };
    this.byProvider = new Map();
    return e;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.listeners.clear();
  }
}
