// The lab supervisor's state machine (gateway/lab/supervisor.ts) with fake children
// and a fake clock: time moves only when a test moves it, so backoffs, grace periods
// and startup timeouts are exact and take no wall-clock time.
import { describe, expect, it } from "vitest";
import {
  IllegalTransitionError,
  PermanentFailure,
  SUPERVISOR_STATES,
  Supervisor,
  SupervisorStartError,
  TRANSITIONS,
  assertTransition,
  canTransition,
  type ChildHandle,
  type ExitInfo,
  type SupervisorOptions,
  type SupervisorState,
  type Timers,
  type TransitionEvent,
} from "../../gateway/lab/supervisor.ts";
import { RingBuffer } from "../../gateway/lab/ring-buffer.ts";

/** Lets pending promise callbacks run (no timers involved). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class FakeClock implements Timers {
  t = 1_000_000;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  readonly now = (): number => this.t;
  readonly setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  readonly clearTimeout = (h: unknown): void => {
    this.timers.delete(h as number);
  };

  /** Delays of the timers still pending, from now. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order and letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

interface Behaviour {
  /** What the child does on a graceful stop: exit (default) or ignore it. */
  onGraceful?: "exit" | "ignore";
  /** Its start throws. */
  spawnFails?: boolean;
  output?: string[];
}

class FakeChild implements ChildHandle {
  readonly pid: number;
  readonly stops: ("graceful" | "force")[] = [];
  readonly behaviour: Behaviour;
  started = false;
  exited: ExitInfo | null = null;
  private readonly cbs: ((info: ExitInfo) => void)[] = [];
  private readyFns!: { resolve: () => void; reject: (e: Error) => void };
  readonly readyPromise = new Promise<void>((resolve, reject) => (this.readyFns = { resolve, reject }));
  healthy = false;

  constructor(pid: number, behaviour: Behaviour) {
    this.pid = pid;
    this.behaviour = behaviour;
    this.readyPromise.catch(() => {});
  }

  start(): void {
    if (this.behaviour.spawnFails) throw new Error("ENOENT: no such file");
    this.started = true;
  }

  stop(signal: "graceful" | "force"): void {
    this.stops.push(signal);
    if (signal === "force") queueMicrotask(() => this.exit({ code: null, signal: "SIGKILL" }));
    else if (this.behaviour.onGraceful !== "ignore") queueMicrotask(() => this.exit({ code: null, signal: "SIGTERM" }));
  }

  onExit(cb: (info: ExitInfo) => void): void {
    this.cbs.push(cb);
  }

  lines(): string[] {
    return this.behaviour.output ?? [];
  }

  ready(): void {
    this.readyFns.resolve();
  }

  refuse(err: Error): void {
    this.readyFns.reject(err);
  }

  exit(info: ExitInfo): void {
    if (this.exited) return;
    this.exited = info;
    for (const cb of this.cbs) cb(info);
  }
}

function harness(opts: Partial<SupervisorOptions<FakeChild>> = {}, behaviour: (n: number) => Behaviour = () => ({})) {
  const clock = new FakeClock();
  const children: FakeChild[] = [];
  const events: TransitionEvent[] = [];
  const sup = new Supervisor<FakeChild>({
    name: "srv",
    spawn: () => {
      const c = new FakeChild(100 + children.length, behaviour(children.length));
      children.push(c);
      return c;
    },
    ready: (child) => child.readyPromise,
    startupTimeoutMs: 5_000,
    stopGraceMs: 2_000,
    restart: "on-failure",
    backoffInitialMs: 1_000,
    backoffMaxMs: 3_000,
    maxRestarts: 3,
    restartWindowMs: 60_000,
    now: clock.now,
    timers: clock,
    ...opts,
  });
  sup.events.on("transition", (e) => events.push(e));
  const last = (): FakeChild => children[children.length - 1];
  const path = (): string => events.map((e) => e.to).join(" ");
  return { sup, clock, children, events, last, path };
}

/** A promise's outcome without letting a rejection go unhandled. */
function outcome<T>(p: Promise<T>): { done: boolean; value?: T; error?: unknown } {
  const o: { done: boolean; value?: T; error?: unknown } = { done: false, value: undefined, error: undefined };
  p.then(
    (value) => Object.assign(o, { done: true, value }),
    (error: unknown) => Object.assign(o, { done: true, error }),
  );
  return o;
}

describe("transition table", () => {
  it("allows exactly what the table lists and throws on anything else", () => {
    for (const from of SUPERVISOR_STATES) {
      for (const to of SUPERVISOR_STATES) {
        const allowed = (TRANSITIONS[from] as readonly SupervisorState[]).includes(to);
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(allowed);
        if (allowed) expect(() => assertTransition("x", from, to)).not.toThrow();
        else expect(() => assertTransition("x", from, to)).toThrow(IllegalTransitionError);
      }
    }
    // A few that would be bugs.
    for (const [from, to] of [
      ["stopped", "running"],
      ["stopped", "stopping"],
      ["running", "starting"],
      ["backoff", "running"],
      ["failed", "running"],
      ["stopping", "running"],
      ["running", "running"],
    ] as [SupervisorState, SupervisorState][]) {
      expect(() => assertTransition("srv", from, to)).toThrow(`supervisor srv: illegal transition ${from} -> ${to}`);
    }
  });

  it("every allowed transition is taken by some real sequence of events, and no other", async () => {
    const seen = new Set<string>();
    const record = (h: ReturnType<typeof harness>): void => {
      for (const e of h.events) seen.add(`${e.from}->${e.to}`);
    };

    // start, ready, stop: stopped->starting->running->stopping->stopped
    let h = harness();
    let p = h.sup.start();
    h.last().ready();
    await p;
    await h.sup.stop();
    record(h);

    // stop while starting (starting->stopping); crash while running (running->backoff),
    // the backoff timer (backoff->starting), exit before ready (starting->backoff), stop in backoff (backoff->stopped)
    h = harness();
    void h.sup.start().catch(() => {});
    await h.sup.stop();
    void h.sup.start().catch(() => {});
    h.last().ready();
    await h.clock.advance(0);
    h.last().exit({ code: 1, signal: null });
    await h.clock.advance(1_000);
    h.last().exit({ code: 1, signal: null });
    await h.sup.stop();
    record(h);

    // never: crash while running (running->failed), operator start (failed->starting),
    // exit before ready (starting->failed), acknowledge (failed->stopped)
    h = harness({ restart: "never" });
    p = h.sup.start();
    h.last().ready();
    await p;
    h.last().exit({ code: 2, signal: null });
    void h.sup.start().catch(() => {});
    h.last().exit({ code: 2, signal: null });
    await h.sup.stop();
    record(h);

    // a clean exit the policy does not restart (running->stopped)
    h = harness();
    p = h.sup.start();
    h.last().ready();
    await p;
    h.last().exit({ code: 0, signal: null });
    record(h);

    // startup timeout, then the stop ends in backoff (stopping->backoff)
    h = harness();
    void h.sup.start().catch(() => {});
    await h.clock.advance(5_000);
    record(h);

    // a start that failed for good, child still alive (stopping->failed)
    h = harness();
    void h.sup.start().catch(() => {});
    h.last().refuse(new PermanentFailure("no GPU"));
    await h.clock.advance(0);
    record(h);

    const allowed = new Set(SUPERVISOR_STATES.flatMap((from) => TRANSITIONS[from].map((to) => `${from}->${to}`)));
    expect([...seen].sort()).toEqual([...allowed].sort());
  });
});

describe("supervisor", () => {
  it("starts, waits for ready, reports running; every transition is an event", async () => {
    const h = harness();
    const p = outcome(h.sup.start());
    expect(h.sup.state).toBe("starting");
    await h.clock.advance(100);
    expect(p.done).toBe(false);
    h.last().ready();
    await h.clock.advance(0);
    expect(p).toMatchObject({ done: true, error: undefined });
    expect(h.sup.status()).toMatchObject({ name: "srv", state: "running", pid: 100, restarts: 0, lastExit: null, lastError: null, failure: null, since: h.clock.t });
    expect(h.events).toEqual([
      { name: "srv", from: "stopped", to: "starting", reason: "start requested", at: h.clock.t - 100 },
      { name: "srv", from: "starting", to: "running", reason: "ready", at: h.clock.t },
    ]);
    // Asking again while running changes nothing.
    await h.sup.start();
    expect(h.children).toHaveLength(1);
    // No startup-timeout timer is left behind.
    expect(h.clock.pending()).toEqual([]);
  });

  it("is ready when start() resolves when it has neither ready nor healthCheck", async () => {
    const h = harness({ ready: undefined });
    await h.sup.start();
    expect(h.sup.state).toBe("running");
  });

  it("polls healthCheck every healthIntervalMs until it answers true", async () => {
    let checks = 0;
    const h = harness({
      ready: undefined,
      healthIntervalMs: 250,
      healthCheck: async (child) => {
        checks++;
        return child.healthy;
      },
    });
    const p = outcome(h.sup.start());
    await h.clock.advance(1_000);
    expect(checks).toBe(5); // at 0, 250, 500, 750, 1000
    expect(h.sup.state).toBe("starting");
    h.last().healthy = true;
    await h.clock.advance(250);
    expect(checks).toBe(6);
    expect(p).toMatchObject({ done: true, error: undefined });
    expect(h.sup.state).toBe("running");
  });

  it("restarts a crashed child after a backoff that doubles up to its cap", async () => {
    const h = harness({ maxRestarts: 10 });
    await (async () => {
      const p = h.sup.start();
      h.last().ready();
      await p;
    })();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      h.last().exit({ code: 1, signal: null });
      expect(h.sup.state).toBe("backoff");
      delays.push(h.clock.pending()[0]);
      // Not a moment before the backoff is over.
      await h.clock.advance(delays[i] - 1);
      expect(h.sup.state).toBe("backoff");
      const restarted = outcome(h.sup.start()); // a start asked in backoff waits for the restart
      await h.clock.advance(1);
      expect(h.sup.state).toBe("starting");
      h.last().ready();
      await h.clock.advance(0);
      expect(restarted).toMatchObject({ done: true, error: undefined });
    }
    expect(delays).toEqual([1_000, 2_000, 3_000, 3_000]);
    expect(h.sup.status()).toMatchObject({ state: "running", restarts: 4, recentCrashes: 4, lastExit: { code: 1, signal: null }, lastError: "srv exited with code 1" });
    expect(h.children).toHaveLength(5);
    const backoff = h.events.find((e) => e.to === "backoff")!;
    expect(backoff).toMatchObject({ from: "running", reason: "srv exited with code 1; restarting in 1000 ms", exit: { code: 1, signal: null } });
  });

  it("gives up after max_restarts crashes in the window: failed, with the last exit code and output as the reason", async () => {
    const h = harness({ maxRestarts: 2 }, (n) => ({ output: [`starting #${n}`, "error: cannot bind 127.0.0.1:8080"] }));
    const p = outcome(h.sup.start());
    h.last().exit({ code: 7, signal: null }); // before ready: counts as a crash
    await h.clock.advance(1_000);
    h.last().exit({ code: 7, signal: null });
    await h.clock.advance(2_000);
    expect(h.sup.state).toBe("starting");
    expect(p.done).toBe(false); // still trying
    h.last().exit({ code: 7, signal: null });
    await h.clock.advance(0);
    expect(h.sup.state).toBe("failed");
    expect(h.path()).toBe("starting backoff starting backoff starting failed");
    const st = h.sup.status();
    expect(st.failure).toMatchObject({ permanent: false, exit: { code: 7, signal: null }, at: h.clock.t });
    expect(st.failure!.reason).toBe(
      "srv crashed 3 times within 60 s, not restarted again; last: srv exited with code 7 before it was ready; last output: starting #2 | error: cannot bind 127.0.0.1:8080",
    );
    expect(st.lastExit).toEqual({ code: 7, signal: null });
    expect(p.error).toBeInstanceOf(SupervisorStartError);
    expect(p.error).toMatchObject({ state: "failed", message: st.failure!.reason });
    // Nothing left to fire: it stays failed.
    expect(h.clock.pending()).toEqual([]);
    await h.clock.advance(600_000);
    expect(h.sup.state).toBe("failed");
    expect(h.children).toHaveLength(3);
  });

  it("crashes older than the window do not count toward max_restarts", async () => {
    const h = harness({ maxRestarts: 1, restartWindowMs: 10_000 });
    const up = async (): Promise<void> => {
      await h.clock.advance(h.clock.pending()[0] ?? 0);
      h.last().ready();
      await h.clock.advance(0);
    };
    void h.sup.start();
    await up();
    h.last().exit({ code: 1, signal: null });
    await up();
    await h.clock.advance(10_000); // the first crash leaves the window
    h.last().exit({ code: 1, signal: null });
    expect(h.sup.state).toBe("backoff");
    expect(h.sup.status().recentCrashes).toBe(1);
    expect(h.clock.pending()).toEqual([1_000]); // the backoff starts over too
  });

  it("an operator's start from failed tries again with a clean crash history", async () => {
    const h = harness({ maxRestarts: 0 });
    void h.sup.start().catch(() => {});
    h.last().ready();
    await h.clock.advance(0);
    h.last().exit({ code: 3, signal: null });
    expect(h.sup.state).toBe("failed");
    expect(h.sup.status().recentCrashes).toBe(1);
    const again = outcome(h.sup.start());
    expect(h.sup.state).toBe("starting");
    expect(h.sup.status()).toMatchObject({ recentCrashes: 0, restarts: 1, failure: null, lastError: "srv exited with code 3" });
    h.last().ready();
    await h.clock.advance(0);
    expect(again).toMatchObject({ done: true, error: undefined });
    // Starts and stops asked by the operator never count as crashes.
    const restarted = h.sup.restart();
    await h.clock.advance(0);
    expect(h.sup.state).toBe("starting");
    h.last().ready();
    await restarted;
    expect(h.sup.status()).toMatchObject({ state: "running", recentCrashes: 0, restarts: 2 });
  });

  it("stop: graceful first, forced after the grace period when the child ignores it", async () => {
    const h = harness({}, () => ({ onGraceful: "ignore" }));
    const p = h.sup.start();
    h.last().ready();
    await p;
    const stopped = outcome(h.sup.stop());
    expect(h.sup.state).toBe("stopping");
    expect(h.last().stops).toEqual(["graceful"]);
    await h.clock.advance(1_999);
    expect(h.sup.state).toBe("stopping");
    expect(stopped.done).toBe(false);
    await h.clock.advance(1);
    expect(h.last().stops).toEqual(["graceful", "force"]);
    expect(stopped).toMatchObject({ done: true, error: undefined });
    expect(h.sup.status()).toMatchObject({ state: "stopped", lastExit: { code: null, signal: "SIGKILL" }, lastError: null, recentCrashes: 0 });
    expect(h.path()).toBe("starting running stopping stopped");
  });

  it("stop: a child that ends on the graceful request is never forced", async () => {
    const h = harness();
    const p = h.sup.start();
    h.last().ready();
    await p;
    await h.sup.stop();
    await h.clock.advance(10_000);
    expect(h.last().stops).toEqual(["graceful"]);
    expect(h.sup.status().lastExit).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("a start that does not become ready in time is stopped and counts as a crash", async () => {
    const h = harness({ maxRestarts: 0 }, () => ({ onGraceful: "ignore" }));
    const p = outcome(h.sup.start());
    await h.clock.advance(4_999);
    expect(h.sup.state).toBe("starting");
    await h.clock.advance(1);
    expect(h.sup.state).toBe("stopping");
    await h.clock.advance(2_000); // the grace period, then forced
    expect(h.last().stops).toEqual(["graceful", "force"]);
    expect(h.sup.state).toBe("failed");
    expect(p.error).toMatchObject({ message: expect.stringMatching(/srv was not ready within 5000 ms/) });
    expect(h.sup.status().failure).toMatchObject({ permanent: false, exit: null });
    // Becoming ready after the timeout changes nothing.
    h.last().ready();
    await h.clock.advance(0);
    expect(h.sup.state).toBe("failed");
  });

  it("a child that says it cannot start goes to failed at once, whatever the policy", async () => {
    const h = harness({ restart: "always" });
    const p = outcome(h.sup.start());
    h.last().refuse(new PermanentFailure("no prebuilt binary works here"));
    await h.clock.advance(0);
    expect(h.sup.status()).toMatchObject({ state: "failed", failure: { permanent: true, exit: null, reason: "no prebuilt binary works here" } });
    expect(p.error).toMatchObject({ state: "failed", failure: { permanent: true } });
    expect(h.children).toHaveLength(1);
  });

  it("a child that cannot be spawned at all is a crash without a stop", async () => {
    const h = harness({ maxRestarts: 1 }, () => ({ spawnFails: true }));
    const p = outcome(h.sup.start());
    await h.clock.advance(0);
    expect(h.sup.state).toBe("backoff");
    expect(h.sup.status().lastError).toBe("srv could not be started: ENOENT: no such file");
    await h.clock.advance(1_000);
    expect(h.sup.state).toBe("failed");
    expect(p.error).toBeInstanceOf(SupervisorStartError);
    expect(h.children.every((c) => c.stops.length === 0)).toBe(true);
  });

  it("follows the restart policy for exits nobody asked for", async () => {
    const cases: [SupervisorOptions<FakeChild>["restart"], ExitInfo, SupervisorState][] = [
      ["on-failure", { code: 0, signal: null }, "stopped"],
      ["on-failure", { code: 1, signal: null }, "backoff"],
      ["on-failure", { code: null, signal: "SIGSEGV" }, "backoff"],
      ["always", { code: 0, signal: null }, "backoff"],
      ["never", { code: 1, signal: null }, "failed"],
      ["never", { code: 0, signal: null }, "stopped"],
    ];
    for (const [restart, exit, expected] of cases) {
      const h = harness({ restart });
      const p = h.sup.start();
      h.last().ready();
      await p;
      h.last().exit(exit);
      expect(h.sup.state, `${restart} ${JSON.stringify(exit)}`).toBe(expected);
      expect(h.sup.status().lastExit).toEqual(exit);
    }
  });

  it("a stop while starting or in backoff ends there: start() rejects, no restart happens", async () => {
    const h = harness();
    const p = outcome(h.sup.start());
    await h.sup.stop();
    expect(p.error).toMatchObject({ state: "stopped" });
    expect(h.sup.state).toBe("stopped");
    expect(h.clock.pending()).toEqual([]);

    const q = h.sup.start();
    h.last().ready();
    await q;
    h.last().exit({ code: 1, signal: null });
    expect(h.sup.state).toBe("backoff");
    const waiting = outcome(h.sup.start());
    await h.sup.stop();
    expect(waiting.error).toMatchObject({ state: "stopped" });
    await h.clock.advance(60_000);
    expect(h.sup.state).toBe("stopped");
    expect(h.children).toHaveLength(2);
  });

  it("a stop during the clean-up of a failed start wins: it ends stopped, not in backoff", async () => {
    const h = harness({}, () => ({ onGraceful: "ignore" }));
    void h.sup.start().catch(() => {});
    await h.clock.advance(5_000); // startup timeout -> stopping (plan: backoff)
    expect(h.sup.state).toBe("stopping");
    const stopped = h.sup.stop();
    await h.clock.advance(2_000);
    await stopped;
    expect(h.sup.state).toBe("stopped");
    expect(h.clock.pending()).toEqual([]);
  });

  it("the exit of an earlier incarnation changes nothing", async () => {
    const h = harness();
    const p = h.sup.start();
    const first = h.last();
    first.ready();
    await p;
    const restarted = h.sup.restart();
    await h.clock.advance(0);
    h.last().ready();
    await restarted;
    first.exit({ code: 9, signal: null }); // late, duplicate
    expect(h.sup.status()).toMatchObject({ state: "running", lastExit: { code: null, signal: "SIGTERM" } });
  });

  it("forwards its children's output lines as 'log' events", async () => {
    const logs: string[] = [];
    const h = harness({
      spawn: () => {
        const c = new FakeChild(1, {});
        (c as ChildHandle).onLog = (cb) => queueMicrotask(() => cb({ stream: "stderr", line: "hello", at: 5 }));
        return c;
      },
    });
    h.sup.events.on("log", (l) => logs.push(`${l.name} ${l.stream} ${l.line}`));
    void h.sup.start().catch(() => {});
    await h.clock.advance(0);
    expect(logs).toEqual(["srv stderr hello"]);
  });
});

describe("RingBuffer", () => {
  it("keeps the last `capacity` items in order", () => {
    const r = new RingBuffer<number>(3);
    expect(r.toArray()).toEqual([]);
    for (let i = 1; i <= 5; i++) r.push(i);
    expect(r.toArray()).toEqual([3, 4, 5]);
    expect(r.toArray(2)).toEqual([4, 5]);
    expect(r.size).toBe(3);
    r.clear();
    expect(r.size).toBe(0);
    expect(() => new RingBuffer(0)).toThrow(RangeError);
  });
});
