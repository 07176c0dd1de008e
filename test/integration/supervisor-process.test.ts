// The lab supervisor with real child processes (gateway/lab/child-process.ts): a tiny
// node script stands in for llama-server. It listens on a free loopback port and can
// be told (env) to crash on its first runs, to hang at start, to ignore SIGTERM, and to
// start a grandchild in its process group.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { freePort } from "../fixtures/ports.ts";
import { ProcessChild, processSpawner } from "../../gateway/lab/child-process.ts";
import { Supervisor, SupervisorStartError, type SupervisorOptions, type TransitionEvent } from "../../gateway/lab/supervisor.ts";

const dir = mkdtempSync(join(tmpdir(), "labgate-supervisor-"));
const script = join(dir, "server.mjs");
writeFileSync(
  script,
  `import { createServer } from "node:http";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
const env = process.env;
let run = 0;
if (env.RUNS_FILE) {
  run = existsSync(env.RUNS_FILE) ? Number(readFileSync(env.RUNS_FILE, "utf8")) + 1 : 0;
  writeFileSync(env.RUNS_FILE, String(run));
}
console.log("server " + process.pid + " run " + run);
console.error("warming up (stderr)");
if (env.IGNORE_TERM) process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
if (env.GRANDCHILD_FILE) {
  const code = env.IGNORE_TERM ? "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)" : "setInterval(() => {}, 1000)";
  const g = spawn(process.execPath, ["-e", code], { stdio: "ignore" });
  writeFileSync(env.GRANDCHILD_FILE, String(g.pid));
}
if (env.HANG) {
  setInterval(() => {}, 1000);
} else {
  let served = 0;
  const server = createServer((req, res) => {
    res.end("ok");
    // Crashes once it has answered (a health check): it was up, then it died.
    if (++served === 1 && run < Number(env.CRASH_RUNS ?? 0)) {
      setTimeout(() => {
        console.error("fatal: out of memory on run " + run);
        process.exit(Number(env.EXIT_CODE ?? 3));
      }, 100);
    }
  });
  server.listen(Number(env.PORT), "127.0.0.1", () => console.log("listening on " + env.PORT));
}
`,
);

const supervisors: Supervisor<ProcessChild>[] = [];
afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Alive and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

let runs = 0;
async function server(env: Record<string, string>, opts: Partial<SupervisorOptions<ProcessChild>> = {}) {
  const port = await freePort();
  const spawner = processSpawner({ command: process.execPath, args: [script], env: { ...process.env, PORT: String(port), RUNS_FILE: join(dir, `runs-${++runs}`), ...env }, logLines: 50 });
  const sup = new Supervisor<ProcessChild>({
    name: "fake-llama-server",
    spawn: spawner.spawn,
    healthCheck: async (_child, signal) => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/health`, { signal })).ok;
      } catch {
        return false;
      }
    },
    healthIntervalMs: 20,
    startupTimeoutMs: 5_000,
    stopGraceMs: 300,
    restart: "on-failure",
    backoffInitialMs: 20,
    backoffMaxMs: 80,
    maxRestarts: 3,
    restartWindowMs: 60_000,
    ...opts,
  });
  supervisors.push(sup);
  const events: TransitionEvent[] = [];
  sup.events.on("transition", (e) => events.push(e));
  const path = (): string => events.map((e) => e.to).join(" ");
  /** Resolves once the supervisor has entered `state` for the n-th time. */
  const reached = (state: string, n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (events.filter((e) => e.to === state).length < n) return;
        sup.events.off("transition", check);
        resolve();
      };
      sup.events.on("transition", check);
      check();
    });
  return { sup, port, log: spawner.log, events, path, reached };
}

describe("supervised child process", () => {
  it("starts, waits until the port answers, keeps its output; stop ends it with SIGTERM", async () => {
    const { sup, port, path } = await server({});
    const logs: string[] = [];
    sup.events.on("log", (l) => logs.push(`${l.stream}: ${l.line}`));
    await sup.start();
    const pid = sup.status().pid!;
    expect(sup.status()).toMatchObject({ state: "running", restarts: 0 });
    expect(pid).toBeGreaterThan(0);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("ok");
    expect(sup.child!.lines()).toEqual(expect.arrayContaining([`server ${pid} run 0`, "warming up (stderr)", `listening on ${port}`]));
    expect(logs).toEqual(expect.arrayContaining(["stderr: warming up (stderr)", `stdout: listening on ${port}`]));
    await sup.stop();
    expect(sup.status()).toMatchObject({ state: "stopped", pid: null, lastExit: { code: null, signal: "SIGTERM" }, lastError: null });
    expect(alive(pid)).toBe(false);
    expect(path()).toBe("starting running stopping stopped");
  });

  it("restarts a process that crashed, and it serves again", async () => {
    const { sup, port, path, reached } = await server({ CRASH_RUNS: "1" });
    await sup.start();
    const first = sup.status().pid;
    await reached("running", 2);
    expect(sup.status().lastError).toMatch(/^fake-llama-server exited with code 3; last output: .*fatal: out of memory on run 0$/);
    expect(sup.status()).toMatchObject({ state: "running", restarts: 1, recentCrashes: 1, lastExit: { code: 3, signal: null } });
    expect(sup.status().pid).not.toBe(first);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("ok");
    expect(path()).toBe("starting running backoff starting running");
  });

  it("gives up on a crash loop: failed, with the exit code and its last lines as the reason", async () => {
    const { sup, path } = await server({ CRASH_RUNS: "99", EXIT_CODE: "42" }, { maxRestarts: 1 });
    await sup.start(); // the first run gets as far as ready
    await sup.waitFor("failed");
    const st = sup.status();
    expect(path()).toBe("starting running backoff starting running failed");
    expect(st.failure).toMatchObject({ permanent: false, exit: { code: 42, signal: null } });
    expect(st.failure!.reason).toMatch(/^fake-llama-server crashed 2 times within 60 s, not restarted again; last: fake-llama-server exited with code 42; last output: .*fatal: out of memory on run 1$/);
    expect(st.restarts).toBe(1);
    // An operator's start tries again (and this script crashes again).
    await sup.start();
    expect(sup.status()).toMatchObject({ restarts: 2, recentCrashes: 0 });
  });

  it("a process that ignores SIGTERM is killed, with everything it started, after the grace period", async () => {
    const grandchildFile = join(dir, "grandchild.pid");
    const { sup, log } = await server({ IGNORE_TERM: "1", GRANDCHILD_FILE: grandchildFile });
    await sup.start();
    const pid = sup.status().pid!;
    const grandchild = Number(readFileSync(grandchildFile, "utf8"));
    expect(alive(grandchild)).toBe(true);
    const stopping = sup.stop();
    expect(sup.state).toBe("stopping");
    await stopping;
    expect(sup.status()).toMatchObject({ state: "stopped", lastExit: { code: null, signal: "SIGKILL" } });
    expect(sup.child).toBeNull();
    expect(alive(pid)).toBe(false);
    // It was asked first.
    expect(log.toArray().map((l) => l.line)).toContain("ignoring SIGTERM");
    // The grandchild got the group's SIGKILL too (it is reaped by whoever adopted it).
    await expect.poll(() => alive(grandchild), { timeout: 5_000, interval: 20 }).toBe(false);
    expect(sup.status().lastExit).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("a process that never becomes healthy is stopped at the startup timeout", async () => {
    const { sup, path } = await server({ HANG: "1" }, { startupTimeoutMs: 400, restart: "never" });
    const err = await sup.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SupervisorStartError);
    expect((err as Error).message).toBe("fake-llama-server was not ready within 400 ms");
    expect(sup.status()).toMatchObject({ state: "failed", lastExit: { code: null, signal: "SIGTERM" }, failure: { exit: null, permanent: false } });
    expect(path()).toBe("starting stopping failed");
  });

  it("a command that does not exist fails to start, clearly", async () => {
    const sup = new Supervisor<ProcessChild>({
      name: "missing",
      spawn: () => new ProcessChild({ command: join(dir, "no-such-binary") }),
      restart: "never",
    });
    supervisors.push(sup);
    const err = await sup.start().then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/^missing could not be started: spawn .*no-such-binary ENOENT/);
    expect(sup.state).toBe("failed");
  });
});
