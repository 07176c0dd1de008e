// Interactive first, at the admission gate: batch items yield to interactive requests on
// the same provider (a quiet period after them, a lower cap while they keep coming) and
// never exceed the provider's batch cap. A clock of the test's own: nothing waits.
import { describe, expect, it } from "vitest";
import { AdmissionGate } from "../../gateway/batch/admission.ts";
import { batchIsLate } from "../../gateway/batch/deadline.ts";
import type { Router } from "../../gateway/router/router.ts";

/** One model group, "m", served by the providers named. */
const router = (...providers: string[]): Router => ({ group: (model: string) => (model === "m" ? { deployments: providers.map((name) => ({ provider: { name } })) } : undefined) }) as unknown as Router;

function gate(opts: { quietMs?: number; busyCap?: number; cap?: number } = {}): { gate: AdmissionGate; clock: { t: number } } {
  const clock = { t: 1000 };
  const g = new AdmissionGate({ router: router("local"), providerConcurrency: opts.cap ?? 3, perProvider: {}, interactiveThreshold: 0, quietMs: opts.quietMs, busyCap: opts.busyCap, now: () => clock.t });
  return { gate: g, clock };
}

const started = (r: ReturnType<AdmissionGate["tryStart"]>): (() => void) => {
  if ("wait" in r) throw new Error(`expected a start, got wait ${r.wait}`);
  return r.release;
};

describe("batch admission", () => {
  it("no batch start while an interactive request is in flight, nor within the quiet period after it; told when to ask again", () => {
    const { gate: g, clock } = gate({ quietMs: 50 });
    const end = g.interactiveStarted("m");
    expect(g.tryStart("m")).toEqual({ wait: "interactive" });
    clock.t += 10;
    end();
    clock.t += 20;
    expect(g.tryStart("m")).toEqual({ wait: "interactive", retryInMs: 30 });
    clock.t += 30;
    expect("release" in g.tryStart("m")).toBe(true);
  });

  it("while interactive traffic came within the last second, at most busyCap batch items run; the full cap once it has been gone a second", () => {
    const { gate: g, clock } = gate({ quietMs: 50, busyCap: 1, cap: 3 });
    g.interactiveStarted("m")();
    clock.t += 60;
    const first = started(g.tryStart("m"));
    expect(g.tryStart("m")).toEqual({ wait: "capacity" });
    clock.t += 1000;
    started(g.tryStart("m"));
    started(g.tryStart("m"));
    expect(g.tryStart("m")).toEqual({ wait: "capacity" });
    first();
    expect("release" in g.tryStart("m")).toBe(true);
  });

  it("another provider's interactive traffic does not hold this one's batch items; quietMs 0 holds nothing once requests end", () => {
    const clock = { t: 0 };
    const g = new AdmissionGate({ router: { group: (m: string) => ({ deployments: [{ provider: { name: m === "a" ? "pa" : "pb" } }] }) } as unknown as Router, providerConcurrency: 2, perProvider: {}, interactiveThreshold: 0, quietMs: 100, now: () => clock.t });
    g.interactiveStarted("a")();
    expect(g.tryStart("a")).toMatchObject({ wait: "interactive" });
    expect("release" in g.tryStart("b")).toBe(true);

    const { gate: none } = gate({ quietMs: 0 });
    none.interactiveStarted("m")();
    expect("release" in none.tryStart("m")).toBe(true);
  });

  it("a late batch is not starved: under steady interactive traffic it runs one item at a time per provider, not preempted; an on-time one runs nothing", () => {
    const clock = { t: 1000 };
    const g = new AdmissionGate({ router: router("local"), providerConcurrency: 3, perProvider: {}, interactiveThreshold: 0, quietMs: 50, busyCap: 1, preempt: true, now: () => clock.t });
    let preempted = 0;
    // 20 req/s, each overlapping the next: an interactive request is always in flight or just ended.
    let end = g.interactiveStarted("m");
    for (let i = 0; i < 40; i++) {
      clock.t += 50;
      const next = g.interactiveStarted("m");
      end();
      end = next;
      expect(g.tryStart("m")).toMatchObject({ wait: "interactive" });
      if (i % 10 === 0) {
        const late = started(g.tryStart("m", () => preempted++, { late: true }));
        // Its share is one: a second late item waits for the first.
        expect(g.tryStart("m", undefined, { late: true })).toEqual({ wait: "capacity" });
        // The next interactive request does not cancel it (it would run nothing again).
        g.interactiveStarted("m")();
        expect(preempted).toBe(0);
        late();
      }
    }
    end();
  });

  it("a late batch's share is never taken where the provider's cap is 0", () => {
    const g = new AdmissionGate({ router: router("local"), providerConcurrency: 2, perProvider: { local: 0 }, interactiveThreshold: 0, now: () => 0 });
    const end = g.interactiveStarted("m");
    expect(g.tryStart("m", undefined, { late: true })).toEqual({ wait: "capacity" });
    end();
  });

  it("the deadline estimate calls a batch late when it has run nothing for a tenth of its window, or its pace does not fit the time left; not before it can tell", () => {
    const day = 86_400;
    // Just started, nothing ended: too early to say.
    expect(batchIsLate({ itemsLeft: 1000, itemsEnded: 0, runningSeconds: 60, secondsLeft: day - 60, windowSeconds: day })).toBe(false);
    // Starved for 2.5 h of 24 h: late.
    expect(batchIsLate({ itemsLeft: 1000, itemsEnded: 0, runningSeconds: 9000, secondsLeft: day - 9000, windowSeconds: day })).toBe(true);
    // 100 items in an hour, 1000 left, 23 h left: on time.
    expect(batchIsLate({ itemsLeft: 1000, itemsEnded: 100, runningSeconds: 3600, secondsLeft: day - 3600, windowSeconds: day })).toBe(false);
    // 10 items in 20 h, 1000 left, 4 h left: late.
    expect(batchIsLate({ itemsLeft: 1000, itemsEnded: 10, runningSeconds: 72_000, secondsLeft: 14_400, windowSeconds: day })).toBe(true);
    // Nothing left: never late.
    expect(batchIsLate({ itemsLeft: 0, itemsEnded: 0, runningSeconds: 80_000, secondsLeft: 100, windowSeconds: day })).toBe(false);
  });
});
