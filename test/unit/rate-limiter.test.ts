// Requests and tokens per minute over a sliding minute, and the Retry-After it implies.
import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../gateway/router/rate-limiter.ts";

describe("rate limiter", () => {
  it("unlimited: always room, full headroom, no wait", () => {
    const l = new RateLimiter({});
    for (let i = 0; i < 1000; i++) l.recordRequest();
    l.recordTokens(1e9);
    expect([l.limited, l.hasRoom(), l.headroom(), l.retryAfterMs()]).toEqual([false, true, 1, 0]);
  });

  it("rpm: full after rpm requests in a minute, free again when they leave the window", () => {
    let now = 10_000_000;
    const l = new RateLimiter({ rpm: 3 }, () => now);
    for (let i = 0; i < 3; i++) {
      expect(l.hasRoom()).toBe(true);
      l.recordRequest();
      now += 10_000;
    }
    // t0, t0+10s, t0+20s; now = t0+30s
    expect(l.hasRoom()).toBe(false);
    expect(l.headroom()).toBe(0);
    now += 29_000; // t0+59s: the first is still in the window
    expect(l.hasRoom()).toBe(false);
    now += 1_000; // t0+60s
    expect(l.hasRoom()).toBe(true);
    expect(l.headroom()).toBeCloseTo(1 / 3);
  });

  it("headroom is the share of the tightest limit left", () => {
    const now = 0;
    const l = new RateLimiter({ rpm: 10, tpm: 1000 }, () => now);
    for (let i = 0; i < 2; i++) l.recordRequest();
    expect(l.headroom()).toBeCloseTo(0.8);
    l.recordTokens(500);
    expect(l.headroom()).toBeCloseTo(0.5);
  });

  it("tpm: full once the tokens of the last minute reach the limit", () => {
    let now = 0;
    const l = new RateLimiter({ tpm: 100 }, () => now);
    l.recordTokens(60);
    expect(l.hasRoom()).toBe(true);
    now += 1000;
    l.recordTokens(40);
    expect(l.hasRoom()).toBe(false);
    now += 59_000;
    expect(l.hasRoom()).toBe(true); // the 60 left the window
  });

  it("retryAfterMs is when room actually comes back, not earlier and not later", () => {
    let now = 5_000_000;
    const l = new RateLimiter({ rpm: 2 }, () => now);
    l.recordRequest();
    now += 15_000;
    l.recordRequest();
    now += 5_000;
    const wait = l.retryAfterMs();
    expect(wait).toBeGreaterThan(0);
    now += wait - 1;
    expect(l.hasRoom()).toBe(false);
    now += 1;
    expect(l.hasRoom()).toBe(true);
  });

  it("tpm retryAfterMs waits until enough tokens left the window, not just the oldest bucket", () => {
    let now = 0;
    const l = new RateLimiter({ tpm: 100 }, () => now);
    l.recordTokens(10); // t=0
    now = 10_000;
    l.recordTokens(100); // t=10s: 110 tokens, still at the limit once the first 10 leave
    now = 20_000;
    const wait = l.retryAfterMs();
    now += wait - 1;
    expect(l.hasRoom()).toBe(false);
    now += 1;
    expect(l.hasRoom()).toBe(true);
    expect(now).toBe(70_000);
  });
});
