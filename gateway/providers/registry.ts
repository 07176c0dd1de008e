// The provider registry: every provider the gateway can route to, whatever brought
// it (the config, discovery of servers already running, a supervised process), with
// its runtime state, and one stream of events about them. Admin, health, metrics,
// the dashboard and the tray read it and listen to it instead of reaching into the
// router; the router reads it to route.
import type { BreakerState } from "../router/circuit-breaker.ts";
import type { ProviderRuntime } from "../router/runtime.ts";
import type { HealthResult } from "./types.ts";

export type ProviderSource = "config" | "discovery" | "supervisor";

export interface HealthRecord extends HealthResult {
  /** ms since the epoch of the probe. */
  at: number;
}

export type RegistryEvent =
  | { type: "added"; provider: string; source: ProviderSource }
  | { type: "replaced"; provider: string; source: ProviderSource }
  | { type: "removed"; provider: string }
  | { type: "enabled"; provider: string; enabled: boolean }
  /** Sent when a provider's health turns (healthy <-> unhealthy), and at its first probe. */
  | { type: "health"; provider: string; healthy: boolean; detail: string }
  | { type: "breaker"; provider: string; deployment: string; from: BreakerState; to: BreakerState }
  | { type: "panic"; group: string; panic: boolean; enabledDeployments: number; breakerNotOpen: number }
  /** The models a provider serves by itself changed (discovery). */
  | { type: "models"; provider: string; models: string[] };

export type RegistryListener = (event: RegistryEvent) => void;

interface Entry {
  runtime: ProviderRuntime;
  source: ProviderSource;
  health: HealthRecord | undefined;
}

export class ProviderRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners: RegistryListener[] = [];

  /** A registry holding these providers (tests, benchmarks, the config's providers). */
  static of(runtimes: Iterable<ProviderRuntime>, source: ProviderSource = "config"): ProviderRegistry {
    const r = new ProviderRegistry();
    for (const p of runtimes) r.add(p, source);
    return r;
  }

  /** Listen to every event; returns the function that stops listening. */
  on(listener: RegistryListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Tell every listener; a listener that throws does not stop the others or the caller. */
  emit(event: RegistryEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // a consumer's bug must not break routing or the other consumers
      }
    }
  }

  add(runtime: ProviderRuntime, source: ProviderSource): void {
    if (this.entries.has(runtime.name)) throw new Error(`provider ${runtime.name} is already registered`);
    this.entries.set(runtime.name, { runtime, source, health: undefined });
    this.emit({ type: "added", provider: runtime.name, source });
  }

  /** Swap a provider's runtime (a restarted server, a new adapter); returns the old one so the caller can close it. */
  replace(runtime: ProviderRuntime, source?: ProviderSource): ProviderRuntime | undefined {
    const old = this.entries.get(runtime.name);
    if (!old) {
      this.add(runtime, source ?? "config");
      return undefined;
    }
    this.entries.set(runtime.name, { runtime, source: source ?? old.source, health: undefined });
    this.emit({ type: "replaced", provider: runtime.name, source: source ?? old.source });
    return old.runtime;
  }

  /** Forget a provider; returns its runtime so the caller can close its adapter. */
  remove(name: string): ProviderRuntime | undefined {
    const e = this.entries.get(name);
    if (!e) return undefined;
    this.entries.delete(name);
    this.emit({ type: "removed", provider: name });
    return e.runtime;
  }

  get(name: string): ProviderRuntime | undefined {
    return this.entries.get(name)?.runtime;
  }

  sourceOf(name: string): ProviderSource | undefined {
    return this.entries.get(name)?.source;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  list(): ProviderRuntime[] {
    return [...this.entries.values()].map((e) => e.runtime);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The operator's toggle; returns false for an unknown provider. */
  setEnabled(name: string, enabled: boolean): boolean {
    const p = this.get(name);
    if (!p) return false;
    if (p.enabled === enabled) return true;
    p.enabled = enabled;
    this.emit({ type: "enabled", provider: name, enabled });
    return true;
  }

  recordHealth(name: string, h: HealthRecord): void {
    const e = this.entries.get(name);
    if (!e) return;
    const before = e.health?.ok;
    e.health = h;
    if (before !== h.ok) this.emit({ type: "health", provider: name, healthy: h.ok, detail: h.detail });
  }

  lastHealth(name: string): HealthRecord | undefined {
    return this.entries.get(name)?.health;
  }
}
