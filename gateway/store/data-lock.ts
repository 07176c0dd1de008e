// One gateway per data folder. Two gateways on one folder would corrupt each other's
// batches (the second's start requeues the first's running items and deletes files the
// first has not recorded yet), so `labgate serve` takes `labgate.lock` in the folder,
// created atomically (written under a private name, then hard-linked: fails if it exists) with its pid and start time, and removes it when it stops.
//
// A lock left by a gateway that died (kill -9, a power cut) is stale and taken over: its
// pid is no longer running, or (where /proc tells) that pid now belongs to a process that
// is not a labgate (the pid was reused). Two gateways starting at the very same moment on
// a stale lock could both take it over; the re-read after writing narrows that window to
// a few microseconds, which is enough for a human starting a second gateway by mistake.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const LOCK_FILE = "labgate.lock";

/** The folder is in use by another running labgate. */
export class DataDirLocked extends Error {
  readonly pid: number;
  readonly dataDir: string;
  constructor(pid: number, dataDir: string) {
    super(`another labgate (pid ${pid}) uses ${dataDir}; stop it or use --data-dir`);
    this.name = "DataDirLocked";
    this.pid = pid;
    this.dataDir = dataDir;
  }
}

export interface DataLock {
  /** Removes the lock file if it is still ours. Safe to call more than once. */
  release(): void;
}

interface LockContent {
  pid: number;
  started_at: string;
  token: string;
}

/** Whether `pid` is a running process that looks like a labgate (the owner of a lock). */
function ownerAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user, still a live process.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    // No /proc (macOS, Windows): a live pid is taken to be the owner.
    return true;
  }
  return /labgate/i.test(cmdline);
}

function readLock(file: string): LockContent | undefined {
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as Partial<LockContent>;
    return typeof v.pid === "number" ? (v as LockContent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates `file` with `content` unless it exists (false then). Written whole under a private
 * name, then hard-linked as the lock (atomic, fails if it exists), so no reader ever sees a
 * half-written lock; where the file system has no hard links (FAT), created with O_EXCL.
 */
function create(file: string, content: string, token: string): boolean {
  const temp = `${file}.${token}`;
  writeFileSync(temp, content, { flag: "wx", mode: 0o644 });
  try {
    linkSync(temp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS" && code !== "EOPNOTSUPP") throw err;
  } finally {
    unlinkSync(temp);
  }
  try {
    writeFileSync(file, content, { flag: "wx", mode: 0o644 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

/** Takes the data folder's lock, or throws DataDirLocked naming the running owner. */
export function lockDataDir(dataDir: string): DataLock {
  const file = join(dataDir, LOCK_FILE);
  const mine: LockContent = { pid: process.pid, started_at: new Date().toISOString(), token: `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}` };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!create(file, JSON.stringify(mine), mine.token)) {
      const held = readLock(file);
      // An unreadable lock (written by hand, a truncated file) counts as stale.
      if (held && (held.pid === process.pid || ownerAlive(held.pid))) throw new DataDirLocked(held.pid, dataDir);
      try {
        unlinkSync(file);
      } catch {
        // Someone else removed it first: try to create it again.
      }
      continue;
    }
    const now = readLock(file);
    if (now?.token !== mine.token) {
      if (now) throw new DataDirLocked(now.pid, dataDir);
      continue;
    }
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        if (readLock(file)?.token === mine.token) {
          try {
            unlinkSync(file);
          } catch {
            // Already gone.
          }
        }
      },
    };
  }
  const held = readLock(file);
  throw new DataDirLocked(held?.pid ?? 0, dataDir);
}
