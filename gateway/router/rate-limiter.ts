// Requests-per-minute and tokens-per-minute over a sliding minute (1 s buckets).
const WINDOW_MS = 60_000;
const BUCKET_MS = 1_000;

class SlidingMinute {
  private readonly counts = new Map<number, number>();
  private total = 0;
  private readonly now: () => number;
  constructor(now: () => number) {
    this.now = now;
  }
  add(n: number): void {
    this.expire();
    const b = Math.floor(this.now() / BUCKET_MS);
    this.counts.set(b, (this.counts.get(b) ?? 0) + n);
    this.total += n;
  }
  sum(): number {
    this.expire();
    return this.total;
  }
  /**
   * ms until the sum drops below `limit` (0 if it already is). A bucket leaves the
   * window WINDOW_MS after its start, so this is exactly when room comes back.
   */
  msUntilBelow(limit: number): number {
    this.expire();
    let remaining = this.total;
    if (remaining < limit) return 0;
    const buckets = [...this.counts].sort((a, b) => a[0] - b[0]);
    for (const [b, n] of buckets) {
      remaining -= n;
      if (remaining < limit) return Math.max(0, b * BUCKET_MS + WINDOW_MS - this.now());
    }
    return 0;
  }
  private expire(): void {
    const floor = Math.floor((this.now() - WINDOW_MS) / BUCKET_MS);
    for (const [b, n] of this.counts) {
      if (b <= floor) {
        this.counts.delete(b);
        this.total -= n;
      }
    }
  }
}

export class RateLimiter {
  readonly rpm: number | undefined;
  readonly tpm: number | undefined;
  private readonly requests: SlidingMinute;
  private readonly tokens: SlidingMinute;

  constructor(limits: { rpm?: number | undefined; tpm?: number | undefined }, now: () => number = Date.now) {
    this.rpm = limits.rpm;
    this.tpm = limits.tpm;
    this.requests = new SlidingMinute(now);
    this.tokens = new SlidingMinute(now);
  }

  get limited(): boolean {
    return this.rpm !== undefined || this.tpm !== undefined;
  }

  /** Is there room for one more request now? */
  hasRoom(): boolean {
    if (this.rpm !== undefined && this.requests.sum() >= this.rpm) return false;
    if (this.tpm !== undefined && this.tokens.sum() >= this.tpm) return false;
    return true;
  }

  /** Share of the tightest limit still free, 0..1 (1 when unlimited). */
  headroom(): number {
    let h = 1;
    if (this.rpm !== undefined) h = Math.min(h, 1 - this.requests.sum() / this.rpm);
    if (this.tpm !== undefined) h = Math.min(h, 1 - this.tokens.sum() / this.tpm);
    return Math.max(0, h);
  }

  recordRequest(): void {
    if (this.rpm !== undefined) this.requests.add(1);
  }

  recordTokens(n: number): void {
    if (this.tpm !== undefined && n > 0) this.tokens.add(n);
  }

  /** ms until there is room again (for Retry-After); 0 when there is room now. */
  retryAfterMs(): number {
    let ms = 0;
    if (this.rpm !== undefined) ms = Math.max(ms, this.requests.msUntilBelow(this.rpm));
    if (this.tpm !== undefined) ms = Math.max(ms, this.tokens.msUntilBelow(this.tpm));
    return ms;
  }
}
