// Live state of providers and deployments: what the router reads to decide and
// what /admin/providers shows.
import type { CircuitBreakerConfig, DeploymentConfig, Price, ProviderConfig } from "../config/schema.ts";
import type { ProviderAdapter } from "../providers/types.ts";
import { CircuitBreaker } from "./circuit-breaker.ts";
import { RateLimiter } from "./rate-limiter.ts";

const EWMA_ALPHA = 0.2;

export class ProviderRuntime {
  readonly name: string;
  readonly type: string;
  readonly config: ProviderConfig;
  readonly adapter: ProviderAdapter | undefined;
  /** Why the provider cannot serve at all (unresolved secret, engine missing...). */
  readonly unavailableReason: string | undefined;
  enabled: boolean;
  /** Set while a launched server cannot take traffic (starting, stopped, failed): why. */
  notReady: string | undefined;
  inFlight = 0;
  readonly limiter: RateLimiter;

  constructor(opts: { name: string; config: ProviderConfig; adapter?: ProviderAdapter; unavailableReason?: string; enabled: boolean; now?: () => number }) {
    this.name = opts.name;
    this.type = opts.config.type;
    this.config = opts.config;
    this.adapter = opts.adapter;
    this.unavailableReason = opts.unavailableReason ?? (opts.adapter ? undefined : "no adapter");
    this.enabled = opts.enabled;
    this.limiter = new RateLimiter({ rpm: opts.config.rpm, tpm: opts.config.tpm }, opts.now);
  }

  get maxInFlight(): number | undefined {
    return this.config.max_in_flight;
  }
}

export class DeploymentRuntime {
  /** Stable id: "<group>#<index>" — unique across the config. */
  readonly id: string;
  readonly group: string;
  readonly index: number;
  /** Rebound when its provider is replaced in the registry (a restarted server, a new adapter). */
  provider: ProviderRuntime;
  readonly upstreamModel: string;
  readonly weight: number;
  readonly overflow: boolean;
  readonly tier: string | undefined;
  readonly price: Price | undefined;
  readonly contextLength: number | undefined;
  readonly config: DeploymentConfig;
  readonly breaker: CircuitBreaker;
  readonly limiter: RateLimiter;
  inFlight = 0;
  /** EWMA of time to first byte, ms (undefined until measured). */
  ewmaTtfbMs: number | undefined;
  requests = 0;
  failures = 0;

  constructor(opts: { group: string; index: number; config: DeploymentConfig; provider: ProviderRuntime; breaker: CircuitBreakerConfig; now?: () => number }) {
    this.group = opts.group;
    this.index = opts.index;
    this.id = `${opts.group}#${opts.index}`;
    this.config = opts.config;
    this.provider = opts.provider;
    this.upstreamModel = opts.config.model;
    this.weight = opts.config.weight ?? 1;
    this.overflow = opts.config.overflow ?? false;
    this.tier = opts.config.tier;
    this.price = opts.config.price;
    this.contextLength = opts.config.context_length;
    this.breaker = new CircuitBreaker(opts.breaker, opts.now);
    this.limiter = new RateLimiter({ rpm: opts.config.rpm, tpm: opts.config.tpm }, opts.now);
  }

  get label(): string {
    return `${this.provider.name}/${this.upstreamModel}`;
  }

  get maxInFlight(): number | undefined {
    return this.config.max_in_flight;
  }

  /** Could serve at all: its provider is up (secrets resolved, adapter built) and the operator has not disabled it. */
  get enabled(): boolean {
    return this.provider.enabled && this.provider.unavailableReason === undefined;
  }

  /**
   * Why this deployment cannot take a request now, or undefined when it can.
   * `ignoreBreaker`: its model group is in panic, so an open breaker does not keep it out.
   */
  unavailability(ignoreBreaker = false): "provider_unavailable" | "disabled" | "circuit_open" | "rate_limited" | "saturated" | undefined {
    const p = this.provider;
    if (p.unavailableReason || p.notReady !== undefined) return "provider_unavailable";
    if (!p.enabled) return "disabled";
    if (!ignoreBreaker && !this.breaker.canPass()) return "circuit_open";
    if (!this.limiter.hasRoom() || !p.limiter.hasRoom()) return "rate_limited";
    if (this.maxInFlight !== undefined && this.inFlight >= this.maxInFlight) return "saturated";
    if (p.maxInFlight !== undefined && p.inFlight >= p.maxInFlight) return "saturated";
    return undefined;
  }

  observeTtfb(ms: number): void {
    this.ewmaTtfbMs = this.ewmaTtfbMs === undefined ? ms : this.ewmaTtfbMs + EWMA_ALPHA * (ms - this.ewmaTtfbMs);
  }

  /** Price for the cost strategy: input+output per 1M tokens; unpriced (local) counts as free. */
  get unitCost(): number {
    return this.price ? this.price.input_per_1m + this.price.output_per_1m : 0;
  }
}
