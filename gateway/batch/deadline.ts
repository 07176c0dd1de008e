// Will a batch finish inside its completion window? Measured from what the local queue
// has actually done lately (items ended per second over a sliding window), not from
// guesses about the hardware. Pure: the clock is passed in, nothing here does I/O.

export interface ThroughputMeterOptions {
  /** How far back the rate looks (ms). Old enough to smooth bursts, young enough to see a slowdown. */
  windowMs: number;
  /** Time in ms (performance.now or Date.now; tests pass their own). */
  now: () => number;
  /** Resolution of the window: it is kept as this many buckets (default 20). */
  buckets?: number;
}

/**
 * Items ended per second over the last `windowMs`. Counts are kept per bucket, so memory
 * is the same at 10 or 10,000 items per second.
 */
export class ThroughputMeter {
  private readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly now: () => number;
  /** bucket number -> items ended in it */
  private readonly counts = new Map<number, number>();
  private startedAt: number | undefined;

  constructor(opts: ThroughputMeterOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError("windowMs must be positive");
    this.windowMs = opts.windowMs;
    this.bucketMs = opts.windowMs / (opts.buckets ?? 20);
    this.now = opts.now;
  }

  /** Work began (the first item was sent): time before it does not count as idle. Later calls are ignored. */
  start(): void {
    this.startedAt ??= this.now();
  }

  /** `n` items ended now. */
  record(n = 1): void {
    this.start();
    const b = Math.floor(this.now() / this.bucketMs);
    this.counts.set(b, (this.counts.get(b) ?? 0) + n);
    this.prune();
  }

  /**
   * How long the counted items took to end (ms): since start, at most the window — measured
   * from the start of its oldest bucket, so a bucket half out of the window is not counted
   * over a shorter span than its items took.
   */
  observedMs(): number {
    if (this.startedAt === undefined) return 0;
    const now = this.now();
    return Math.min(now - this.startedAt, now - this.oldestBucket() * this.bucketMs);
  }

  /** Items per second over what has been watched; undefined before `minObservedMs` of watching. */
  rate(minObservedMs = 0): number | undefined {
    this.prune();
    const observed = this.observedMs();
    if (this.startedAt === undefined || observed < minObservedMs || observed <= 0) return undefined;
    let items = 0;
    for (const n of this.counts.values()) items += n;
    return items / (observed / 1000);
  }

  /** Items counted in the window (how many samples the rate stands on). */
  count(): number {
    this.prune();
    let items = 0;
    for (const n of this.counts.values()) items += n;
    return items;
  }

  /** How long since work began (ms), not bounded by the window; 0 before start. */
  watchedMs(): number {
    return this.startedAt === undefined ? 0 : this.now() - this.startedAt;
  }

  private oldestBucket(): number {
    return Math.floor((this.now() - this.windowMs) / this.bucketMs);
  }

  private prune(): void {
    const oldest = this.oldestBucket();
    for (const b of this.counts.keys()) if (b < oldest) this.counts.delete(b);
  }
}

/**
 * Fewer items ended than this is not a pace: the first items of a window may wait for a model
 * to load or for an interactive burst to pass, and 0 items in 30 s says nothing about 24 h.
 */
export const MIN_SAMPLES = 5;
/** With fewer than MIN_SAMPLES, the pace counts only after this share of the window was watched (2.4 h of 24 h). */
export const MIN_WATCHED_SHARE = 0.1;
/** Seconds left below this share of the window are short: a decision cannot wait for samples any more. */
export const URGENT_SHARE = 0.1;
/**
 * Most items one decision hands to the cloud while time is not short. A misjudged pace
 * then costs at most this many paid items per cloud batch (one runs at a time per local
 * batch, and the next decision measures again); when time is short the whole surplus goes,
 * since a later decision would be too late.
 */
export const MAX_OVERFLOW_PER_DECISION = 1000;

export interface DeadlineInput {
  /** Items not yet ended that the local queue would have to run. */
  itemsLeft: number;
  /** Measured local throughput; undefined while too little has been seen. */
  itemsPerSecond: number | undefined;
  /** Seconds until the batch's window closes. */
  secondsLeft: number;
  /** Share of the projected local capacity counted on (default 0.8): throughput wobbles. */
  safety?: number;
  /** Seconds kept free at the end (the cloud's answers must come back, the files be written). Default 0. */
  reserveSeconds?: number;
  /**
   * Items the rate was measured from. With fewer than MIN_SAMPLES the verdict is unknown
   * unless time is short or MIN_WATCHED_SHARE of the window was watched. Takes effect with
   * windowSeconds (and watchedSeconds) given: the three go together.
   */
  samples?: number;
  /** Seconds the local queue has been watched (since its first item started). */
  watchedSeconds?: number;
  /** The batch's whole completion window in seconds (what "short" and "long enough" mean; without it time is never short and the cap always applies). */
  windowSeconds?: number;
}

export interface DeadlinePlan {
  /** on_time: the local queue finishes in the window; late: it does not; unknown: too little measured yet. */
  verdict: "on_time" | "late" | "unknown";
  /** Seconds the local queue would need for every item left (Infinity when it does nothing). */
  projectedSeconds: number | undefined;
  /** Items the local queue can still be expected to finish in time. */
  localItems: number;
  /** Items to hand to the overflow now (0 unless late; at most MAX_OVERFLOW_PER_DECISION unless time is short). */
  overflowItems: number;
}

/**
 * Seconds left below which time is short: a tenth of the window, or twice the reserve (the
 * time the cloud's answers need to come back), whichever is longer.
 */
export function urgentSeconds(windowSeconds: number, reserveSeconds = 0): number {
  return Math.max(URGENT_SHARE * windowSeconds, 2 * reserveSeconds);
}

export function planDeadline(input: DeadlineInput): DeadlinePlan {
  const left = Math.max(0, Math.floor(input.itemsLeft));
  if (left === 0) return { verdict: "on_time", projectedSeconds: 0, localItems: 0, overflowItems: 0 };
  const unknown: DeadlinePlan = { verdict: "unknown", projectedSeconds: undefined, localItems: left, overflowItems: 0 };
  const rate = input.itemsPerSecond;
  if (rate === undefined || !Number.isFinite(rate) || rate < 0) return unknown;
  const reserve = input.reserveSeconds ?? 0;
  // Without the window nothing says time is short: the cap applies.
  const window = input.windowSeconds;
  const urgent = window !== undefined && input.secondsLeft < urgentSeconds(window, reserve);
  if (window !== undefined && input.samples !== undefined && input.samples < MIN_SAMPLES && !urgent) {
    // Too few items ended to call it a pace: wait, unless the window was watched long enough to call it a stall.
    if ((input.watchedSeconds ?? 0) < MIN_WATCHED_SHARE * window) return unknown;
  }
  const safety = Math.min(1, Math.max(0, input.safety ?? 0.8));
  const usable = Math.max(0, input.secondsLeft - reserve);
  const capacity = Math.floor(rate * usable * safety);
  const projectedSeconds = rate > 0 ? left / rate : Infinity;
  if (left <= capacity) return { verdict: "on_time", projectedSeconds, localItems: left, overflowItems: 0 };
  const surplus = left - capacity;
  const overflowItems = urgent ? surplus : Math.min(surplus, MAX_OVERFLOW_PER_DECISION);
  return { verdict: "late", projectedSeconds, localItems: left - overflowItems, overflowItems };
}

export interface LatenessInput {
  /** Items of the batch not yet ended. */
  itemsLeft: number;
  /** Items of the batch ended since it started running. */
  itemsEnded: number;
  /** Seconds since the batch started running. */
  runningSeconds: number;
  /** Seconds until its window closes. */
  secondsLeft: number;
  /** Its whole completion window (s). */
  windowSeconds: number;
}

/**
 * Whether the batch will not end in its window at the pace it has had (the deadline
 * estimate's "late"): then the admission gate gives it a minimum share of local capacity
 * even under interactive traffic. A batch that has run nothing for a tenth of its window,
 * or with a tenth of its window left, has a pace of zero and is late.
 */
export function batchIsLate(i: LatenessInput): boolean {
  if (i.itemsLeft <= 0) return false;
  const rate = i.runningSeconds > 0 ? i.itemsEnded / i.runningSeconds : undefined;
  return (
    planDeadline({
      itemsLeft: i.itemsLeft,
      itemsPerSecond: rate,
      secondsLeft: i.secondsLeft,
      samples: i.itemsEnded,
      watchedSeconds: i.runningSeconds,
      windowSeconds: i.windowSeconds,
    }).verdict === "late"
  );
}
