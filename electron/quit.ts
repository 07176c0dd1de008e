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
      await Promise.race([run().then((r) => void (result = r)), sleep(ms)]);
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

export interface QuitPlanInput {
  /** Whether the app started the gateway (false: it attached to a running one, which it leaves running). */
  ownsGateway: boolean;
  /** Asks the gateway to stop its supervised servers; resolves with a summary. */
  stopServersViaGateway?: () => Promise<string>;
  gateway?: StopTarget;
  /** Servers the gateway was running, by pid, read when the quit began. */
  serverPids: { name: string; pid: number }[];
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
  for (const s of input.serverPids) {
    steps.push(stopStep(pidTarget(`${s.name} (pid ${s.pid}, if left behind)`, s.pid, { sleep }), input.timeouts.leftovers, sleep));
  }
  return steps;
}
