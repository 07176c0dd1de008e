// The router picks a deployment for each request and decides what happens when
// one fails: next deployment of the group, its overflow, then the group's
// fallback chain, with retries and backoff on retryable errors. It speaks no
// wire format: adapters do that.
import type { LabgateConfig, RouterConfig, StrategyName } from "../config/schema.ts";
import { UpstreamError, type ErrorClass } from "../providers/errors.ts";
import type { ChunkBatch, ModelCard, OpenAIBody, Operation, Usage } from "../providers/types.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { AttemptRecord } from "../store/request-log.ts";
import { runAttempt } from "./attempt.ts";
import { backoffDelay, sleep } from "./backoff.ts";
import type { BreakerState } from "./circuit-breaker.ts";
import { DeploymentRuntime, type ProviderRuntime } from "./runtime.ts";
import { orderByStrategy, type Random } from "./strategies.ts";

/**
 * In panic a deployment is asked at most twice per request (once when it fails on every
 * call): with two deployments a request costs its upstreams at most 4 calls, and two
 * 50%-flaky deployments still answer about 15 requests in 16.
 */
const MAX_PANIC_CALLS_PER_DEPLOYMENT = 2;

export interface ModelGroup {
  name: string;
  strategy: StrategyName;
  deployments: DeploymentRuntime[];
  fallbacks: string[];
  /** Discovered from a provider rather than written in the config. */
  discovered: boolean;
  /** What the provider says about a discovered model (context length, file, architecture...). */
  card?: ModelCard;
}

export interface RouteInfo {
  deployment: DeploymentRuntime;
  /** True when an earlier attempt failed, a fallback group answered, or overflow took it. */
  isFallback: boolean;
  isOverflow: boolean;
  /** 0 = the requested group; 1 = a group in its `fallbacks` list; 2 = a fallback of one of those; ... */
  fallbackDepth: number;
  attempts: AttemptRecord[];
  /** ms the router spent waiting on upstreams and backoff (excluded from labgate's overhead). */
  upstreamWaitMs: number;
  /** Served by a deployment whose model group was in panic (open breakers ignored). */
  panic: boolean;
}

/** How many of a group's deployments could serve, and whether that is few enough for panic. */
export interface GroupHealth {
  /** Deployments the operator has not disabled and whose provider is up. */
  enabled: number;
  /** Of those, the ones whose circuit breaker is not open. */
  eligible: number;
  panic: boolean;
}

export interface StreamOutcome {
  usage: Usage | null;
  /** Set when the stream failed after its first chunk. */
  error?: UpstreamError;
  /** The client went away. */
  cancelled?: boolean;
}

export type RoutedResponse =
  | (RouteInfo & { kind: "json"; body: Record<string, unknown>; usage: Usage | null; ttfbMs: number; raw?: string })
  | (RouteInfo & {
      kind: "stream";
      /** The first batch of chunks (already received); undefined for an empty stream. */
      first: ChunkBatch | undefined;
      /** The remaining batches; errors after the first batch surface here. */
      rest: AsyncIterator<ChunkBatch>;
      /** ms to the first batch (undefined if the router committed early and it has not come yet). */
      ttfbMs: number | undefined;
      /** Must be called exactly once when the stream ends, however it ends. */
      finish(outcome: StreamOutcome): void;
      /** Resolves to the first batch when the router committed early (keep-alive). */
      firstPending?: Promise<IteratorResult<ChunkBatch>>;
    });

export interface RouteRequest {
  operation: Operation;
  model: string;
  body: OpenAIBody;
  stream: boolean;
  /** Aborts when the client disconnects. */
  signal: AbortSignal;
  /**
   * For streams with no first-byte timeout: after this many ms without a first
   * chunk, the router commits to the deployment and calls onEarlyCommit so the
   * API can send headers and keep-alive comments.
   */
  keepAliveMs?: number;
  onEarlyCommit?: (route: RouteInfo) => void;
}

/** Why a request could not be routed to an answer. The router says what happened; the API says it in HTTP. */
export type RouteFailureReason =
  | "model_not_found" // no model group of that name
  | "all_limited" // every deployment is at its rate or concurrency limit
  | "no_deployment" // nothing could be tried: disabled, breakers open, unavailable
  | "panic_exhausted" // the group was in panic, every deployment was tried and failed
  | "rejected" // the request itself was refused (by an upstream, or by labgate's own code): another deployment would say the same
  | "exhausted" // every attempt failed
  | "cancelled"; // the caller went away

export class RouteFailure extends Error {
  readonly reason: RouteFailureReason;
  /** The last upstream error, when an attempt was made. */
  readonly error: UpstreamError | undefined;
  readonly attempts: AttemptRecord[];
  readonly retryAfterMs: number | undefined;
  readonly fallbackDepth: number;
  /** Some attempt went to a group in panic. */
  readonly panic: boolean;
  constructor(
    reason: RouteFailureReason,
    message: string,
    opts: { error?: UpstreamError; attempts?: AttemptRecord[]; retryAfterMs?: number; fallbackDepth?: number; panic?: boolean } = {},
  ) {
    super(message);
    this.name = "RouteFailure";
    this.reason = reason;
    this.error = opts.error;
    this.attempts = opts.attempts ?? [];
    this.retryAfterMs = opts.retryAfterMs;
    this.fallbackDepth = opts.fallbackDepth ?? 0;
    this.panic = opts.panic ?? false;
  }

  /** What the request log and metrics record as the error's class. */
  get errorClass(): string {
    switch (this.reason) {
      case "model_not_found":
      case "no_deployment":
      case "cancelled":
        return this.reason;
      case "all_limited":
        return "rate_limited";
      default:
        return this.error?.errorClass ?? "unavailable";
    }
  }
}

export interface RouterObserver {
  onAttempt?(d: DeploymentRuntime, errorClass: ErrorClass | null, ms: number): void;
  onTtfb?(d: DeploymentRuntime, ms: number): void;
  onBreakerChange?(d: DeploymentRuntime, from: BreakerState, to: BreakerState): void;
  onFallbackResult?(group: string, success: boolean): void;
  /** A model group entered or left panic (called once per change, not per request). */
  onPanicChange?(group: string, panic: boolean, health: GroupHealth): void;
}

export interface RouterOptions {
  random?: Random;
  now?: () => number;
  observer?: RouterObserver;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Why a deployment is kept out for now beyond its own state (a budget crossed closes cloud overflow). */
  blocked?: (d: DeploymentRuntime) => string | undefined;
}

interface Candidate {
  deployment: DeploymentRuntime;
  groupDepth: number;
  overflow: boolean;
  /** Its group is in panic: an open breaker does not keep it out. */
  panic: boolean;
}

export class Router {
  /** Where providers come from (config, discovery, supervised processes); the router only reads it. */
  readonly registry: ProviderRegistry;
  private readonly groups = new Map<string, ModelGroup>();
  private readonly discovered = new Map<string, ModelGroup>();
  /** Groups last seen in panic, so entering and leaving are reported once each. */
  private readonly panicking = new Set<string>();
  private readonly cfg: RouterConfig;
  private readonly random: Random;
  private readonly now: () => number;
  private readonly observer: RouterObserver;
  private readonly sleepFn: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly blocked: (d: DeploymentRuntime) => string | undefined;

  constructor(config: LabgateConfig, registry: ProviderRegistry, opts: RouterOptions = {}) {
    this.cfg = config.router;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.observer = opts.observer ?? {};
    this.sleepFn = opts.sleep ?? sleep;
    this.blocked = opts.blocked ?? (() => undefined);
    this.registry = registry;
    registry.on((e) => {
      if (e.type === "removed") this.setDiscoveredModels(e.provider, [], true);
      else if (e.type === "replaced" || e.type === "added") this.rebind(e.provider);
      else if (e.type === "enabled") for (const g of this.listGroups()) this.groupHealth(g);
    });
    for (const [name, group] of Object.entries(config.models)) {
      const deployments = group.deployments.map((d, index) => {
        const provider = registry.get(d.provider);
        if (!provider) throw new Error(`model ${name}: provider ${d.provider} is not defined`);
        return this.makeDeployment(name, index, d, provider);
      });
      this.groups.set(name, {
        name,
        strategy: group.strategy ?? "weighted",
        deployments,
        fallbacks: group.fallbacks ?? [],
        discovered: false,
      });
    }
  }

  private makeDeployment(group: string, index: number, config: DeploymentRuntime["config"], provider: ProviderRuntime): DeploymentRuntime {
    const d = new DeploymentRuntime({ group, index, config, provider, breaker: this.cfg.circuit_breaker, now: this.now });
    d.breaker.onStateChange = (from, to) => {
      this.observer.onBreakerChange?.(d, from, to);
      this.registry.emit({ type: "breaker", provider: d.provider.name, deployment: d.id, from, to });
      // A breaker that opens or closes may put its group into panic or take it out.
      const g = this.group(group);
      if (g) this.groupHealth(g);
    };
    return d;
  }

  /**
   * Models a provider serves by itself (Ollama tags, GGUF files...) become groups
   * of one deployment, unless the config defines a group of that name.
   */
  setDiscoveredModels(providerName: string, models: ModelCard[], providerGone = false): void {
    const provider = this.registry.get(providerName);
    if (!provider && !providerGone) return;
    const keep = new Set(models.map((m) => m.id));
    const before = this.discoveredBy(providerName);
    for (const [name, g] of this.discovered) {
      if (g.deployments[0]?.provider.name === providerName && !keep.has(name)) this.discovered.delete(name);
    }
    if (!provider) {
      if (before.length > 0) this.registry.emit({ type: "models", provider: providerName, models: [] });
      return;
    }
    for (const m of models) {
      const existing = this.discovered.get(m.id);
      if (existing && existing.deployments[0]?.provider === provider) {
        existing.card = m; // details may change (a file rewritten, an error cleared)
        continue;
      }
      if (existing) continue; // first provider to claim a name keeps it
      const config = { provider: providerName, model: m.id, tier: "local", ...(m.context_length ? { context_length: m.context_length } : {}) };
      this.discovered.set(m.id, {
        name: m.id,
        strategy: "priority",
        deployments: [this.makeDeployment(m.id, 0, config, provider)],
        fallbacks: [],
        discovered: true,
        card: m,
      });
    }
    const after = this.discoveredBy(providerName);
    if (after.join("\n") !== before.join("\n")) this.registry.emit({ type: "models", provider: providerName, models: after });
  }

  /** Every model group one of whose deployments is on this provider. */
  modelsOf(providerName: string): string[] {
    return this.listGroups()
      .filter((g) => g.deployments.some((d) => d.provider.name === providerName))
      .map((g) => g.name);
  }

  private discoveredBy(providerName: string): string[] {
    const out: string[] = [];
    for (const [name, g] of this.discovered) if (g.deployments[0]?.provider.name === providerName) out.push(name);
    return out.sort();
  }

  /** A provider was replaced (or came back): its deployments use the new runtime, keeping their breaker and latency state. */
  private rebind(providerName: string): void {
    const p = this.registry.get(providerName);
    if (!p) return;
    for (const d of this.allDeployments()) if (d.provider.name === providerName) d.provider = p;
  }

  group(name: string): ModelGroup | undefined {
    return this.groups.get(name) ?? this.discovered.get(name);
  }

  listGroups(): ModelGroup[] {
    const out = [...this.groups.values()];
    for (const [name, g] of this.discovered) if (!this.groups.has(name)) out.push(g);
    return out;
  }

  allDeployments(): DeploymentRuntime[] {
    return this.listGroups().flatMap((g) => g.deployments);
  }

  /**
   * Envoy's panic threshold: when too few of a group's enabled deployments have a
   * closed (or half-open) breaker, the breakers are ignored for that group, because
   * some answers beat none. Operator-disabled deployments stay out whatever happens.
   * Reports a change of state to the observer once.
   */
  groupHealth(group: ModelGroup): GroupHealth {
    let enabled = 0;
    let eligible = 0;
    for (const d of group.deployments) {
      if (!d.enabled) continue;
      enabled++;
      if (d.breaker.state !== "open") eligible++;
    }
    const threshold = this.cfg.circuit_breaker.panic_threshold;
    const panic = threshold > 0 && enabled > 0 && eligible / enabled < threshold;
    if (panic !== this.panicking.has(group.name)) {
      if (panic) this.panicking.add(group.name);
      else this.panicking.delete(group.name);
      this.observer.onPanicChange?.(group.name, panic, { enabled, eligible, panic });
      this.registry.emit({ type: "panic", group: group.name, panic, enabledDeployments: enabled, breakerNotOpen: eligible });
    }
    return { enabled, eligible, panic };
  }

  /** The ordered attempt plan, evaluated lazily so state changes between attempts count. */
  private *plan(groupName: string, skipReasons: Map<string, string>): Generator<Candidate> {
    const seen = new Set<string>();
    const chain: { name: string; depth: number }[] = [{ name: groupName, depth: 0 }];
    while (chain.length > 0) {
      const { name, depth } = chain.shift()!;
      if (seen.has(name) || depth > this.cfg.max_fallback_depth) continue;
      seen.add(name);
      const group = this.group(name);
      if (!group) continue;
      const panic = this.groupHealth(group).panic;
      const eligible = (overflow: boolean): DeploymentRuntime[] =>
        group.deployments.filter((d) => {
          if (d.overflow !== overflow) return false;
          const why = d.unavailability(panic) ?? this.blocked(d);
          if (why) skipReasons.set(d.id, why);
          return why === undefined;
        });
      for (const d of orderByStrategy(group.strategy, eligible(false), this.random)) {
        yield { deployment: d, groupDepth: depth, overflow: false, panic };
      }
      for (const d of orderByStrategy(group.strategy, eligible(true), this.random)) {
        yield { deployment: d, groupDepth: depth, overflow: true, panic };
      }
      chain.push(...group.fallbacks.map((f) => ({ name: f, depth: depth + 1 })));
    }
  }

  async route(req: RouteRequest): Promise<RoutedResponse> {
    const group = this.group(req.model);
    if (!group) {
      throw new RouteFailure("model_not_found", `The model \`${req.model}\` does not exist or is not served by this gateway.`);
    }
    const attempts: AttemptRecord[] = [];
    // One deadline for the whole request: attempts, backoffs and fallbacks.
    const deadline = performance.now() + this.cfg.total_timeout_s * 1000;
    let upstreamWaitMs = 0;
    let lastError: UpstreamError | undefined;
    let maxRetryAfter: number | undefined;
    let contextCeiling: number | undefined; // context length known to be too small
    let everFailedOver = false;
    let deepest = 0; // deepest fallback group tried
    let panicked = false; // some attempt went to a group in panic
    // Deployments not asked again: their failure a retry cannot fix (auth, not found...),
    // or they failed on every call lately and were only tried because their group is in panic.
    const settled = new Set<string>();
    // Calls per deployment for this request: in panic, at most two (one when it fails on every call).
    const callsTo = new Map<string, number>();
    let retryWorthIt = false;

    for (let pass = 0; pass <= this.cfg.retries; pass++) {
      if (pass > 0) {
        // Retry when some deployment failed in a way that may pass (5xx, reset, 429...),
        // even if the last one tried failed for good.
        if (!retryWorthIt) break;
        // An upstream that asks for a longer pause than we would ever back off gets
        // its answer passed on (with Retry-After) instead of holding the client.
        if (maxRetryAfter !== undefined && maxRetryAfter > this.cfg.retry_backoff_max_ms) break;
        const delay = Math.max(backoffDelay(pass, this.cfg.retry_backoff_ms, this.cfg.retry_backoff_max_ms, this.random), maxRetryAfter ?? 0);
        if (performance.now() + delay >= deadline) break;
        const t0 = performance.now();
        await this.sleepFn(delay, req.signal);
        upstreamWaitMs += performance.now() - t0;
        if (req.signal.aborted) throw this.cancelled(attempts);
      }
      const skipReasons = new Map<string, string>();
      const triedThisPass = new Set<string>();
      let attemptedThisPass = 0;
      retryWorthIt = false;
      for (const cand of this.plan(req.model, skipReasons)) {
        const d = cand.deployment;
        if (triedThisPass.has(d.id) || settled.has(d.id)) continue;
        if (contextCeiling !== undefined && d.contextLength !== undefined && d.contextLength <= contextCeiling) continue;
        if (req.signal.aborted) throw this.cancelled(attempts);
        const remainingMs = deadline - performance.now();
        if (remainingMs <= 0) {
          lastError = new UpstreamError("timeout", `no answer within router.total_timeout_s (${this.cfg.total_timeout_s} s)`);
          break;
        }
        // The plan listed this deployment before earlier candidates were tried; other
        // requests may have filled its slots or its rate limit meanwhile.
        const why = d.unavailability(cand.panic) ?? this.blocked(d);
        if (why) {
          skipReasons.set(d.id, why);
          continue;
        }
        if (cand.panic && (callsTo.get(d.id) ?? 0) >= MAX_PANIC_CALLS_PER_DEPLOYMENT) {
          settled.add(d.id); // asked enough for this request (some of it before the group was in panic)
          continue;
        }
        const permit = d.breaker.tryAcquire() ?? (cand.panic ? d.breaker.panicPermit() : undefined);
        if (!permit) {
          skipReasons.set(d.id, "circuit_open");
          continue;
        }
        triedThisPass.add(d.id);
        attemptedThisPass++;
        deepest = Math.max(deepest, cand.groupDepth);
        if (cand.panic) panicked = true;
        const isFallback = attempts.length > 0 || cand.groupDepth > 0 || cand.overflow;
        const t0 = performance.now();
        const outcome = await runAttempt(
          d,
          permit,
          req,
          { attempts, isFallback, isOverflow: cand.overflow, fallbackDepth: cand.groupDepth, upstreamWaitMs, panic: cand.panic },
          { timeoutS: this.cfg.timeout_s, firstByteTimeoutS: this.cfg.first_byte_timeout_s, totalTimeoutS: this.cfg.total_timeout_s, remainingMs },
          this.observer,
        );
        const elapsed = performance.now() - t0;
        if (outcome.ok) {
          if (isFallback) this.observer.onFallbackResult?.(req.model, true);
          return outcome.response;
        }
        upstreamWaitMs += elapsed;
        const err = outcome.error;
        lastError = err;
        if (err.retryAfterMs !== undefined) maxRetryAfter = Math.max(maxRetryAfter ?? 0, err.retryAfterMs);
        if (err.errorClass === "cancelled") throw this.cancelled(attempts);
        if (!err.failover) {
          // The request itself is wrong: another deployment would say the same.
          throw new RouteFailure("rejected", err.message, { error: err, attempts, fallbackDepth: cand.groupDepth, panic: panicked });
        }
        if (err.errorClass === "context_window") {
          contextCeiling = d.contextLength ?? contextCeiling;
        }
        // In panic, a deployment that fails on every call gets one attempt per request:
        // a dead lab costs its upstreams one call per deployment, and answers fast.
        const calls = (callsTo.get(d.id) ?? 0) + 1;
        callsTo.set(d.id, calls);
        if (cand.panic && (d.breaker.failingSteadily || calls >= MAX_PANIC_CALLS_PER_DEPLOYMENT)) settled.add(d.id);
        else if (err.retryable) retryWorthIt = true;
        else settled.add(d.id);
        everFailedOver = true;
      }
      if (attemptedThisPass === 0 && attempts.length === 0) {
        // Nothing could even be tried: say why in the most useful terms.
        const reasons = [...skipReasons.values()];
        if (reasons.length > 0 && reasons.every((r) => r === "rate_limited" || r === "saturated")) {
          const retryAfterMs = this.minRetryAfter(new Set(skipReasons.keys()));
          throw new RouteFailure("all_limited", `Rate limit reached for model \`${req.model}\`: every deployment is at its limit.`, { retryAfterMs });
        }
        throw new RouteFailure("no_deployment", `No healthy deployment for model \`${req.model}\` (${describeSkips(skipReasons)}).`);
      }
      if (attemptedThisPass === 0) break;
    }
    if (everFailedOver) this.observer.onFallbackResult?.(req.model, false);
    const err = lastError ?? new UpstreamError("unavailable", "no deployment answered");
    if (err.errorClass === "cancelled") throw this.cancelled(attempts);
    if (panicked && err.errorClass !== "rate_limited" && err.errorClass !== "overloaded") {
      // Every deployment was tried once or more although its breaker was open: say so.
      const h = this.groupHealth(group);
      throw new RouteFailure(
        "panic_exhausted",
        `No deployment for \`${req.model}\` could answer: ${h.enabled - h.eligible} of ${h.enabled} have their circuit breaker open, ` +
          `so the group is in panic and each was tried; last error: ${err.message}`,
        { error: err, attempts, fallbackDepth: deepest, panic: true },
      );
    }
    throw new RouteFailure("exhausted", `All deployments for \`${req.model}\` failed; last error: ${err.message}`, {
      error: err,
      attempts,
      retryAfterMs: err.retryAfterMs,
      fallbackDepth: deepest,
      panic: panicked,
    });
  }

  private cancelled(attempts: AttemptRecord[]): RouteFailure {
    return new RouteFailure("cancelled", "client closed the request", { attempts });
  }

  /** The soonest one of these deployments (from the whole fallback chain) has room again. */
  private minRetryAfter(deploymentIds: Set<string>): number {
    let best = Infinity;
    for (const d of this.allDeployments()) {
      if (!deploymentIds.has(d.id)) continue;
      best = Math.min(best, Math.max(d.limiter.retryAfterMs(), d.provider.limiter.retryAfterMs()));
    }
    return Number.isFinite(best) && best > 0 ? best : 1000;
  }

  resetBreakers(deploymentId?: string): number {
    let n = 0;
    for (const d of this.allDeployments()) {
      if (deploymentId === undefined || d.id === deploymentId || d.label === deploymentId) {
        d.breaker.reset();
        n++;
      }
    }
    return n;
  }
}

function describeSkips(skips: Map<string, string>): string {
  if (skips.size === 0) return "no deployment is configured";
  const counts = new Map<string, number>();
  for (const r of skips.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${n} ${r.replace(/_/g, " ")}`).join(", ");
}
