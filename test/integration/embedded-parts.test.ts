// The embedded engine's pure pieces: stop-string matching on text and per-model admission.
import { describe, expect, it } from "vitest";
import { QueueFullError, SlotGate } from "../../native/slots.ts";
import { StopMatcher } from "../../native/stop.ts";

function run(stops: string[], pieces: string[]): { out: string; stopped: boolean; emits: string[] } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    emits.push(r.emit);
    if (r.stopped) return { out: emits.join(""), stopped: true, emits };
  }
  emits.push(m.flush());
  return { out: emits.join(""), stopped: false, emits };
}

describe("StopMatcher", () => {
  it("ends the text exactly before the first stop string, across piece boundaries", () => {
    expect(run(["Lily"], [", a girl named L", "il", "y. She"])).toMatchObject({ out: ", a girl named ", stopped: true });
    expect(run(["\n\n", "END"], ["one\n", "\ntwo"])).toMatchObject({ out: "one", stopped: true });
    expect(run(["b", "abc"], ["xxabc"])).toMatchObject({ out: "xx", stopped: true }); // earliest match wins
  });

  it("holds back only what may start a stop string, and releases it when it does not", () => {
    const r = run(["Lily"], ["a L", "o", "ng day"]);
    expect(r).toMatchObject({ out: "a Long day", stopped: false });
    expect(r.emits[0]).toBe("a "); // "L" held back
    expect(r.emits[1]).toBe("Lo");
    expect(run([], ["free", " text"]).emits).toEqual(["free", " text", ""]);
    expect(run(["zz"], ["z"]).out).toBe("z"); // flushed at the end
  });
});

describe("SlotGate", () => {
  const never = new AbortController().signal;

  it("runs `capacity` at once, queues FIFO up to maxQueue, refuses beyond", async () => {
    const g = new SlotGate(2, 2);
    const r1 = await g.acquire(never);
    const r2 = await g.acquire(never);
    const order: number[] = [];
    const w3 = g.acquire(never).then((r) => (order.push(3), r));
    const w4 = g.acquire(never).then((r) => (order.push(4), r));
    await expect(g.acquire(never)).rejects.toBeInstanceOf(QueueFullError);
    expect([g.active, g.waiting]).toEqual([2, 2]);
    r1();
    r1(); // idempotent
    const r3 = await w3;
    expect([g.active, g.waiting]).toEqual([2, 1]);
    r2();
    const r4 = await w4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect([g.active, g.waiting]).toEqual([0, 0]);
  });

  it("a waiter whose client leaves is dropped from the queue", async () => {
    const g = new SlotGate(1, 4);
    const r1 = await g.acquire(never);
    const ac = new AbortController();
    const gone = g.acquire(ac.signal);
    const next = g.acquire(never);
    ac.abort(new Error("client gone"));
    await expect(gone).rejects.toThrow("client gone");
    expect(g.waiting).toBe(1);
    r1();
    (await next)();
    expect(g.active).toBe(0);
  });

  it("maxQueue 0 means no waiting at all", async () => {
    const g = new SlotGate(1, 0);
    await g.acquire(never);
    await expect(g.acquire(never)).rejects.toThrow(/busy/);
  });
});
