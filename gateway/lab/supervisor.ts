// One supervisor for every child the gateway owns: the embedded engine's worker
// thread now, the lab's llama-server / ollama serve / vllm serve processes next.
// A small state machine (like llama-swap's proxy/process.go) whose transition table
// below is the single source of truth; every transition is an event.
//
//   stopped --start--> starting --ready/healthy--> running
//   starting/running --stop--> stopping --exit (or forced after the grace period)--> stopped
//   starting/running --exit, failed start--> backoff --timer--> starting   (restart policy)
//   ... --too many crashes in the window, a start that failed for good, or no restart--> failed
//   failed --start (operator: the crash history is forgotten)--> starting
//
// What is supervised is generic: a ChildHandle (worker-child.ts for a worker thread,
// child-process.ts for a process group). Readiness comes from an explicit `ready`
// (a worker that says so) or a polled `healthCheck` (an HTTP server), else the child
// is ready once started. Time comes from injected now/setTimeout/clearTimeout so
// tests drive it without waiting.
import { EventEmitter } from "node:events";

export type SupervisorState = "stopped" | "starting" | "running" | "stopping" | "backoff" | "failed";

/** Allowed transitions: from -> the states it may go to. Anything else is a bug and throws. */
export const TRANSITIONS = {
  /** An operator (or the first request) starts it. */
  stopped: ["starting"],
  /** Ready -> running; stop asked, startup timeout or a start that failed for good -> stopping (child still alive);
   *  it exited or could not be spawned -> backoff (restart) or failed. */
  starting: ["running", "stopping", "backoff", "failed"],
  /** Stop asked -> stopping; it exited by itself -> backoff (restart), failed (no restart, or a crash loop),
   *  or stopped (a clean exit the policy does not restart). */
  running: ["stopping", "backoff", "failed", "stopped"],
  /** Once the child has exited: stopped when asked to stop; backoff or failed when it was stopped because its start failed. */
  stopping: ["stopped", "backoff", "failed"],
  /** The backoff timer fired -> starting; stop asked -> stopped. */
  backoff: ["starting", "stopped"],
  /** An operator starts it again (crash history cleared) or acknowledges it (stop). */
  failed: ["starting", "stopped"],
} as const satisfies Record<SupervisorState, readonly SupervisorState[]>;

export const SUPERVISOR_STATES = Object.keys(TRANSITIONS) as SupervisorState[];

export function canTransition(from: SupervisorState, to: SupervisorState): boolean {
  return (TRANSITIONS[from] as readonly SupervisorState[]).includes(to);
}

export class IllegalTransitionError extends Error {
  readonly from: SupervisorState;
  readonly to: SupervisorState;
  constructor(name: string, from: SupervisorState, to: SupervisorState) {
    super(`supervisor ${name}: illegal transition ${from} -> ${to}`);
    this.name = "IllegalTransitionError";
    this.from = from;
    this.to = to;
  }
}

/** Throws IllegalTransitionError unless the table allows from -> to. */
export function assertTransition(name: string, from: SupervisorState, to: SupervisorState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(name, from, to);
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** An error that ended it (a worker's uncaught exception, a spawn that failed). */
  error?: string;
}

export interface LogLine {
  stream: "stdout" | "stderr";
  line: string;
  at: number;
}

/** One incarnation of a supervised child; the supervisor asks its `spawn` for a new one per start. */
export interface ChildHandle {
  /** Spawn it. Rejecting (or throwing) means nothing runs. */
  start(): Promise<void> | void;
  /** graceful: ask it to end (SIGTERM, a shutdown message); force: end it now (SIGKILL, terminate()). */
  stop(signal: "graceful" | "force"): void;
  /** Called once when it has ended, whatever the cause. */
  onExit(cb: (info: ExitInfo) => void): void;
  readonly pid?: number | null;
  /** Recent output lines, oldest first (the reason a start failed is often only printed there). */
  lines?(): string[];
  /** Each output line as it comes. */
  onLog?(cb: (line: LogLine) => void): void;
}

/** Thrown by `ready` (or `healthCheck`, or a child's start) when restarting cannot help: the supervisor goes to failed at once. */
export class PermanentFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermanentFailure";
  }
}

export type RestartPolicy = "always" | "on-failure" | "never";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers that never keep the process alive by themselves. */
export const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SupervisorOptions<C extends ChildHandle> {
  /** Shown in events, reasons and errors. */
  name: string;
  /** A new incarnation of the child (not yet started). */
  spawn(): C;
  /** The child says when it is ready (resolve) or that it cannot start (reject; PermanentFailure = do not retry). */
  ready?(child: C, signal: AbortSignal): Promise<void>;
  /** Polled every healthIntervalMs after the start until it answers true (used when `ready` is not given). */
  healthCheck?(child: C, signal: AbortSignal): Promise<boolean>;
  /** From spawn to ready; then the child is stopped and the start counts as a crash. Default 60 s. */
  startupTimeoutMs?: number;
  /** Default 250 ms. */
  healthIntervalMs?: number;
  /** After a graceful stop, how long before it is forced. Default 10 s. */
  stopGraceMs?: number;
  /** What an exit the supervisor did not ask for leads to. Default on-failure. */
  restart?: RestartPolicy;
  /** First backoff; doubles with each crash in the window, up to backoffMaxMs. Defaults 1 s and 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** More crashes than this within restartWindowMs: give up (failed). Defaults 5 and 60 s. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** The reason recorded for an exit nobody asked for (default: exit code or signal, and the last output lines). */
  describeExit?(info: ExitInfo, phase: "starting" | "running", child: C): string;
  now?: () => number;
  timers?: Timers;
}

export interface TransitionEvent {
  name: string;
  from: SupervisorState;
  to: SupervisorState;
  reason: string;
  at: number;
  /** Set when the child's exit caused this transition. */
  exit?: ExitInfo;
}

export interface SupervisorLogEvent extends LogLine {
  name: string;
}

export interface SupervisorEvents {
  transition: [TransitionEvent];
  log: [SupervisorLogEvent];
}

export interface SupervisorFailure {
  reason: string;
  at: number;
  /** true: the child said it cannot start (PermanentFailure); restarting will not help. */
  permanent: boolean;
  /** The exit that caused it; null when the child was alive (it said it cannot start, or was not ready in time) or never ran. */
  exit: ExitInfo | null;
}

/** How start() fails: the supervisor ended in failed (with the failure) or stopped (a stop was asked while starting). */
export class SupervisorStartError extends Error {
  readonly state: "failed" | "stopped";
  readonly failure: SupervisorFailure | null;
  constructor(message: string, state: "failed" | "stopped", failure: SupervisorFailure | null) {
    super(message);
    this.name = "SupervisorStartError";
    this.state = state;
    this.failure = failure;
  }
}

export interface SupervisorStatus {
  name: string;
  state: SupervisorState;
  pid: number | null;
  /** Starts after the first one, automatic or asked for. */
  restarts: number;
  /** Crashes within the restart window (what max_restarts is compared with). */
  recentCrashes: number;
  lastExit: ExitInfo | null;
  /** Why it last failed to start or last exited unasked; kept after a successful restart. */
  lastError: string | null;
  /** The failure that put it in `failed` (null in any other state). */
  failure: SupervisorFailure | null;
  /** When it entered the current state. */
  since: number;
}

const DEFAULTS = {
  startupTimeoutMs: 60_000,
  healthIntervalMs: 250,
  stopGraceMs: 10_000,
  restart: "on-failure" as RestartPolicy,
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  maxRestarts: 5,
  restartWindowMs: 60_000,
};

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Where a stop in progress ends, and why. */
interface StopPlan {
  to: "stopped" | "backoff" | "failed";
  reason: string;
  failure: SupervisorFailure | null;
  backoffMs: number;
}

export function isFailureExit(info: ExitInfo): boolean {
  return info.code !== 0 || info.signal !== null || info.error !== undefined;
}

export function describeExitInfo(info: ExitInfo): string {
  if (info.error !== undefined) return `failed: ${info.error}`;
  if (info.signal !== null) return `was killed by ${info.signal}`;
  return `exited with code ${info.code}`;
}

export class Supervisor<C extends ChildHandle = ChildHandle> {
  readonly name: string;
  readonly events = new EventEmitter<SupervisorEvents>();
  private readonly opts: SupervisorOptions<C>;
  private readonly cfg: typeof DEFAULTS;
  private readonly now: () => number;
  private readonly timers: Timers;

  private current: SupervisorState = "stopped";
  private sinceAt: number;
  private childNow: C | null = null;
  private spawned = 0;
  private restartCount = 0;
  /** When the child crashed (unasked exits and failed starts), within the window. */
  private crashes: number[] = [];
  private lastExit: ExitInfo | null = null;
  private lastError: string | null = null;
  private failure: SupervisorFailure | null = null;

  private startWaiters: Waiter[] = [];
  private stopWaiters: Waiter[] = [];
  private stateWaiters: { states: readonly SupervisorState[]; resolve: (s: SupervisorState) => void }[] = [];
  /** Aborts the readiness wait of the current start. */
  private startAbort: AbortController | null = null;
  private startTimer: unknown = null;
  private graceTimer: unknown = null;
  private backoffTimer: unknown = null;
  private stopPlan: StopPlan | null = null;

  constructor(opts: SupervisorOptions<C>) {
    this.opts = opts;
    this.name = opts.name;
    this.cfg = {
      startupTimeoutMs: opts.startupTimeoutMs ?? DEFAULTS.startupTimeoutMs,
      healthIntervalMs: opts.healthIntervalMs ?? DEFAULTS.healthIntervalMs,
      stopGraceMs: opts.stopGraceMs ?? DEFAULTS.stopGraceMs,
      restart: opts.restart ?? DEFAULTS.restart,
      backoffInitialMs: opts.backoffInitialMs ?? DEFAULTS.backoffInitialMs,
      backoffMaxMs: opts.backoffMaxMs ?? DEFAULTS.backoffMaxMs,
      maxRestarts: opts.maxRestarts ?? DEFAULTS.maxRestarts,
      restartWindowMs: opts.restartWindowMs ?? DEFAULTS.restartWindowMs,
    };
    this.now = opts.now ?? Date.now;
    this.timers = opts.timers ?? REAL_TIMERS;
    this.sinceAt = this.now();
  }

  get state(): SupervisorState {
    return this.current;
  }

  /** The current incarnation (from its spawn until it has exited). */
  get child(): C | null {
    return this.childNow;
  }

  status(): SupervisorStatus {
    return {
      name: this.name,
      state: this.current,
      pid: this.childNow?.pid ?? null,
      restarts: this.restartCount,
      recentCrashes: this.crashesInWindow().length,
      lastExit: this.lastExit,
      lastError: this.lastError,
      failure: this.current === "failed" ? this.failure : null,
      since: this.sinceAt,
    };
  }

  /**
   * Resolves once running; rejects with the reason when it ends up failed or stopped
   * instead (through restarts and backoff, as the policy says). From failed, it tries
   * again with a clean crash history.
   */
  start(): Promise<void> {
    switch (this.current) {
      case "running":
        return Promise.resolve();
      case "starting":
      case "backoff":
        return this.waitForStart();
      case "stopping":
        return this.waitFor("stopped", "backoff", "failed").then(() => this.start());
      case "failed":
        this.crashes = [];
        this.launch("start requested after failure");
        return this.waitForStart();
      case "stopped":
        this.launch("start requested");
        return this.waitForStart();
    }
  }

  /** Graceful stop, forced after the grace period; resolves once stopped. Cancels a pending restart. */
  stop(reason = "stop requested"): Promise<void> {
    switch (this.current) {
      case "stopped":
        return Promise.resolve();
      case "failed":
        this.transition("stopped", reason);
        return Promise.resolve();
      case "backoff":
        this.clearTimer("backoffTimer");
        this.transition("stopped", reason);
        return Promise.resolve();
      case "stopping": {
        // Whatever the stop was for (a failed start being cleaned up), it now ends in stopped.
        if (this.stopPlan) this.stopPlan = { to: "stopped", reason, failure: null, backoffMs: 0 };
        return this.stopped();
      }
      case "starting":
      case "running": {
        const child = this.childNow;
        this.endStartAttempt();
        if (!child) {
          this.transition("stopped", reason);
          return Promise.resolve();
        }
        const p = this.stopped();
        this.beginStop(child, { to: "stopped", reason, failure: null, backoffMs: 0 });
        return p;
      }
    }
  }

  async restart(reason = "restart requested"): Promise<void> {
    await this.stop(reason);
    await this.start();
  }

  /** Resolves with the state as soon as it is one of `states` (now, or at a later transition). */
  waitFor(...states: SupervisorState[]): Promise<SupervisorState> {
    if (states.includes(this.current)) return Promise.resolve(this.current);
    return new Promise((resolve) => this.stateWaiters.push({ states, resolve }));
  }

  // -------------------------------------------------------------------------

  private waitForStart(): Promise<void> {
    return new Promise((resolve, reject) => this.startWaiters.push({ resolve, reject }));
  }

  private stopped(): Promise<void> {
    if (this.current === "stopped") return Promise.resolve();
    return new Promise((resolve, reject) => this.stopWaiters.push({ resolve, reject }));
  }

  private transition(to: SupervisorState, reason: string, exit?: ExitInfo): void {
    const from = this.current;
    assertTransition(this.name, from, to);
    this.current = to;
    const at = this.now();
    this.sinceAt = at;
    if (to === "starting" || to === "stopped") this.failure = null;
    // Promises first, so that listeners see settled waiters and can start or stop again.
    if (to === "running") this.settle(this.startWaiters, null);
    if (to === "failed") this.settle(this.startWaiters, new SupervisorStartError(reason, "failed", this.failure));
    if (to === "stopped") this.settle(this.startWaiters, new SupervisorStartError(`${this.name} stopped before it was ready: ${reason}`, "stopped", null));
    if (to === "stopped") this.settle(this.stopWaiters, null);
    const waiting = this.stateWaiters;
    this.stateWaiters = [];
    for (const w of waiting) {
      if (w.states.includes(to)) w.resolve(to);
      else this.stateWaiters.push(w);
    }
    this.events.emit("transition", { name: this.name, from, to, reason, at, ...(exit ? { exit } : {}) });
  }

  private settle(list: Waiter[], err: Error | null): void {
    const waiters = list.splice(0);
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /** -> starting, and a new incarnation with its readiness wait. */
  private launch(reason: string): void {
    this.transition("starting", reason);
    if (this.current !== "starting") return; // a listener stopped it already
    if (this.spawned++ > 0) this.restartCount++;
    let child: C;
    try {
      child = this.opts.spawn();
    } catch (err) {
      this.startFailed(null, messageOf(err), err instanceof PermanentFailure);
      return;
    }
    this.childNow = child;
    child.onExit((info) => this.onExit(child, info));
    child.onLog?.((line) => this.events.emit("log", { name: this.name, ...line }));
    const ac = new AbortController();
    this.startAbort = ac;
    this.startTimer = this.timers.setTimeout(() => {
      this.startTimer = null;
      this.startFailed(child, `${this.name} was not ready within ${this.cfg.startupTimeoutMs} ms`, false);
    }, this.cfg.startupTimeoutMs);
    void this.awaitReady(child, ac.signal);
  }

  private async awaitReady(child: C, signal: AbortSignal): Promise<void> {
    try {
      await child.start();
    } catch (err) {
      // Nothing runs: no stop needed (unless its exit was already reported).
      if (this.childNow === child && this.current === "starting") {
        this.childNow = null;
        this.startFailed(null, `${this.name} could not be started: ${messageOf(err)}`, err instanceof PermanentFailure);
      }
      return;
    }
    try {
      if (this.opts.ready) await this.opts.ready(child, signal);
      else if (this.opts.healthCheck) await this.pollHealth(child, signal);
    } catch (err) {
      if (!signal.aborted) this.startFailed(child, messageOf(err), err instanceof PermanentFailure);
      return;
    }
    if (signal.aborted || this.childNow !== child || this.current !== "starting") return;
    this.endStartAttempt();
    this.transition("running", "ready");
  }

  private async pollHealth(child: C, signal: AbortSignal): Promise<void> {
    const check = this.opts.healthCheck!;
    for (;;) {
      let ok = false;
      try {
        ok = await check(child, signal);
      } catch (err) {
        if (err instanceof PermanentFailure) throw err;
      }
      if (signal.aborted) throw new Error("start abandoned");
      if (ok) return;
      await this.sleep(this.cfg.healthIntervalMs, signal);
      if (signal.aborted) throw new Error("start abandoned");
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.timers.clearTimeout(handle);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const handle = this.timers.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** The readiness wait is over (ready, failed, or stop asked): cancel its timer and checks. */
  private endStartAttempt(): void {
    this.startAbort?.abort();
    this.startAbort = null;
    this.clearTimer("startTimer");
  }

  /**
   * The current start failed. A child still alive is stopped first (the plan says where
   * that ends); without one, the failure is applied now.
   */
  private startFailed(child: C | null, reason: string, permanent: boolean): void {
    if (this.current !== "starting" || (child !== null && this.childNow !== child)) return;
    this.endStartAttempt();
    this.lastError = reason;
    const plan = permanent ? this.failPlan(reason, true, null) : this.crashPlan(reason, null);
    if (child) this.beginStop(child, plan);
    else this.applyPlan(plan);
  }

  private onExit(child: C, info: ExitInfo): void {
    if (this.childNow !== child) return; // an earlier incarnation, already dealt with
    this.childNow = null;
    this.lastExit = info;
    this.clearTimer("graceTimer");
    switch (this.current) {
      case "stopping": {
        const plan = this.stopPlan ?? { to: "stopped", reason: "exited", failure: null, backoffMs: 0 };
        this.stopPlan = null;
        this.applyPlan(plan, info);
        return;
      }
      case "starting": {
        this.endStartAttempt();
        const reason = this.describe(info, "starting", child);
        this.lastError = reason;
        this.applyPlan(this.crashPlan(reason, info), info);
        return;
      }
      case "running": {
        const reason = this.describe(info, "running", child);
        this.lastError = reason;
        const failed = isFailureExit(info);
        const policy = this.cfg.restart;
        if (policy === "always" || (policy === "on-failure" && failed)) this.applyPlan(this.crashPlan(reason, info), info);
        else this.applyPlan(failed ? this.failPlan(reason, false, info) : { to: "stopped", reason, failure: null, backoffMs: 0 }, info);
        return;
      }
      default:
        return; // stopped / failed / backoff have no child
    }
  }

  /** A crash (an unasked exit or a failed start): restart after a backoff, or give up. */
  private crashPlan(reason: string, exit: ExitInfo | null): StopPlan {
    const at = this.now();
    this.crashes = this.crashesInWindow();
    this.crashes.push(at);
    if (this.cfg.restart === "never") return this.failPlan(reason, false, exit);
    const n = this.crashes.length;
    if (n > this.cfg.maxRestarts) {
      const windowS = this.cfg.restartWindowMs / 1000;
      return this.failPlan(`${this.name} crashed ${n} times within ${windowS} s, not restarted again; last: ${reason}`, false, exit);
    }
    const backoffMs = Math.min(this.cfg.backoffMaxMs, this.cfg.backoffInitialMs * 2 ** (n - 1));
    return { to: "backoff", reason: `${reason}; restarting in ${backoffMs} ms`, failure: null, backoffMs };
  }

  private failPlan(reason: string, permanent: boolean, exit: ExitInfo | null): StopPlan {
    return { to: "failed", reason, failure: { reason, at: this.now(), permanent, exit }, backoffMs: 0 };
  }

  private applyPlan(plan: StopPlan, exit?: ExitInfo): void {
    if (plan.to === "failed") {
      this.failure = plan.failure;
      this.transition("failed", plan.reason, exit);
    } else if (plan.to === "backoff") {
      this.transition("backoff", plan.reason, exit);
      this.backoffTimer = this.timers.setTimeout(() => {
        this.backoffTimer = null;
        if (this.current === "backoff") this.launch("restart after backoff");
      }, plan.backoffMs);
    } else {
      this.transition("stopped", plan.reason, exit);
    }
  }

  private beginStop(child: C, plan: StopPlan): void {
    this.stopPlan = plan;
    this.transition("stopping", plan.reason);
    try {
      child.stop("graceful");
    } catch {
      // it may be gone already; its exit settles the stop
    }
    this.graceTimer = this.timers.setTimeout(() => {
      this.graceTimer = null;
      if (this.childNow === child && this.current === "stopping") {
        try {
          child.stop("force");
        } catch {
          // gone
        }
      }
    }, this.cfg.stopGraceMs);
  }

  private crashesInWindow(): number[] {
    const now = this.now();
    return this.crashes.filter((t) => now - t < this.cfg.restartWindowMs);
  }

  private describe(info: ExitInfo, phase: "starting" | "running", child: C): string {
    if (this.opts.describeExit) return this.opts.describeExit(info, phase, child);
    let s = `${this.name} ${describeExitInfo(info)}${phase === "starting" ? " before it was ready" : ""}`;
    const lines = child.lines?.().slice(-5) ?? [];
    if (lines.length > 0) s += `; last output: ${lines.join(" | ")}`;
    return s;
  }

  private clearTimer(which: "startTimer" | "graceTimer" | "backoffTimer"): void {
    const h = this[which];
    if (h !== null) this.timers.clearTimeout(h);
    this[which] = null;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
