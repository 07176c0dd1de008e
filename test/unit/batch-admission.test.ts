// Interactive first, at the admission gate: batch items yield to interactive requests on
// the same provider (a quiet period after them, a lower cap while they keep coming) and
// never exceed the provider's batch cap. A clock of the test's own: nothing waits.
import { describe, expect, it } from "vitest";
import { AdmissionGate } from "../../gateway/batch/admission.ts";
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
});
