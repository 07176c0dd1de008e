// The tray's menu is rebuilt once per burst of events and shows a change within its window
// (electron/coalesce.ts), not while it is open; notifications are rate-limited
// (electron/notifications.ts); the gateway child is restarted when it dies, with backoff,
// and given up on after a crash loop (electron/gateway-process.ts). All on a manual clock.
import { describe, expect, it } from "vitest";
import { Coalescer, type Timers } from "../../electron/coalesce.ts";
import { GatewaySupervisor, gatewayLaunch, spawnNodeGateway, type GatewayChild, type GatewayProcessState } from "../../electron/gateway-process.ts";
import { applyEvent, applySnapshot, emptyLabState, type LabState } from "../../electron/lab-state.ts";
import { NoticeLimiter, noticeFor } from "../../electron/notifications.ts";

/** Timers driven by the test: advance(ms) runs what falls due, in order. */
function manualClock() {
  let now = 0;
  let seq = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const id = ++seq;
      due.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h) => void due.delete(h as number),
  };
  return {
    timers,
    now: () => now,
    pending: () => due.size,
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        const next = [...due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!next) break;
        due.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
  };
}

describe("coalescing menu updates", () => {
  it("a burst of events becomes one rebuild, at the end of the window (within 2 s of the first)", () => {
    const clock = manualClock();
    const flushedAt: number[] = [];
    const c = new Coalescer({ windowMs: 750, flush: () => flushedAt.push(clock.now()), timers: clock.timers });
    for (let i = 0; i < 50; i++) {
      c.changed();
      clock.advance(10); // 50 events over 500 ms
    }
    clock.advance(1000);
    expect(flushedAt).toEqual([750]);
    expect(flushedAt[0]!).toBeLessThanOrEqual(2000);
  });

  it("a steady stream (a summary each second) rebuilds once per window, not once per event", () => {
    const clock = manualClock();
    let flushes = 0;
    const c = new Coalescer({ windowMs: 750, flush: () => flushes++, timers: clock.timers });
    for (let i = 0; i < 100; i++) {
      c.changed();
      clock.advance(100); // ten events a second for 10 s
    }
    clock.advance(1000);
    expect(flushes).toBeGreaterThanOrEqual(10);
    expect(flushes).toBeLessThanOrEqual(14); // 100 events, at most one flush per 750 ms
  });

  it("no change, no rebuild", () => {
    const clock = manualClock();
    let flushes = 0;
    new Coalescer({ windowMs: 750, flush: () => flushes++, timers: clock.timers });
    clock.advance(10_000);
    expect(flushes).toBe(0);
  });

  it("nothing is rebuilt while the menu is open; the change shows when it closes", () => {
    const clock = manualClock();
    let flushes = 0;
    const c = new Coalescer({ windowMs: 750, flush: () => flushes++, timers: clock.timers });
    c.changed();
    c.hold();
    c.changed();
    clock.advance(5000);
    expect(flushes).toBe(0);
    c.release();
    expect(flushes).toBe(1);
    c.hold();
    c.release(); // nothing pending: nothing to do
    expect(flushes).toBe(1);
  });

  it("after stop (quitting) nothing more is scheduled", () => {
    const clock = manualClock();
    let flushes = 0;
    const c = new Coalescer({ windowMs: 750, flush: () => flushes++, timers: clock.timers });
    c.changed();
    c.stop();
    c.changed();
    clock.advance(5000);
    expect([flushes, clock.pending()]).toEqual([0, 0]);
  });
});

function lab(): LabState {
  return applySnapshot(emptyLabState(), {
    data: [{ name: "openai", type: "openai", enabled: true, available: true, health: { healthy: true, detail: "ok" }, deployments: [] }],
    groups: [],
    processes: [{ name: "lab-llama", provider: "lab-llama", state: "running", pid: 1, recentCrashes: 0 }],
    budgets: [],
  });
}

describe("notifications", () => {
  it("a provider going down, a crash loop and a budget crossed each make a notice; other events none", () => {
    const s = lab();
    expect(noticeFor(s, "provider", { change: "health", provider: "openai", healthy: false, detail: "HTTP 401" })).toEqual({
      key: "provider-down:openai",
      title: "openai is down",
      body: "HTTP 401",
    });
    expect(noticeFor(s, "process", { name: "lab-llama", from: "backoff", to: "failed", reason: "crashed 3 times" })?.title).toBe("lab-llama stopped restarting");
    expect(noticeFor(s, "budget", { kind: "tier", name: "cloud", measure: "daily_usd", limit: 5, value: 5.25, exceeded: true })).toEqual({
      key: "budget:tier/cloud/daily_usd",
      title: "Budget crossed: cloud",
      body: "daily spend 5.25 over the limit of 5",
    });
    expect(noticeFor(s, "provider", { change: "health", provider: "openai", healthy: true })).toBeUndefined();
    expect(noticeFor(s, "summary", { requests_per_s: 1 })).toBeUndefined();
    expect(noticeFor(s, "breaker", { provider: "openai", deployment: "d", from: "closed", to: "open" })).toBeUndefined();
  });

  it("a provider already down, or turned off, is not announced again", () => {
    const down = applyEvent(lab(), "provider", { change: "health", provider: "openai", healthy: false });
    expect(noticeFor(down, "provider", { change: "health", provider: "openai", healthy: false })).toBeUndefined();
    const off = applyEvent(lab(), "provider", { change: "enabled", provider: "openai", enabled: false });
    expect(noticeFor(off, "provider", { change: "health", provider: "openai", healthy: false })).toBeUndefined();
  });

  it("one crash is a restart, the second within the window is a crash loop", () => {
    let s = lab();
    const crash = { name: "lab-llama", from: "running", to: "backoff", reason: "exited with code 3" };
    expect(noticeFor(s, "process", crash)).toBeUndefined();
    s = applyEvent(s, "process", crash);
    s = applyEvent(s, "process", { name: "lab-llama", from: "backoff", to: "running" });
    expect(noticeFor(s, "process", crash)?.title).toBe("lab-llama keeps crashing");
  });

  it("a flapping provider speaks once per 10 minutes, and all notices together at most 3 a minute", () => {
    let now = 0;
    const limiter = new NoticeLimiter({ now: () => now });
    const flap = { key: "provider-down:openai", title: "", body: "" };
    expect(limiter.allow(flap)).toBe(true);
    now = 9 * 60_000;
    expect(limiter.allow(flap)).toBe(false);
    now = 10 * 60_000;
    expect(limiter.allow(flap)).toBe(true);
    const others = ["a", "b", "c", "d"].map((k) => limiter.allow({ key: k, title: "", body: "" }));
    expect(others).toEqual([true, true, false, false]); // with the flap's, three in this minute
    now += 60_000;
    expect(limiter.allow({ key: "d", title: "", body: "" })).toBe(true);
  });
});

/** A gateway child the test ends by hand. */
function fakeChild(pid: number) {
  let exitCb: ((code: number | null, signal: string | null) => void) | undefined;
  let alive = true;
  const child: GatewayChild = {
    name: "gateway",
    pid,
    alive: () => alive,
    terminate: () => {},
    kill: () => {},
    exited: () => Promise.resolve(),
    onExit: (cb) => void (exitCb = cb),
  };
  return { child, exit: (code: number) => ((alive = false), exitCb?.(code, null)) };
}

describe("the gateway child", () => {
  it("is restarted with growing backoff when it dies, and given up on after a crash loop", () => {
    const clock = manualClock();
    const children: ReturnType<typeof fakeChild>[] = [];
    const states: [GatewayProcessState, string][] = [];
    const sup = new GatewaySupervisor({
      spawn: () => {
        const c = fakeChild(100 + children.length);
        children.push(c);
        return c.child;
      },
      backoffMs: [500, 2000],
      maxCrashes: 2,
      windowMs: 60_000,
      now: clock.now,
      timers: clock.timers,
      onState: (s, d) => states.push([s, d]),
    });
    sup.start();
    expect(children).toHaveLength(1);
    children[0]!.exit(1);
    expect(sup.state).toBe("restarting");
    clock.advance(499);
    expect(children).toHaveLength(1);
    clock.advance(1);
    expect(children).toHaveLength(2); // first restart after 500 ms
    children[1]!.exit(1);
    clock.advance(1999);
    expect(children).toHaveLength(2);
    clock.advance(1);
    expect(children).toHaveLength(3); // second after 2 s
    children[2]!.exit(134);
    clock.advance(60_000);
    expect(children).toHaveLength(3);
    expect(sup.state).toBe("gave-up");
    expect(states.at(-1)![1]).toBe("the gateway exited with code 134; it crashed 3 times in 60 s, so it is not restarted again");
  });

  it("is not restarted once the app detaches it to quit", () => {
    const clock = manualClock();
    const children: ReturnType<typeof fakeChild>[] = [];
    const sup = new GatewaySupervisor({
      spawn: () => {
        const c = fakeChild(1);
        children.push(c);
        return c.child;
      },
      timers: clock.timers,
      now: clock.now,
    });
    sup.start();
    expect(sup.detach()).toBe(children[0]!.child);
    children[0]!.exit(0);
    clock.advance(60_000);
    expect([children.length, sup.state]).toEqual([1, "stopped"]);
  });

  it("a node that cannot be found is a failed start, said in one line, not a crash of the app", () => {
    const clock = manualClock();
    const states: [GatewayProcessState, string][] = [];
    const sup = new GatewaySupervisor({
      spawn: () => spawnNodeGateway({ kind: "node", command: "/nonexistent/node", args: ["x"], cwd: process.cwd(), env: {} }, "ignore"),
      timers: clock.timers,
      now: clock.now,
      onState: (s, d) => states.push([s, d]),
    });
    sup.start();
    expect(states).toEqual([["restarting", "the gateway could not start: cannot run /nonexistent/node (install Node.js >= 22.18, or set LABGATE_NODE to its path); restarting in 500 ms"]]);
  });

  it("runs under the system node in development and in Electron's utility process when packaged", () => {
    const dev = gatewayLaunch({ packaged: false, appRoot: "/repo", host: "127.0.0.1", port: 4000, env: { LABGATE_NODE: "/opt/node22/bin/node" } });
    expect(dev).toMatchObject({ kind: "node", command: "/opt/node22/bin/node", args: ["/repo/bin/labgate.js", "serve", "--host", "127.0.0.1", "--port", "4000"], cwd: "/repo" });
    const packaged = gatewayLaunch({ packaged: true, appRoot: "/app/resources/app.asar", resourcesPath: "/app/resources", host: "127.0.0.1", port: 4001, env: {} });
    expect(packaged).toMatchObject({
      kind: "utility",
      modulePath: "/app/resources/app.asar/bin/labgate.js",
      args: ["serve", "--host", "127.0.0.1", "--port", "4001"],
      cwd: "/app/resources",
      env: { LABGATE_DEMO_MODELS_DIR: "/app/resources/models" },
    });
  });
});
