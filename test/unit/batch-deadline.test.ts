// The deadline estimator (gateway/batch/deadline.ts) on an injected clock.
import { describe, expect, it } from "vitest";
import { MAX_OVERFLOW_PER_DECISION, planDeadline, ThroughputMeter } from "../../gateway/batch/deadline.ts";

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("ThroughputMeter", () => {
  it("measures items per second since work began, then over the sliding window only", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 10_000, now: c.now });
    expect(m.rate()).toBeUndefined();
    m.start();
    // 5 items a second for 4 s
    for (let s = 0; s < 4; s++) {
      for (let i = 0; i < 5; i++) {
        c.advance(200);
        m.record();
      }
    }
    expect(m.rate()).toBeCloseTo(5, 5);
    // then 20 a second for 10 s: the old pace leaves the window
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < 20; i++) {
        c.advance(50);
        m.record();
      }
    }
    expect(m.rate()).toBeGreaterThan(19);
    expect(m.rate()).toBeLessThanOrEqual(21);
  });

  it("sees a stall: nothing ends for a window and the rate falls to zero", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 5_000, now: c.now });
    m.start();
    c.advance(1000);
    m.record(10);
    expect(m.rate()).toBeCloseTo(10, 5);
    c.advance(6000);
    expect(m.rate()).toBe(0);
  });

  it("says nothing until it has watched long enough", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 60_000, now: c.now });
    m.start();
    c.advance(500);
    m.record(3);
    expect(m.rate(2000)).toBeUndefined();
    c.advance(1500);
    expect(m.rate(2000)).toBeCloseTo(1.5, 5);
  });

  it("keeps a bounded number of buckets at high rates", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 1000, now: c.now, buckets: 10 });
    for (let i = 0; i < 100_000; i++) {
      c.advance(0.1);
      m.record();
    }
    // 10,000 items a second
    expect(m.rate()).toBeGreaterThan(9000);
    expect(m.rate()).toBeLessThanOrEqual(10_100);
    expect((m as unknown as { counts: Map<number, number> }).counts.size).toBeLessThanOrEqual(11);
  });
});

describe("planDeadline", () => {
  it("on time when the measured pace finishes the rest inside the window (with the safety margin)", () => {
    expect(planDeadline({ itemsLeft: 700, itemsPerSecond: 10, secondsLeft: 100 })).toEqual({ verdict: "on_time", projectedSeconds: 70, localItems: 700, overflowItems: 0 });
    // 90 s of work in 100 s is not on time at 0.8 safety: 800 local, 100 to overflow
    expect(planDeadline({ itemsLeft: 900, itemsPerSecond: 10, secondsLeft: 100 })).toEqual({ verdict: "late", projectedSeconds: 90, localItems: 800, overflowItems: 100 });
    expect(planDeadline({ itemsLeft: 900, itemsPerSecond: 10, secondsLeft: 100, safety: 1 }).verdict).toBe("on_time");
  });

  it("sends the whole rest when nothing is moving or no time is left", () => {
    expect(planDeadline({ itemsLeft: 50, itemsPerSecond: 0, secondsLeft: 100 })).toMatchObject({ verdict: "late", projectedSeconds: Infinity, overflowItems: 50 });
    expect(planDeadline({ itemsLeft: 50, itemsPerSecond: 10, secondsLeft: -5 })).toMatchObject({ verdict: "late", overflowItems: 50 });
    expect(planDeadline({ itemsLeft: 50, itemsPerSecond: 10, secondsLeft: 20, reserveSeconds: 20 })).toMatchObject({ verdict: "late", overflowItems: 50 });
  });

  it("decides nothing before a rate is measured, and nothing is late when nothing is left", () => {
    expect(planDeadline({ itemsLeft: 50, itemsPerSecond: undefined, secondsLeft: 1 })).toMatchObject({ verdict: "unknown", overflowItems: 0 });
    expect(planDeadline({ itemsLeft: 0, itemsPerSecond: 0, secondsLeft: -1 })).toMatchObject({ verdict: "on_time", overflowItems: 0 });
  });

  it("with a meter on a clock: a slow local queue facing a short window sends its surplus", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 30_000, now: c.now });
    m.start();
    for (let i = 0; i < 20; i++) {
      c.advance(250);
      m.record();
    } // 4 items/s for 5 s
    const plan = planDeadline({ itemsLeft: 1000, itemsPerSecond: m.rate(1000), secondsLeft: 60, safety: 1 });
    expect(plan).toMatchObject({ verdict: "late", localItems: 240, overflowItems: 760 });
    expect(plan.projectedSeconds).toBeCloseTo(250, 5);
  });

  it("a 24 h window whose first items have not ended yet (a model loading) is unknown, not late", () => {
    const c = clock();
    const m = new ThroughputMeter({ windowMs: 300_000, now: c.now });
    m.start();
    c.advance(60_000); // a minute in, nothing ended
    const day = 86_400;
    const early = { itemsLeft: 50_000, itemsPerSecond: m.rate(30_000), secondsLeft: day - 60, reserveSeconds: 600, samples: m.count(), watchedSeconds: m.watchedMs() / 1000, windowSeconds: day };
    expect(early.itemsPerSecond).toBe(0);
    expect(planDeadline(early)).toMatchObject({ verdict: "unknown", overflowItems: 0 });
    // Two items ended: still too few to be a pace.
    m.record(2);
    expect(planDeadline({ ...early, itemsPerSecond: m.rate(30_000), samples: m.count() })).toMatchObject({ verdict: "unknown", overflowItems: 0 });
  });

  it("a stall watched for a tenth of the window, or time running short, is late; one decision sends at most the cap until time is short", () => {
    const day = 86_400;
    const stalled = { itemsLeft: 50_000, itemsPerSecond: 0, samples: 0, reserveSeconds: 600, windowSeconds: day };
    // Watched 2.4 h with nothing ended: late, but one cloud batch of MAX_OVERFLOW_PER_DECISION at a time.
    expect(planDeadline({ ...stalled, secondsLeft: day * 0.9, watchedSeconds: day * 0.1 })).toEqual({ verdict: "late", projectedSeconds: Infinity, localItems: 50_000 - MAX_OVERFLOW_PER_DECISION, overflowItems: MAX_OVERFLOW_PER_DECISION });
    // Under a tenth of the window left: no more waiting for samples, and the whole surplus goes.
    expect(planDeadline({ ...stalled, secondsLeft: day * 0.09, watchedSeconds: 60 })).toMatchObject({ verdict: "late", overflowItems: 50_000 });
    // A real pace (enough samples) early in the window is believed, and capped while time is not short.
    expect(planDeadline({ ...stalled, itemsPerSecond: 0.1, samples: 30, secondsLeft: day - 300, watchedSeconds: 300 })).toMatchObject({ verdict: "late", overflowItems: MAX_OVERFLOW_PER_DECISION });
    // A short window's "short" is twice the reserve when that is longer than its tenth.
    expect(planDeadline({ itemsLeft: 20, itemsPerSecond: 0, samples: 0, secondsLeft: 1.1, reserveSeconds: 0.6, watchedSeconds: 0.3, windowSeconds: 6 })).toMatchObject({ verdict: "late", overflowItems: 20 });
  });
});
