// "Quit labgate": everything the app started is stopped, in order, each step bounded in
// time so that a process that ignores SIGTERM cannot keep the app (or a lab GPU) busy.
//   1. the supervised servers, asked through the gateway (it knows each one's own stop
//      timeout and records that they were stopped on purpose);
//   2. the gateway: SIGTERM (its `serve` finishes in-flight requests, stops the servers it
//      still supervises and flushes the request log), then SIGKILL after a grace period;
//   3. servers the gateway left behind (it was killed, or a stop failed): SIGTERM, then SIGKILL.
// An attached gateway (one the app found running, not one it started) is left running.
// Clock and sleep are injected: tests run the same sequence against real child processes.
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LaunchedFile, processStartTicks, type LaunchedRecord } from "../gateway/lab/orphans.ts";

export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Something that runs and can be asked to stop, then forced. */
export interface StopTarget {
  name: string;
  alive(): boolean;
  /** Polite request to stop (SIGTERM on POSIX). */
  terminate(): void;
  /** Forced (SIGKILL). */
  kill(): void;
  /** Resolves once it has exited. */
  exited(): Promise<void>;
}

export type StopOutcome = "not-running" | "exited" | "killed" | "stuck";

export interface StopTimeouts {
  /** How long SIGTERM is given before SIGKILL. */
  graceMs: number;
  /** How long SIGKILL is given before the app gives up on it (and says so). */
  killMs: number;
}

/** true when `p` settled within `ms`. */
async function within(p: Promise<unknown>, ms: number, sleep: Sleep): Promise<boolean> {
  let settled = false;
  const watched = p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await Promise.race([watched, sleep(ms)]);
  return settled;
}

/** SIGTERM, wait up to graceMs; SIGKILL, wait up to killMs. */
export async function stopTarget(t: StopTarget, timeouts: StopTimeouts, sleep: Sleep = realSleep): Promise<StopOutcome> {
  if (!t.alive()) return "not-running";
  const exited = t.exited();
  try {
    t.terminate();
  } catch {
    // already gone between alive() and here
  }
  if (await within(exited, timeouts.graceMs, sleep)) return "exited";
  try {
    t.kill();
  } catch {
    // gone meanwhile
  }
  return (await within(exited, timeouts.killMs, sleep)) ? "killed" : "stuck";
}

export interface QuitStep {
  name: string;
  run(): Promise<string>;
}

export interface QuitReportLine {
  step: string;
  outcome: string;
}

/** Runs the steps one after the other; a step that throws is reported and the next one still runs. */
export async function runQuitSequence(steps: QuitStep[], log: (line: QuitReportLine) => void = () => {}): Promise<QuitReportLine[]> {
  const report: QuitReportLine[] = [];
  for (const s of steps) {
    let outcome: string;
    try {
      outcome = await s.run();
    } catch (err) {
      outcome = `error: ${(err as Error).message}`;
    }
    const line = { step: s.name, outcome };
    report.push(line);
    log(line);
  }
  return report;
}

/** A step that gives up (and says so) after `ms`, for calls that might hang (an HTTP request to a stuck gateway). */
export function boundedStep(name: string, ms: number, run: () => Promise<string>, sleep: Sleep = realSleep): QuitStep {
  return {
    name,
    async run() {
      let result = `gave up after ${ms} ms`;
      let failure: { err: unknown } | undefined;
      // A run that fails after the timeout won is over for the sequence: its rejection is
      // caught here (never unhandled); one that fails in time fails the step.
      const running = run().then(
        (r) => void (result = r),
        (err: unknown) => void (failure = { err }),
      );
      await Promise.race([running, sleep(ms)]);
      if (failure) throw failure.err;
      return result;
    },
  };
}

export function stopStep(t: StopTarget, timeouts: StopTimeouts, sleep: Sleep = realSleep): QuitStep {
  return { name: t.name, run: () => stopTarget(t, timeouts, sleep) };
}

/** A child this process spawned (child_process.spawn / fork). */
export function childTarget(name: string, child: ChildProcess): StopTarget {
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<void>((resolve) => {
    if (gone()) resolve();
    else child.once("exit", () => resolve());
  });
  return {
    name,
    alive: () => !gone(),
    terminate: () => void child.kill("SIGTERM"),
    kill: () => void child.kill("SIGKILL"),
    exited: () => exited,
  };
}

/**
 * Whether a process with this pid runs (signal 0 checks without sending anything). On
 * Linux a zombie (exited, not yet reaped: its parent, the killed gateway, is gone and
 * not every init reaps at once) counts as ended.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (process.platform !== "linux") return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false; // gone between the two checks
  }
}

/** A process known only by its pid (a server the gateway started and may have left behind). */
export function pidTarget(name: string, pid: number, opts: { pollMs?: number; sleep?: Sleep } = {}): StopTarget {
  const sleep = opts.sleep ?? realSleep;
  const pollMs = opts.pollMs ?? 50;
  let watching: Promise<void> | undefined;
  return {
    name,
    alive: () => pidAlive(pid),
    terminate: () => process.kill(pid, "SIGTERM"),
    kill: () => process.kill(pid, "SIGKILL"),
    exited: () =>
      (watching ??= (async () => {
        while (pidAlive(pid)) await sleep(pollMs);
      })()),
  };
}

/** Field 22 of /proc/<pid>/stat now (undefined: no such process, or no /proc). */
export type StartTicksReader = (pid: number) => string | undefined;

/** A server the gateway was running: its pid and, when known, that process's start time. */
export interface LeftoverServer {
  name: string;
  pid: number;
  startTicks?: string;
}

/**
 * The servers to check at Quit, each with the start time the gateway recorded in launched.json
 * (same name and pid); else the one read now, while the gateway still reports it running (which
 * covers the quit's own window, in which the gateway stops them and the kernel may reuse a pid).
 */
export function leftoverServers(running: { name: string; pid: number }[], recorded: LaunchedRecord[], readNow: StartTicksReader = processStartTicks): LeftoverServer[] {
  return running.map((r) => {
    const startTicks = recorded.find((x) => x.pid === r.pid && x.name === r.name)?.startTicks ?? readNow(r.pid);
    return startTicks === undefined ? { name: r.name, pid: r.pid } : { name: r.name, pid: r.pid, startTicks };
  });
}

/**
 * What the gateway recorded in launched.json, looked for where its data folder is unless its
 * config names another (LABGATE_DATA_DIR, else gateway/config/defaults.ts defaultDataDir's
 * rule, repeated here: that module is not one the shell bundles). Read when Quit begins,
 * before the gateway stops its servers and forgets them.
 */
export function recordedLaunches(env: NodeJS.ProcessEnv, home: string): LaunchedRecord[] {
  const dirs = [env.LABGATE_DATA_DIR, env.XDG_DATA_HOME ? join(env.XDG_DATA_HOME, "labgate") : join(home, ".labgate")];
  return dirs.filter((d): d is string => !!d).flatMap((d) => new LaunchedFile(join(d, "launched.json")).read());
}

/** A left-behind server, signalled only while its pid still has the recorded start time. */
export function leftoverStep(s: LeftoverServer, timeouts: StopTimeouts, opts: { sleep?: Sleep; pollMs?: number; readStartTicks?: StartTicksReader } = {}): QuitStep {
  const sleep = opts.sleep ?? realSleep;
  const read = opts.readStartTicks ?? processStartTicks;
  const name = `${s.name} (pid ${s.pid}, if left behind)`;
  const same = (): boolean => s.startTicks !== undefined && read(s.pid) === s.startTicks;
  const base = pidTarget(name, s.pid, { sleep, ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }) });
  let watching: Promise<void> | undefined;
  const target: StopTarget = {
    name,
    alive: () => base.alive() && same(),
    // Checked again right before each signal: the pid may have ended and been reused meanwhile.
    terminate: () => void (same() && base.terminate()),
    kill: () => void (same() && base.kill()),
    exited: () =>
      (watching ??= (async () => {
        while (target.alive()) await sleep(opts.pollMs ?? 50);
      })()),
  };
  return {
    name,
    async run() {
      if (!pidAlive(s.pid)) return "not-running";
      const why = `cannot verify that pid ${s.pid} is still ${s.name}, so it was not signalled`;
      if (s.startTicks === undefined) return `left alone: no start time recorded (${why})`;
      const now = read(s.pid);
      if (now === undefined) return `left alone: this system does not say when pid ${s.pid} started (${why})`;
      if (now !== s.startTicks) return `left alone: pid ${s.pid} is another process now (started at tick ${now}, not ${s.startTicks})`;
      return stopTarget(target, timeouts, sleep);
    },
  };
}

export interface QuitPlanInput {
  /** Whether the app started the gateway (false: it attached to a running one, which it leaves running). */
  ownsGateway: boolean;
  /** Asks the gateway to stop its supervised servers; resolves with a summary. */
  stopServersViaGateway?: () => Promise<string>;
  gateway?: StopTarget;
  /** Servers the gateway was running, by pid (with their start time: see leftoverServers), read when the quit began. */
  serverPids: LeftoverServer[];
  timeouts: { serversViaGatewayMs: number; gateway: StopTimeouts; leftovers: StopTimeouts };
  sleep?: Sleep;
}

/** The ordered steps of Quit. */
export function quitPlan(input: QuitPlanInput): QuitStep[] {
  if (!input.ownsGateway) return [];
  const sleep = input.sleep ?? realSleep;
  const steps: QuitStep[] = [];
  if (input.stopServersViaGateway && input.serverPids.length > 0) {
    steps.push(boundedStep("supervised servers (via the gateway)", input.timeouts.serversViaGatewayMs, input.stopServersViaGateway, sleep));
  }
  if (input.gateway) steps.push(stopStep(input.gateway, input.timeouts.gateway, sleep));
  for (const s of input.serverPids) steps.push(leftoverStep(s, input.timeouts.leftovers, { sleep }));
  return steps;
}
