// The servers labgate runs itself: every provider with a `launch:` block is a child
// process under the one supervisor state machine (supervisor.ts). Traffic goes to it
// only once its health endpoint answers; a crash restarts it with backoff; a crash
// loop gives up (failed, with the last exit and output as the reason) until an
// operator starts it again. `on_demand` servers start at the first request for one
// of their models (the request waits; streams get SSE keep-alives meanwhile) and
// stop after `idle_ttl_s` without traffic. A port another program already holds is
// a clear failure, not a crash loop. What runs is written down so that a labgate
// killed with SIGKILL is followed by one that stops what it left (orphans.ts).
import { connect } from "node:net";
import type { Logger } from "pino";
import type { LaunchConfig, ProviderConfig } from "../config/schema.ts";
import { UpstreamError } from "../providers/errors.ts";
import { REDACTED, Redactor } from "../providers/redact.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { CallContext, ModelCard, ProviderAdapter } from "../providers/types.ts";
import type { EventHub } from "../telemetry/events.ts";
import { ProcessChild } from "./child-process.ts";
import { gpuEnv } from "./gpu-env.ts";
import type { LaunchedFile } from "./orphans.ts";
import { RingBuffer } from "./ring-buffer.ts";
import { PermanentFailure, Supervisor, type LogLine, type SupervisorStatus } from "./supervisor.ts";

const DEFAULT_PORTS: Partial<Record<ProviderConfig["type"], number>> = { ollama: 11434, llamacpp: 8080, vllm: 8000 };
const DEFAULT_HEALTH: Partial<Record<ProviderConfig["type"], string>> = { ollama: "/api/version", llamacpp: "/health", vllm: "/health" };

/** Where a launched server answers: its base_url, or 127.0.0.1 and launch.port. */
export function launchOrigin(pc: ProviderConfig): { origin: string; host: string; port: number } {
  const launch = pc.launch!;
  const base = pc.base_url ? new URL(pc.base_url) : undefined;
  const port = launch.port ?? (base?.port ? Number(base.port) : DEFAULT_PORTS[pc.type]);
  if (port === undefined) throw new Error("a launched provider needs base_url or launch.port");
  const host = base?.hostname ?? "127.0.0.1";
  return { origin: `http://${host.includes(":") ? `[${host}]` : host}:${port}`, host: host.replace(/^\[|\]$/g, ""), port };
}

/** Something already accepts connections there. */
function portTaken(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (taken: boolean): void => {
      s.destroy();
      resolve(taken);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/** A process child that first makes sure its port is free, so a port held by another program is a clear failure. */
class LaunchedChild extends ProcessChild {
  private readonly where: { host: string; port: number; name: string; onSpawned(pid: number): void };
  constructor(opts: ConstructorParameters<typeof ProcessChild>[0], where: { host: string; port: number; name: string; onSpawned(pid: number): void }) {
    super(opts);
    this.where = where;
  }
  override async start(): Promise<void> {
    const { host, port, name } = this.where;
    if (await portTaken(host, port)) {
      throw new PermanentFailure(`port ${port} on ${host} is already in use by another program: stop it, or give ${name} another port (launch.port and base_url)`);
    }
    await super.start();
    if (this.pid !== null) this.where.onSpawned(this.pid);
  }
}

// A launch command line may carry a credential (`--api-key X`, `-H "Authorization: Bearer X"`,
// `token=X`). What the gateway serves about a server (its args, its output, why it stopped)
// reaches the dashboard, the desktop app's notifications and whoever holds the admin key's
// screen: the values of such flags are masked there, and remembered as secrets so that a
// server echoing its own command line does not leak them through its log either.
// The flag's name ends in the secret word (--api-key, --hf-token, --db-password), so that
// counts such as --max-num-batched-tokens are shown (and their values not taken for secrets).
const SECRET_FLAG = /^--?(?:[\w.]+[-_])?(?:api[-_]?key|apikey|token|passw(?:or)?d|secret|credentials?)$/i;
const HEADER_FLAG = /^(?:-H|--header)$/;
const SECRET_ASSIGNMENT = /^(-{0,2}(?:[\w.]+[-_])?(?:key|apikey|token|passw(?:or)?d|secret|credentials?))=(.+)$/is;

/** A header value: `Name: value` keeps its name; the value (and a bearer token alone) are the secrets. */
function maskHeader(value: string, secrets: string[]): string {
  const colon = value.indexOf(":");
  if (colon <= 0) {
    secrets.push(value);
    return REDACTED;
  }
  const v = value.slice(colon + 1).trim();
  secrets.push(v);
  const scheme = /^(?:bearer|basic|token)\s+(.+)$/i.exec(v);
  if (scheme) secrets.push(scheme[1]!);
  return `${value.slice(0, colon)}: ${REDACTED}`;
}

/** The args with the values of secret-looking flags masked, and those values (to redact elsewhere). */
export function maskLaunchArgs(args: readonly string[]): { args: string[]; secrets: string[] } {
  const out: string[] = [];
  const secrets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if ((HEADER_FLAG.test(a) || SECRET_FLAG.test(a)) && next !== undefined && !next.startsWith("--")) {
      out.push(a, HEADER_FLAG.test(a) ? maskHeader(next, secrets) : (secrets.push(next), REDACTED));
      i++;
      continue;
    }
    if (a.startsWith("--header=")) {
      out.push(`--header=${maskHeader(a.slice("--header=".length), secrets)}`);
      continue;
    }
    const assigned = SECRET_ASSIGNMENT.exec(a);
    if (assigned) {
      secrets.push(assigned[2]!);
      out.push(`${assigned[1]}=${REDACTED}`);
      continue;
    }
    out.push(a);
  }
  return { args: out, secrets: secrets.filter((s) => s.length > 0) };
}

/** A server's output as kept (and served): each line redacted as it arrives. */
class RedactedLog extends RingBuffer<LogLine> {
  private readonly redact: (text: string) => string;
  constructor(capacity: number, redact: (text: string) => string) {
    super(capacity);
    this.redact = redact;
  }
  override push(l: LogLine): void {
    super.push({ ...l, line: this.redact(l.line) });
  }
}

interface Launched {
  name: string;
  config: ProviderConfig;
  launch: LaunchConfig;
  /** launch.args as served: secret values masked. */
  shownArgs: string[];
  origin: string;
  supervisor: Supervisor<LaunchedChild>;
  log: RingBuffer<LogLine>;
  lastUsed: number;
  idleTimer: NodeJS.Timeout | undefined;
}

export interface ProcessView extends Omit<SupervisorStatus, "since" | "lastExit" | "failure"> {
  provider: string;
  command: string;
  args: string[];
  base_url: string;
  on_demand: boolean;
  since: string;
  last_exit: { code: number | null; signal: string | null } | null;
  failure: string | null;
}

export interface LabProcessesOptions {
  registry: ProviderRegistry;
  events: EventHub;
  log: Logger;
  file: LaunchedFile;
  /** The gateway's environment, which launched servers inherit. */
  env: NodeJS.ProcessEnv;
  /** Lines of output kept per server. */
  logLines?: number;
  /**
   * The gateway's redactor (every secret the config resolved): applied to args, output lines
   * and reasons before they are served or logged. Secret flag values from launch args are added to it.
   */
  redactor?: Redactor;
}

export class LabProcesses {
  private readonly servers = new Map<string, Launched>();
  private readonly opts: LabProcessesOptions;
  private closing = false;
  private readonly redactor: Redactor;

  constructor(opts: LabProcessesOptions) {
    this.opts = opts;
    this.redactor = opts.redactor ?? new Redactor();
  }

  /** Text about a launched server (a reason, an output line) as it may be served or logged. */
  redact(text: string): string {
    return this.redactor.redact(text);
  }

  /** Supervise this provider's server; its adapter is wrapped so traffic waits for (or starts) it. */
  add(name: string, config: ProviderConfig, adapter: ProviderAdapter): ProviderAdapter {
    const launch = config.launch!;
    const { origin, host, port } = launchOrigin(config);
    const masked = maskLaunchArgs(launch.args);
    this.redactor.add(...masked.secrets);
    const shownArgs = masked.args.map((a) => this.redact(a));
    const log = new RedactedLog(this.opts.logLines ?? 500, (t) => this.redact(t));
    const env = { ...this.opts.env, ...launch.env, ...gpuEnv(launch.gpus) };
    const healthPath = launch.health_path ?? DEFAULT_HEALTH[config.type] ?? "/v1/models";
    const supervisor = new Supervisor<LaunchedChild>({
      name,
      spawn: () =>
        new LaunchedChild(
          { command: launch.command, args: launch.args, env, cwd: launch.cwd, log },
          // Written down as soon as it exists, so a labgate killed during the health wait leaves no orphan either.
          { host, port, name, onSpawned: (pid) => this.opts.file.record(name, pid, launch.command) },
        ),
      healthCheck: async (_child, signal) => {
        try {
          const res = await fetch(origin + healthPath, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
          await res.body?.cancel();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      startupTimeoutMs: launch.startup_timeout_s * 1000,
      stopGraceMs: launch.stop_timeout_s * 1000,
      restart: launch.restart,
      backoffInitialMs: launch.backoff_initial_s * 1000,
      backoffMaxMs: launch.backoff_max_s * 1000,
      maxRestarts: launch.max_restarts,
      restartWindowMs: launch.restart_window_s * 1000,
    });
    const entry: Launched = { name, config, launch, shownArgs, origin, supervisor, log, lastUsed: Date.now(), idleTimer: undefined };
    this.servers.set(name, entry);
    supervisor.events.on("transition", (t) => {
      const child = supervisor.child;
      const reason = this.redact(t.reason);
      if (t.to === "stopped" || t.to === "failed" || t.to === "backoff") this.opts.file.forget(name);
      this.gate(entry);
      this.opts.events.publish("process", { name, from: t.from, to: t.to, reason, ...(t.exit ? { exit: t.exit } : {}) });
      const level = t.to === "failed" || t.to === "backoff" ? "warn" : "info";
      this.opts.log[level]({ process: name, from: t.from, to: t.to, reason }, `launched server ${t.to}`);
      if (t.to === "running") this.opts.registry.recordHealth(name, { ok: true, detail: `running (pid ${child?.pid ?? "?"})`, latencyMs: 0, at: Date.now() });
      if (t.to === "failed") this.opts.registry.recordHealth(name, { ok: false, detail: reason, latencyMs: 0, at: Date.now() });
    });
    return this.wrap(entry, adapter);
  }

  /** Make the provider routable only when traffic can be served (or started on demand). */
  private gate(entry: Launched): void {
    const p = this.opts.registry.get(entry.name);
    if (!p) return;
    const state = entry.supervisor.state;
    const routable = state === "running" || (entry.launch.on_demand && state !== "failed" && !this.closing);
    const lastError = entry.supervisor.status().lastError;
    p.notReady = routable ? undefined : `${entry.name} is ${state}${lastError ? `: ${this.redact(lastError)}` : ""}`;
  }

  /** Start every server that is not on demand (in the background: the gateway serves meanwhile). */
  startAll(): void {
    for (const e of this.servers.values()) {
      this.gate(e);
      if (!e.launch.on_demand) void e.supervisor.start().catch(() => {}); // its failure is a state, logged and evented
      if (e.launch.on_demand && e.launch.idle_ttl_s !== undefined) this.watchIdle(e);
    }
  }

  has(name: string): boolean {
    return this.servers.has(name);
  }

  list(): ProcessView[] {
    return [...this.servers.values()].map((e) => this.view(e));
  }

  view(e: Launched): ProcessView {
    const s = e.supervisor.status();
    return {
      name: s.name,
      provider: e.name,
      state: s.state,
      pid: s.pid,
      restarts: s.restarts,
      recentCrashes: s.recentCrashes,
      lastError: s.lastError === null ? null : this.redact(s.lastError),
      command: e.launch.command,
      args: e.shownArgs,
      base_url: e.origin,
      on_demand: e.launch.on_demand,
      since: new Date(s.since).toISOString(),
      last_exit: s.lastExit ? { code: s.lastExit.code, signal: s.lastExit.signal } : null,
      failure: s.failure ? this.redact(s.failure.reason) : null,
    };
  }

  get(name: string): Launched | undefined {
    return this.servers.get(name);
  }

  /** An operator's start: from failed it tries again with a clean crash history. Resolves when running. */
  async start(name: string): Promise<ProcessView> {
    const e = this.must(name);
    await e.supervisor.start();
    return this.view(e);
  }

  async stop(name: string): Promise<ProcessView> {
    const e = this.must(name);
    await e.supervisor.stop("stopped by an operator");
    return this.view(e);
  }

  async restart(name: string): Promise<ProcessView> {
    const e = this.must(name);
    await e.supervisor.restart("restarted by an operator");
    return this.view(e);
  }

  /** The last output lines, oldest first. */
  logs(name: string, n?: number): LogLine[] {
    return this.must(name).log.toArray(n);
  }

  /** Each new output line of one server; returns the function that stops following. */
  follow(name: string, cb: (line: LogLine) => void): () => void {
    const sup = this.must(name).supervisor;
    const listener = (l: LogLine): void => cb({ stream: l.stream, line: this.redact(l.line), at: l.at });
    sup.events.on("log", listener);
    return () => sup.events.off("log", listener);
  }

  /** Stop every server (gracefully, forced after its stop timeout), in parallel. */
  async close(): Promise<void> {
    this.closing = true;
    for (const e of this.servers.values()) if (e.idleTimer) clearInterval(e.idleTimer);
    await Promise.allSettled([...this.servers.values()].map((e) => e.supervisor.stop("gateway shutting down")));
  }

  private must(name: string): Launched {
    const e = this.servers.get(name);
    if (!e) throw new UnknownProcessError(name);
    return e;
  }

  private watchIdle(e: Launched): void {
    const ttlMs = e.launch.idle_ttl_s! * 1000;
    e.idleTimer = setInterval(
      () => {
        const busy = (this.opts.registry.get(e.name)?.inFlight ?? 0) > 0;
        if (busy) e.lastUsed = Date.now();
        else if (e.supervisor.state === "running" && Date.now() - e.lastUsed >= ttlMs) {
          void e.supervisor.stop(`idle for ${e.launch.idle_ttl_s} s`).catch(() => {});
        }
      },
      Math.max(50, Math.min(ttlMs / 4, 5000)),
    );
    e.idleTimer.unref();
  }

  /** The provider's adapter, with every call first making sure its server runs (or starting it on demand). */
  private wrap(e: Launched, inner: ProviderAdapter): ProviderAdapter {
    const ready = async (signal: AbortSignal): Promise<void> => {
      e.lastUsed = Date.now();
      if (e.supervisor.state === "running") return;
      if (!e.launch.on_demand || this.closing) throw new UpstreamError("unavailable", `${e.name} is ${e.supervisor.state}`);
      // Waits up to the startup timeout (the supervisor's), or until the caller gives up.
      if (signal.aborted) throw signal.reason;
      const started = e.supervisor.start();
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        started.then(
          () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          },
          (err: unknown) => {
            signal.removeEventListener("abort", onAbort);
            reject(new UpstreamError("unavailable", `${e.name} could not start: ${this.redact((err as Error).message)}`));
          },
        );
      });
    };
    const wrapped: ProviderAdapter = {
      name: inner.name,
      type: inner.type,
      chat: async (body, ctx: CallContext) => (await ready(ctx.signal), inner.chat(body, ctx)),
      completions: async (body, ctx: CallContext) => (await ready(ctx.signal), inner.completions(body, ctx)),
      embeddings: async (body, ctx: CallContext) => (await ready(ctx.signal), inner.embeddings(body, ctx)),
      health: (signal) =>
        e.supervisor.state === "running"
          ? inner.health(signal)
          : Promise.resolve({ ok: e.launch.on_demand && e.supervisor.state !== "failed", detail: `${e.name} is ${e.supervisor.state}`, latencyMs: 0 }),
      close: () => inner.close(),
    };
    // Model listing, loaded models and unloading only while it runs. A stopped on-demand server
    // keeps the models it last listed, so that a request for one of them can start it again.
    let lastListed: ModelCard[] = [];
    if (inner.listModels) {
      wrapped.listModels = async (signal) => {
        if (e.supervisor.state === "running") return (lastListed = await inner.listModels!(signal));
        if (e.launch.on_demand && e.supervisor.state !== "failed") return lastListed;
        throw new Error(`${e.name} is ${e.supervisor.state}`);
      };
    }
    if (inner.loadedModels) wrapped.loadedModels = (signal) => (e.supervisor.state === "running" ? inner.loadedModels!(signal) : Promise.resolve([]));
    if (inner.unloadModel) wrapped.unloadModel = (model, signal) => (e.supervisor.state === "running" ? inner.unloadModel!(model, signal) : Promise.resolve(false));
    return wrapped;
  }
}

export class UnknownProcessError extends Error {
  constructor(name: string) {
    super(`No launched server named \`${name}\`.`);
    this.name = "UnknownProcessError";
  }
}
