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
  /** ms until the oldest bucket leaves the window. */
  msUntilRelease(): number {
    this.expire();
    let oldest = Infinity;
    for (const b of this.counts.keys()) oldest = Math.min(oldest, b);
    if (!Number.isFinite(oldest)) return 0;
    return Math.max(0, (oldest + 1) * BUCKET_MS + WINDOW_MS - this.now());
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

  /** ms until some room frees up (for Retry-After). */
  retryAfterMs(): number {
    let ms = 0;
    if (this.rpm !== undefined && this.requests.sum() >= this.rpm) ms = Math.max(ms, this.requests.msUntilRelease());
    if (this.tpm !== undefined && this.tokens.sum() >= this.tpm) ms = Math.max(ms, this.tokens.msUntilRelease());
    return ms;
  }
}
