// A circuit breaker per deployment. CLOSED counts outcomes in a sliding window;
// too many failures (rate over a minimum volume, or N in a row) open it; after the
// cooldown it lets a few probes through (HALF_OPEN); a probe's success closes it.
import type { CircuitBreakerConfig } from "../config/schema.ts";

export type BreakerState = "closed" | "open" | "half_open";

const BUCKETS = 10;

/** What tryAcquire() hands out: whether the request is a half-open probe, and of which half-open period. */
export interface BreakerPermit {
  readonly probe: boolean;
  readonly epoch: number;
}

export class CircuitBreaker {
  private readonly cfg: CircuitBreakerConfig;
  private readonly now: () => number;
  private stateValue: BreakerState = "closed";
  private openedAt = 0;
  private consecutiveFailures = 0;
  private probesInFlight = 0;
  /** Bumped on every state change, so permits from an earlier period are recognised. */
  private epoch = 0;
  // Sliding window in BUCKETS time buckets: [bucketStart, successes, failures]
  private readonly buckets: { start: number; ok: number; fail: number }[] = [];
  onStateChange: ((from: BreakerState, to: BreakerState) => void) | undefined;

  constructor(cfg: CircuitBreakerConfig, now: () => number = Date.now) {
    this.cfg = cfg;
    this.now = now;
  }

  get state(): BreakerState {
    if (this.stateValue === "open" && this.now() - this.openedAt >= this.cfg.cooldown_s * 1000) {
      this.transition("half_open");
    }
    return this.stateValue;
  }

  /** May a request go to this deployment now? (Does not reserve a probe slot.) */
  canPass(): boolean {
    const s = this.state;
    if (s === "closed") return true;
    if (s === "open") return false;
    return this.probesInFlight < this.cfg.half_open_probes;
  }

  /**
   * Call when a request is actually sent: a permit, or undefined if no slot is
   * left. Hand the permit back to onSuccess / onFailure / onNeutral so that only
   * the half-open probe itself decides whether the breaker closes or re-opens: a
   * request that was already in flight when the breaker opened says nothing new.
   */
  tryAcquire(): BreakerPermit | undefined {
    const s = this.state;
    if (s === "closed") return { probe: false, epoch: this.epoch };
    if (s === "open") return undefined;
    if (this.probesInFlight >= this.cfg.half_open_probes) return undefined;
    this.probesInFlight++;
    return { probe: true, epoch: this.epoch };
  }

  /**
   * A permit for a request sent while the breaker is open because its model group
   * is in panic. It is never a probe: the outcome is counted in the window, but only
   * a half-open probe decides when the breaker closes.
   */
  panicPermit(): BreakerPermit {
    return { probe: false, epoch: this.epoch };
  }

  /** Failing on every call lately (as many failures in a row as open the breaker). */
  get failingSteadily(): boolean {
    return this.consecutiveFailures >= this.cfg.consecutive_failures;
  }

  /** tryAcquire() without a permit: true if the request may go. */
  acquire(): boolean {
    return this.tryAcquire() !== undefined;
  }

  onSuccess(permit?: BreakerPermit): void {
    this.record(true);
    this.consecutiveFailures = 0;
    if (this.stateValue !== "half_open") return;
    if (permit && !this.isLiveProbe(permit)) return; // a straggler: the probe decides
    this.reset();
  }

  onFailure(permit?: BreakerPermit): void {
    this.record(false);
    this.consecutiveFailures++;
    if (this.stateValue === "half_open") {
      if (permit && !this.isLiveProbe(permit)) return; // a straggler: the probe decides
      this.open();
      return;
    }
    if (this.stateValue !== "closed") return;
    if (this.consecutiveFailures >= this.cfg.consecutive_failures) {
      this.open();
      return;
    }
    const { ok, fail } = this.windowCounts();
    const total = ok + fail;
    if (total >= this.cfg.min_requests && fail / total > this.cfg.error_rate_threshold) this.open();
  }

  /** A request that went out but ended with no verdict on the upstream (client went away). */
  onNeutral(permit?: BreakerPermit): void {
    if (this.stateValue !== "half_open") return;
    if (permit && !this.isLiveProbe(permit)) return;
    this.probesInFlight = Math.max(0, this.probesInFlight - 1);
  }

  reset(): void {
    this.buckets.length = 0;
    this.consecutiveFailures = 0;
    this.probesInFlight = 0;
    this.transition("closed");
  }

  /** Error rate over the window (0 when nothing was recorded). */
  errorRate(): number {
    const { ok, fail } = this.windowCounts();
    return ok + fail === 0 ? 0 : fail / (ok + fail);
  }

  private isLiveProbe(permit: BreakerPermit): boolean {
    return permit.probe && permit.epoch === this.epoch;
  }

  private open(): void {
    this.openedAt = this.now();
    this.probesInFlight = 0;
    this.transition("open");
  }

  private transition(to: BreakerState): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.epoch++;
    this.onStateChange?.(from, to);
  }

  private record(ok: boolean): void {
    const width = (this.cfg.window_s * 1000) / BUCKETS;
    const start = Math.floor(this.now() / width) * width;
    let last = this.buckets[this.buckets.length - 1];
    if (!last || last.start !== start) {
      last = { start, ok: 0, fail: 0 };
      this.buckets.push(last);
      if (this.buckets.length > BUCKETS + 1) this.buckets.shift();
    }
    if (ok) last.ok++;
    else last.fail++;
  }

  private windowCounts(): { ok: number; fail: number } {
    const horizon = this.now() - this.cfg.window_s * 1000;
    let ok = 0;
    let fail = 0;
    for (const b of this.buckets) {
      if (b.start >= horizon) {
        ok += b.ok;
        fail += b.fail;
      }
    }
    return { ok, fail };
  }
}
