// CPU accounting from /proc (Linux): how busy the server under test was, how
// busy the bench's own other processes were, and how much CPU something else on
// the machine took during a run (a noisy machine makes the numbers meaningless).
import { readFileSync } from "node:fs";

const CLK_TCK = 100; // jiffies per second on Linux (USER_HZ)

interface Snapshot {
  at: number;
  /** Busy jiffies of the whole machine (all CPUs). */
  machineBusy: number;
  /** utime + stime jiffies of each watched pid (children's threads included). */
  pids: Map<number, number>;
}

function machineBusy(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return total - idle;
  } catch {
    return NaN;
  }
}

function pidJiffies(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the ")" that closes the command name; utime is field 14, stime 15 (1-based)
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return NaN;
  }
}

export function cpuSnapshot(pids: number[]): Snapshot {
  const m = new Map<number, number>();
  for (const p of pids) m.set(p, pidJiffies(p));
  return { at: performance.now(), machineBusy: machineBusy(), pids: m };
}

export interface CpuUsage {
  /** % of one core used by the server under test. */
  sutPct: number;
  /** % of one core used by the bench's other processes (load generator, mock). */
  benchPct: number;
  /** % of one core used by anything else on the machine. */
  foreignPct: number;
}

export function cpuUsage(a: Snapshot, b: Snapshot, sutPid: number | undefined): CpuUsage {
  const secs = (b.at - a.at) / 1000;
  const pct = (jiffies: number): number => (100 * jiffies) / CLK_TCK / secs;
  let sut = 0;
  let bench = 0;
  for (const [pid, j0] of a.pids) {
    const d = (b.pids.get(pid) ?? NaN) - j0;
    if (pid === sutPid) sut += d;
    else bench += d;
  }
  const machine = b.machineBusy - a.machineBusy;
  return { sutPct: pct(sut), benchPct: pct(bench), foreignPct: Math.max(0, pct(machine - sut - bench)) };
}

/**
 * Waits (bounded) until processes outside the bench use less than `thresholdPct`
 * of a core, sampling every `sampleMs`. Returns the last foreign load seen.
 */
export async function waitForQuiet(ourPids: number[], opts: { thresholdPct: number; sampleMs?: number; maxWaitMs?: number }): Promise<{ foreignPct: number; waitedMs: number }> {
  const sampleMs = opts.sampleMs ?? 500;
  const started = performance.now();
  const deadline = started + (opts.maxWaitMs ?? 30_000);
  for (;;) {
    const a = cpuSnapshot(ourPids);
    await new Promise((r) => setTimeout(r, sampleMs));
    const u = cpuUsage(a, cpuSnapshot(ourPids), undefined);
    const waitedMs = performance.now() - started;
    if (!Number.isFinite(u.foreignPct) || u.foreignPct < opts.thresholdPct || performance.now() >= deadline) return { foreignPct: u.foreignPct, waitedMs };
  }
}
