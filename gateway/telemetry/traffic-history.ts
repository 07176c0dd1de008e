// The last hour of traffic per provider, in memory, for the dashboard's overview:
// requests, errors and TTFB p50/p95 per 10-second bucket. The request log has the
// same facts but only by the hour; the overview wants a live chart that is full the
// moment it opens. Fed by every request's outcome, so the work per outcome is a few
// array writes: each bucket counts TTFBs into a small fixed histogram of logarithmic
// bins (never a list of samples), and a ring of buckets reuses its slots as time moves
// on, so memory per provider is fixed whatever the traffic.
import type { RequestOutcome } from "../completion/outcome.ts";

/** Bins per doubling: each bin is 2^(1/4) = 19% wide, so a quantile is within ~9% of the truth. */
const BINS_PER_OCTAVE = 4;
/** The lowest bin starts at 2^-3 ms (0.125 ms); the highest ends at 2^20 ms (~17 min). Values outside go to the end bins. */
const LOWEST_OCTAVE = -3;
const HIGHEST_OCTAVE = 20;
const BINS = (HIGHEST_OCTAVE - LOWEST_OCTAVE) * BINS_PER_OCTAVE;

export const DEFAULT_BUCKET_MS = 10_000;
export const DEFAULT_WINDOW_MS = 3_600_000;
/** The overview tiles' "recent" figures: the last minute. */
export const DEFAULT_RECENT_MS = 60_000;

function binOf(ms: number): number {
  const b = Math.floor(Math.log2(ms > 0 ? ms : 1e-9) * BINS_PER_OCTAVE) - LOWEST_OCTAVE * BINS_PER_OCTAVE;
  return b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
}

/** A bin's middle value (geometric), in ms. */
function binValue(bin: number): number {
  return 2 ** ((bin + LOWEST_OCTAVE * BINS_PER_OCTAVE + 0.5) / BINS_PER_OCTAVE);
}

export interface TrafficPoint {
  /** Start of the bucket, ms since the epoch. */
  t: number;
  requests: number;
  errors: number;
  /** null when no request of the bucket had a first byte. */
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
}

export interface ProviderTraffic {
  provider: string;
  /** Buckets with traffic, oldest first (buckets without any are left out). */
  points: TrafficPoint[];
  /** The last `recent_ms` (whole buckets) together. */
  recent: Omit<TrafficPoint, "t">;
}

export interface TrafficSnapshot {
  object: "traffic";
  bucket_ms: number;
  /** The window covered, bucket-aligned: [from, to). */
  from: number;
  to: number;
  /** When this history began (the gateway's start): nothing before it is known, so a chart may start there. */
  since: number;
  recent_ms: number;
  providers: ProviderTraffic[];
}

/** One provider's ring of buckets, in flat typed arrays (slot i is bucket start starts[i]). */
class Ring {
  readonly starts: Float64Array;
  readonly requests: Uint32Array;
  readonly errors: Uint32Array;
  readonly ttfbs: Uint32Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly hist: Uint32Array;
  /** The newest bucket start this provider has seen (to forget providers idle for a whole window). */
  newest = -1;

  constructor(slots: number) {
    this.starts = new Float64Array(slots).fill(-1);
    this.requests = new Uint32Array(slots);
    this.errors = new Uint32Array(slots);
    this.ttfbs = new Uint32Array(slots);
    this.min = new Float64Array(slots);
    this.max = new Float64Array(slots);
    this.hist = new Uint32Array(slots * BINS);
  }

  /**
   * The slot of the bucket that starts at `start`, emptied first when it last held an older
   * bucket; -1 when it holds a newer one (a request that ended more than a window ago).
   */
  slot(start: number, bucketMs: number): number {
    const i = Math.floor(start / bucketMs) % this.starts.length;
    if (this.starts[i] !== start) {
      if (this.starts[i]! > start) return -1;
      this.starts[i] = start;
      this.requests[i] = 0;
      this.errors[i] = 0;
      this.ttfbs[i] = 0;
      this.hist.fill(0, i * BINS, (i + 1) * BINS);
    }
    if (start > this.newest) this.newest = start;
    return i;
  }
}

/** Quantiles of the TTFBs in some slots of a ring, merged; clamped to the slots' smallest and largest TTFB. */
function quantiles(ring: Ring, slots: number[], qs: number[]): (number | null)[] {
  let total = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of slots) {
    if (ring.ttfbs[s] === 0) continue;
    total += ring.ttfbs[s]!;
    if (ring.min[s]! < lo) lo = ring.min[s]!;
    if (ring.max[s]! > hi) hi = ring.max[s]!;
  }
  if (total === 0) return qs.map(() => null);
  const out: (number | null)[] = [];
  let q = 0;
  let seen = 0;
  for (let b = 0; b < BINS && q < qs.length; b++) {
    for (const s of slots) seen += ring.hist[s * BINS + b]!;
    // Nearest rank: the bin holding the ceil(q * total)-th smallest TTFB.
    while (q < qs.length && seen >= Math.max(1, Math.ceil(qs[q]! * total))) {
      out.push(Math.round(Math.min(hi, Math.max(lo, binValue(b))) * 10) / 10);
      q++;
    }
  }
  while (out.length < qs.length) out.push(Math.round(hi * 10) / 10);
  return out;
}

export interface TrafficHistoryOptions {
  /** Bucket width (default 10 s). */
  bucketMs?: number;
  /** How far back it remembers (default 1 h). */
  windowMs?: number;
  /** Span of each provider's `recent` figures (default 1 min). */
  recentMs?: number;
  /** The clock of snapshots (outcomes carry their own times). */
  now?: () => number;
}

export class TrafficHistory {
  private readonly bucketMs: number;
  private readonly slots: number;
  private readonly recentBuckets: number;
  private readonly now: () => number;
  private readonly rings = new Map<string, Ring>();
  private readonly since: number;

  constructor(opts: TrafficHistoryOptions = {}) {
    this.bucketMs = opts.bucketMs ?? DEFAULT_BUCKET_MS;
    this.slots = Math.max(1, Math.ceil((opts.windowMs ?? DEFAULT_WINDOW_MS) / this.bucketMs));
    this.recentBuckets = Math.max(1, Math.min(this.slots, Math.ceil((opts.recentMs ?? DEFAULT_RECENT_MS) / this.bucketMs)));
    this.now = opts.now ?? Date.now;
    this.since = this.now();
  }

  /** Counts one request where it ended (not where it began: a long stream belongs to the minute it finished). Runs per request. */
  observe(o: RequestOutcome): void {
    if (o.provider === null) return; // never reached a provider: nothing to say about one
    let ring = this.rings.get(o.provider);
    if (!ring) this.rings.set(o.provider, (ring = new Ring(this.slots)));
    // When it ended, from its own times: Date.now() costs ~0.3 µs on some VMs' clocks, more than all the rest.
    const end = o.ts + o.totalMs;
    const i = ring.slot(end - (end % this.bucketMs), this.bucketMs);
    if (i < 0) return;
    ring.requests[i]!++;
    // A caller that went away is not the provider's error (as in the live summaries).
    if (o.errorClass !== null && o.errorClass !== "cancelled") ring.errors[i]!++;
    const ttfb = o.ttfbMs;
    if (ttfb !== null) {
      if (ring.ttfbs[i] === 0 || ttfb < ring.min[i]!) ring.min[i] = ttfb;
      if (ring.ttfbs[i] === 0 || ttfb > ring.max[i]!) ring.max[i] = ttfb;
      ring.ttfbs[i]!++;
      ring.hist[i * BINS + binOf(ttfb)]!++;
    }
  }

  /** The window's buckets per provider, and each provider's last minute. */
  snapshot(): TrafficSnapshot {
    const now = this.now();
    const to = now - (now % this.bucketMs) + this.bucketMs;
    const from = to - this.slots * this.bucketMs;
    const recentFrom = to - this.recentBuckets * this.bucketMs;
    const providers: ProviderTraffic[] = [];
    for (const [provider, ring] of this.rings) {
      // Idle for the whole window: its ring goes (a provider that was removed leaves no memory behind).
      if (ring.newest < from) {
        this.rings.delete(provider);
        continue;
      }
      const live: number[] = [];
      for (let i = 0; i < this.slots; i++) if (ring.starts[i]! >= from && ring.requests[i]! > 0) live.push(i);
      live.sort((a, b) => ring.starts[a]! - ring.starts[b]!);
      const points = live.map((i): TrafficPoint => {
        const [p50, p95] = quantiles(ring, [i], [0.5, 0.95]);
        return { t: ring.starts[i]!, requests: ring.requests[i]!, errors: ring.errors[i]!, ttfb_p50_ms: p50!, ttfb_p95_ms: p95! };
      });
      const recentSlots = live.filter((i) => ring.starts[i]! >= recentFrom);
      const [p50, p95] = quantiles(ring, recentSlots, [0.5, 0.95]);
      providers.push({
        provider,
        points,
        recent: {
          requests: recentSlots.reduce((n, i) => n + ring.requests[i]!, 0),
          errors: recentSlots.reduce((n, i) => n + ring.errors[i]!, 0),
          ttfb_p50_ms: p50!,
          ttfb_p95_ms: p95!,
        },
      });
    }
    providers.sort((a, b) => (a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0));
    return { object: "traffic", bucket_ms: this.bucketMs, from, to, since: this.since, recent_ms: this.recentBuckets * this.bucketMs, providers };
  }

  /** Providers remembered (for tests of the memory bound). */
  get size(): number {
    return this.rings.size;
  }
}
