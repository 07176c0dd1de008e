// Starts a benchmark server (mock, bare pass-through, labgate) in its own Node
// process, optionally pinned to one CPU with taskset, and drives it over IPC.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { FromChild, ServerKind, ToChild } from "./server-process.ts";

const ENTRY = fileURLToPath(new URL("./server-process.ts", import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export interface ServerHandle {
  kind: ServerKind;
  url: string;
  pid: number;
  stats(): Promise<Extract<FromChild, { type: "stats" }>>;
  /** Starts the V8 CPU profiler inside the server. */
  profileStart(): Promise<void>;
  /** Stops it and writes the .cpuprofile to `file`. */
  profileStop(file: string): Promise<void>;
  close(): Promise<void>;
}

let tasksetOk: boolean | undefined;
/** Whether CPU pinning works here (taskset present and allowed to set affinity). */
export function canPin(): boolean {
  if (tasksetOk === undefined) {
    const r = spawnSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    tasksetOk = r.status === 0;
  }
  return tasksetOk;
}

/** Pins every thread of an already running process (used for the orchestrator itself). */
export function pinProcess(pid: number, cpus: string): boolean {
  return spawnSync("taskset", ["-a", "-cp", cpus, String(pid)], { stdio: "ignore" }).status === 0;
}

export async function startServer(kind: ServerKind, opts: { upstream?: string; cpus?: string; execArgv?: string[]; cwd?: string } = {}): Promise<ServerHandle> {
  const nodeArgs = [...(opts.execArgv ?? []), ENTRY, kind, ...(opts.upstream ? [opts.upstream] : [])];
  const stdio: ("ignore" | "inherit" | "ipc")[] = ["ignore", "inherit", "inherit", "ipc"];
  const child: ChildProcess =
    opts.cpus !== undefined
      ? spawn("taskset", ["-c", opts.cpus, process.execPath, ...nodeArgs], { stdio, cwd: opts.cwd })
      : spawn(process.execPath, nodeArgs, { stdio, cwd: opts.cwd });

  let exited = false;
  child.once("exit", () => {
    exited = true;
  });

  const waitFor = <T extends FromChild["type"]>(type: T, timeoutMs: number): Promise<Extract<FromChild, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${kind} server: no "${type}" message within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (msg: FromChild): void => {
        if (msg.type === "error") {
          cleanup();
          reject(new Error(`${kind} server failed: ${msg.message}`));
        } else if (msg.type === type) {
          cleanup();
          resolve(msg as Extract<FromChild, { type: T }>);
        }
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`${kind} server exited (code ${code}) before "${type}"`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
    });

  let ready: Extract<FromChild, { type: "ready" }>;
  try {
    ready = await waitFor("ready", START_TIMEOUT_MS);
  } catch (err) {
    if (!exited) child.kill("SIGKILL");
    throw err;
  }
  const post = (msg: ToChild): void => {
    child.send(msg);
  };
  return {
    kind,
    url: ready.url,
    pid: ready.pid,
    async stats() {
      const p = waitFor("stats", 10_000);
      post({ type: "stats" });
      return p;
    },
    async profileStart() {
      const p = waitFor("profile-started", 10_000);
      post({ type: "profile-start" });
      await p;
    },
    async profileStop(file: string) {
      const p = waitFor("profile-stopped", 30_000);
      post({ type: "profile-stop", file });
      await p;
    },
    async close() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => {
        if (exited) resolve();
        else child.once("exit", () => resolve());
      });
      post({ type: "close" });
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await gone;
      clearTimeout(timer);
    },
  };
}
