// The overview's traffic history on its own, with an injected clock: requests land in
// the bucket of the time they ended, old buckets roll out after an hour, memory stays
// fixed whatever the traffic, and the TTFB quantiles of the fixed histogram are close
// to the exact ones.
import { describe, expect, it } from "vitest";
import type { RequestOutcome } from "../../gateway/completion/outcome.ts";
import { TrafficHistory } from "../../gateway/telemetry/traffic-history.ts";
import { seededRandom } from "../fixtures/random.ts";

const outcome = (o: Partial<RequestOutcome>): RequestOutcome => ({ provider: "lab", errorClass: null, ttfbMs: 100, totalMs: 0, ...o }) as RequestOutcome;

/** The exact nearest-rank quantile of a sample. */
const exact = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)]!;
};

describe("traffic history", () => {
  it("counts requests and errors per 10 s bucket, and a cancelled request is not an error", () => {
    let now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    h.observe(outcome({ ts: now }));
    h.observe(outcome({ ts: now, errorClass: "server_error", ttfbMs: null }));
    h.observe(outcome({ ts: now, errorClass: "cancelled" }));
    h.observe(outcome({ ts: now, provider: null })); // never reached a provider
    now += 10_000;
    h.observe(outcome({ ts: now, provider: "cloud", ttfbMs: 40 }));
    h.observe(outcome({ ts: now }));
    const s = h.snapshot();
    expect(s.bucket_ms).toBe(10_000);
    expect(s.to).toBe(now + 10_000);
    expect(s.to - s.from).toBe(3_600_000);
    expect(s.since).toBe(now - 10_000);
    expect(s.providers.map((p) => p.provider)).toEqual(["cloud", "lab"]);
    const lab = s.providers.find((p) => p.provider === "lab")!;
    expect(lab.points.map((p) => [p.t, p.requests, p.errors])).toEqual([
      [now - 10_000, 3, 1],
      [now, 1, 0],
    ]);
    // One TTFB in a bucket is reported as itself, not as its bin's middle.
    expect(lab.points[1]!.ttfb_p50_ms).toBe(100);
    expect(lab.recent).toEqual({ requests: 4, errors: 1, ttfb_p50_ms: 100, ttfb_p95_ms: 100 });
  });

  it("rolls buckets out after an hour and reuses their slots", () => {
    let now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    h.observe(outcome({ ts: now, ttfbMs: 5000 }));
    now += 30 * 60_000;
    h.observe(outcome({ ts: now, ttfbMs: 10 }));
    expect(h.snapshot().providers[0]!.points.map((p) => p.requests)).toEqual([1, 1]);
    // An hour after the first: its slot now holds this bucket, which starts from zero.
    now = Date.UTC(2026, 11, 1, 13, 0, 0);
    h.observe(outcome({ ts: now, ttfbMs: 20 }));
    const lab = h.snapshot().providers[0]!;
    expect(lab.points.map((p) => [p.t, p.requests, p.ttfb_p95_ms])).toEqual([
      [Date.UTC(2026, 11, 1, 12, 30, 0), 1, 10],
      [now, 1, 20],
    ]);
    // The last minute only.
    expect(lab.recent.requests).toBe(1);
  });

  it("counts a request in the bucket where it ended, and drops one that ended before the window", () => {
    const now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    h.observe(outcome({ ts: now - 45_000, totalMs: 45_000 })); // a long stream that began 45 s ago
    h.observe(outcome({ ts: now, totalMs: 0 }));
    // Ended an hour ago: its slot holds the current bucket, which it must not empty.
    h.observe(outcome({ ts: now - 3_600_000, totalMs: 0 }));
    expect(h.snapshot().providers[0]!.points.map((p) => [p.t, p.requests])).toEqual([[now, 2]]);
  });

  it("keeps memory fixed: a provider idle for an hour is forgotten, and heavy traffic adds no samples", () => {
    let now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    const rand = seededRandom(7);
    for (let i = 0; i < 100_000; i++) {
      now += 50; // 20 requests a second for ~83 minutes
      h.observe(outcome({ ts: now, ttfbMs: 1 + rand() * 1000 }));
    }
    h.observe(outcome({ ts: now, provider: "gone" }));
    const s = h.snapshot();
    expect(s.providers.find((p) => p.provider === "lab")!.points).toHaveLength(360);
    expect(h.size).toBe(2);
    now += 3_600_000 + 10_000;
    h.observe(outcome({ ts: now, provider: "lab" }));
    expect(h.snapshot().providers.map((p) => p.provider)).toEqual(["lab"]);
    expect(h.size).toBe(1);
  });

  it("gives p50 and p95 within the histogram's precision of the exact quantiles", () => {
    const now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    const rand = seededRandom(42);
    const samples: number[] = [];
    for (let i = 0; i < 5000; i++) {
      // Log-normal-ish: most fast, a long tail.
      const ms = Math.exp(3 + rand() * 2 + (rand() < 0.05 ? 3 : 0));
      samples.push(ms);
      h.observe(outcome({ ts: now, ttfbMs: ms }));
    }
    const p = h.snapshot().providers[0]!.points[0]!;
    // Bins are 19% wide and report their middle: within 10% either way.
    expect(p.ttfb_p50_ms! / exact(samples, 0.5)).toBeGreaterThan(0.9);
    expect(p.ttfb_p50_ms! / exact(samples, 0.5)).toBeLessThan(1.1);
    expect(p.ttfb_p95_ms! / exact(samples, 0.95)).toBeGreaterThan(0.9);
    expect(p.ttfb_p95_ms! / exact(samples, 0.95)).toBeLessThan(1.1);
    expect(p.ttfb_p95_ms!).toBeGreaterThan(p.ttfb_p50_ms!);
  });

  it("merges the last minute's buckets for the recent figures, and clamps quantiles to what was seen", () => {
    let now = Date.UTC(2026, 11, 1, 12, 0, 0);
    const h = new TrafficHistory({ now: () => now });
    // Two minutes ago: slow, outside the recent minute.
    h.observe(outcome({ ts: now, ttfbMs: 9000 }));
    now += 120_000;
    for (let i = 0; i < 6; i++) {
      for (let k = 0; k < 10; k++) h.observe(outcome({ ts: now, ttfbMs: k < 9 ? 50 : 400, errorClass: k === 0 ? "timeout" : null }));
      now += 10_000;
    }
    now -= 10_000;
    const lab = h.snapshot().providers[0]!;
    expect(lab.recent.requests).toBe(60);
    expect(lab.recent.errors).toBe(6);
    // 50 ms's bin reports its middle (49.3 ms) raised to the smallest TTFB seen.
    expect(lab.recent.ttfb_p50_ms).toBe(50);
    expect(lab.recent.ttfb_p95_ms).toBeGreaterThan(360);
    expect(lab.recent.ttfb_p95_ms).toBeLessThanOrEqual(400);
  });
});
