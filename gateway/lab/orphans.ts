// No orphans: every server labgate launches is written down (pid and the kernel's
// start time of that pid) in a small file in the data folder. A labgate that was
// killed (SIGKILL, a crash) cannot stop its children; the next one reads the file
// and stops what is still running, and only that: a pid the kernel has given to
// another program since has another start time and is left alone.
import { readFileSync, renameSync, writeFileSync } from "node:fs";

export interface LaunchedRecord {
  name: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot when the process started. */
  startTicks: string;
  command: string;
}

/** The start time of a live process, or undefined when there is none (or no /proc: not Linux). */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19]; // field 22 overall
  } catch {
    return undefined;
  }
}

export class LaunchedFile {
  private readonly path: string;
  private records = new Map<string, LaunchedRecord>();

  constructor(path: string) {
    this.path = path;
  }

  /** What an earlier labgate recorded (nothing when there is no file or it is unreadable). */
  read(): LaunchedRecord[] {
    try {
      const data = JSON.parse(readFileSync(this.path, "utf8")) as unknown;
      return Array.isArray(data) ? (data as LaunchedRecord[]).filter((r) => Number.isInteger(r?.pid) && typeof r?.startTicks === "string") : [];
    } catch {
      return [];
    }
  }

  record(name: string, pid: number, command: string): void {
    const startTicks = processStartTicks(pid);
    if (startTicks === undefined) return;
    this.records.set(name, { name, pid, startTicks, command });
    this.write();
  }

  forget(name: string): void {
    if (this.records.delete(name)) this.write();
  }

  private write(): void {
    // Written whole and renamed into place: a crash mid-write leaves the old file, never half of one.
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.records.values()]));
    renameSync(tmp, this.path);
  }

  /**
   * Stops the process groups an earlier labgate launched that still run (same pid and
   * same start time), then starts a fresh record. Returns what was reaped.
   */
  async reap(opts: { graceMs?: number; onReap?: (r: LaunchedRecord) => void } = {}): Promise<LaunchedRecord[]> {
    const alive = this.read().filter((r) => processStartTicks(r.pid) === r.startTicks);
    for (const r of alive) {
      opts.onReap?.(r);
      signalGroup(r.pid, "SIGTERM");
    }
    const deadline = Date.now() + (opts.graceMs ?? 3000);
    while (alive.some((r) => processStartTicks(r.pid) === r.startTicks) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    for (const r of alive) if (processStartTicks(r.pid) === r.startTicks) signalGroup(r.pid, "SIGKILL");
    this.records = new Map();
    this.write();
    return alive;
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig); // launched children lead their own process group
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }
}
