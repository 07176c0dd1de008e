// The gateway runs outside the main process, so that a crash in one of its native modules
// (better-sqlite3, node-llama-cpp) never takes the tray down, and is started again when it
// dies unasked. In development it runs under the system `node` (`bin/labgate.js serve`:
// native modules as npm built them for Node); packaged, under Electron's utilityProcess
// (electron-builder rebuilt the native modules for Electron's ABI). main.ts supplies the
// spawn function for each; the restart policy here is the same for both.
import { spawn as spawnProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { childTarget, type StopTarget } from "./quit.ts";
import { realTimers, type Timers } from "./coalesce.ts";

export type GatewayLaunch =
  | { kind: "node"; command: string; args: string[]; cwd: string; env: NodeJS.ProcessEnv }
  | { kind: "utility"; modulePath: string; args: string[]; execArgv: string[]; cwd: string; env: NodeJS.ProcessEnv };

export interface LaunchOptions {
  packaged: boolean;
  /** The app's root: the repository in development, app.getAppPath() packaged. */
  appRoot: string;
  host: string;
  port: number;
  env: NodeJS.ProcessEnv;
  /** The Node that runs the gateway in development (LABGATE_NODE, else `node` on the PATH). */
  nodeCommand?: string;
  /** Packaged: Electron's process.resourcesPath (the demo model is an extra resource there). */
  resourcesPath?: string;
}

export function gatewayLaunch(o: LaunchOptions): GatewayLaunch {
  const entry = join(o.appRoot, "bin", "labgate.js");
  const args = ["serve", "--host", o.host, "--port", String(o.port)];
  // The gateway logs JSON lines; the app reads nothing from them but keeps them for a bug report.
  const env = { ...o.env, LABGATE_DESKTOP: "1" };
  if (!o.packaged) return { kind: "node", command: o.nodeCommand ?? o.env.LABGATE_NODE ?? "node", args: [entry, ...args], cwd: o.appRoot, env };
  // The gateway is TypeScript: bin/labgate.js loads its stripped copies from dist/js when they
  // are packed (npm run dist builds them), else Node strips the sources as it loads them (on by
  // default from Node 22.18; the flag turns it on in an Electron whose Node is older).
  // Not tried in a real Electron here.
  // The demo model must be a real file for the native engine, so it is an extra resource
  // outside the asar; the gateway looks for it beside its sources unless told (LABGATE_DEMO_MODELS_DIR).
  const packagedEnv = o.resourcesPath ? { ...env, LABGATE_DEMO_MODELS_DIR: join(o.resourcesPath, "models") } : env;
  return { kind: "utility", modulePath: entry, args, execArgv: ["--experimental-strip-types", "--no-warnings=ExperimentalWarning"], cwd: o.resourcesPath ?? dirname(o.appRoot), env: packagedEnv }; // app.asar is a file: no cwd inside it
}

/** One running gateway process, whichever way it was started. */
export interface GatewayChild extends StopTarget {
  pid: number | undefined;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
}

/** A gateway under the system `node` (development). */
export function spawnNodeGateway(l: Extract<GatewayLaunch, { kind: "node" }>, output: "inherit" | "ignore" = "inherit"): GatewayChild {
  const child = spawnProcess(l.command, l.args, { cwd: l.cwd, env: l.env, stdio: ["ignore", output, output] });
  // A command that cannot be run has no pid and reports an 'error' event later: an unheard
  // one would end the main process (and the tray with it). Said now, as a start that failed.
  child.on("error", () => {});
  if (child.pid === undefined) throw new Error(`cannot run ${l.command} (install Node.js >= 22.18, or set LABGATE_NODE to its path)`);
  const target = childTarget("gateway", child);
  return {
    ...target,
    pid: child.pid,
    onExit: (cb) => {
      if (child.exitCode !== null || child.signalCode !== null) cb(child.exitCode, child.signalCode);
      else child.once("exit", (code, signal) => cb(code, signal));
    },
  };
}

export type GatewayProcessState = "stopped" | "running" | "restarting" | "gave-up";

export interface GatewaySupervisorOptions {
  spawn: () => GatewayChild;
  /** Delays before restarts: the n-th crash within the window waits backoffMs[n-1] (the last one after that). */
  backoffMs?: number[];
  /** More crashes than this within windowMs: stop restarting (and say so). */
  maxCrashes?: number;
  windowMs?: number;
  now?: () => number;
  timers?: Timers;
  onState?: (state: GatewayProcessState, detail: string) => void;
}

export class GatewaySupervisor {
  private readonly o: Required<Omit<GatewaySupervisorOptions, "onState">> & Pick<GatewaySupervisorOptions, "onState">;
  private child: GatewayChild | undefined;
  private crashes: number[] = [];
  private stopping = false;
  private restartTimer: unknown;
  private stateValue: GatewayProcessState = "stopped";

  constructor(opts: GatewaySupervisorOptions) {
    this.o = {
      backoffMs: [500, 2000, 5000, 10_000],
      maxCrashes: 5,
      windowMs: 120_000,
      now: Date.now,
      timers: realTimers,
      ...opts,
    };
  }

  get state(): GatewayProcessState {
    return this.stateValue;
  }

  get current(): GatewayChild | undefined {
    return this.child;
  }

  start(): void {
    this.stopping = false;
    this.crashes = [];
    this.launch();
  }

  /** No more restarts; the running child (if any) is returned for the quit sequence to stop. */
  detach(): GatewayChild | undefined {
    this.stopping = true;
    if (this.restartTimer !== undefined) this.o.timers.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    return this.child;
  }

  private setState(s: GatewayProcessState, detail: string): void {
    this.stateValue = s;
    this.o.onState?.(s, detail);
  }

  private launch(): void {
    this.restartTimer = undefined;
    let child: GatewayChild;
    try {
      child = this.o.spawn();
    } catch (err) {
      this.crashed(null, null, `could not start: ${(err as Error).message}`);
      return;
    }
    this.child = child;
    this.setState("running", `pid ${child.pid ?? "?"}`);
    child.onExit((code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopping) this.setState("stopped", "stopped");
      else this.crashed(code, signal, signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
  }

  private crashed(_code: number | null, _signal: string | null, why: string): void {
    const t = this.o.now();
    this.crashes = [...this.crashes.filter((at) => t - at < this.o.windowMs), t];
    if (this.crashes.length > this.o.maxCrashes) {
      this.setState("gave-up", `the gateway ${why}; it crashed ${this.crashes.length} times in ${Math.round(this.o.windowMs / 1000)} s, so it is not restarted again`);
      return;
    }
    const delay = this.o.backoffMs[Math.min(this.crashes.length, this.o.backoffMs.length) - 1] ?? 1000;
    this.setState("restarting", `the gateway ${why}; restarting in ${delay} ms`);
    this.restartTimer = this.o.timers.setTimeout(() => {
      if (!this.stopping) this.launch();
    }, delay);
  }
}
