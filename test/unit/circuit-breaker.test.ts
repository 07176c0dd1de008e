import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../gateway/router/circuit-breaker.ts";

const cfg = { error_rate_threshold: 0.05, min_requests: 20, window_s: 60, consecutive_failures: 5, cooldown_s: 30, half_open_probes: 1, panic_threshold: 0.5 };

describe("circuit breaker", () => {
  it("opens after N consecutive failures, half-opens after the cooldown, closes on a probe's success", () => {
    let now = 1_000_000;
    const b = new CircuitBreaker(cfg, () => now);
    for (let i = 0; i < 4; i++) b.onFailure();
    expect(b.state).toBe("closed");
    b.onFailure();
    expect(b.state).toBe("open");
    expect(b.canPass()).toBe(false);
    now += 29_000;
    expect(b.state).toBe("open");
    now += 1_000;
    expect(b.state).toBe("half_open");
    expect(b.acquire()).toBe(true);
    expect(b.acquire()).toBe(false); // one probe at a time
    b.onSuccess();
    expect(b.state).toBe("closed");
  });

  it("a failed probe re-opens it for another cooldown", () => {
    let now = 0;
    const b = new CircuitBreaker(cfg, () => now);
    for (let i = 0; i < 5; i++) b.onFailure();
    now += 30_000;
    expect(b.acquire()).toBe(true);
    b.onFailure();
    expect(b.state).toBe("open");
  });

  it("opens when the error rate over the window passes the threshold with enough volume", () => {
    let now = 0;
    const b = new CircuitBreaker(cfg, () => now);
    for (let i = 0; i < 18; i++) b.onSuccess();
    b.onFailure();
    expect(b.state).toBe("closed"); // 19 requests: below the minimum volume
    b.onSuccess();
    b.onSuccess();
    b.onFailure(); // 22 requests, 2 failures = 9% > 5%
    expect(b.state).toBe("open");
  });

  it("forgets failures that left the window", () => {
    let now = 0;
    const b = new CircuitBreaker(cfg, () => now);
    for (let i = 0; i < 3; i++) b.onFailure();
    for (let i = 0; i < 20; i++) b.onSuccess();
    now += 61_000;
    for (let i = 0; i < 25; i++) b.onSuccess();
    expect(b.errorRate()).toBe(0);
  });
});
