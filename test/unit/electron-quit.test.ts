// Quit (electron/quit.ts) against real processes: a child that stops on SIGTERM, one that
// ignores it and gets SIGKILL after the grace period, the steps in order, an attached
// gateway left alone; then the real gateway (bin/labgate.js serve, started the way the
// app starts it in development) with a supervised server (test/fixtures/fake-llama-server.ts):
// Quit stops the server through the gateway, then the gateway; and when the gateway has to
// be killed and leaves a server that ignores SIGTERM behind, Quit kills that one too.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AdminClient } from "../../electron/admin-client.ts";
import { gatewayLaunch, spawnNodeGateway, type GatewayChild } from "../../electron/gateway-process.ts";
import { childTarget, leftoverServers, pidAlive, quitPlan, runQuitSequence, stopTarget, type StopTarget } from "../../electron/quit.ts";
import { LaunchedFile, processStartTicks } from "../../gateway/lab/orphans.ts";
import { freePort } from "../fixtures/ports.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const FAKE_LLAMA = new URL("../fixtures/fake-llama-server.ts", import.meta.url).pathname;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0).reverse()) c();
});

/** A node child that prints "ready" once its SIGTERM handler (if any) is installed. */
async function child(script: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, ["-e", `${script}; console.log("ready"); setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => void (c.exitCode === null && c.signalCode === null && c.kill("SIGKILL")));
  await new Promise<void>((resolve) => c.stdout!.once("data", () => resolve()));
  return c;
}

async function until(ok: () => boolean | Promise<boolean>, tries = 300): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await ok()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return ok();
}

describe("stopping one process", () => {
  it("a child that stops on SIGTERM exits within the grace period", async () => {
    const c = await child("");
    expect(await stopTarget(childTarget("polite", c), { graceMs: 5000, killMs: 5000 })).toBe("exited");
    expect(c.signalCode).toBe("SIGTERM");
  });

  it("a child that ignores SIGTERM gets SIGKILL after the grace period", async () => {
    const c = await child(`process.on("SIGTERM", () => {})`);
    expect(await stopTarget(childTarget("stubborn", c), { graceMs: 300, killMs: 5000 })).toBe("killed");
    expect(c.signalCode).toBe("SIGKILL");
  });

  it("a child already gone is not signalled", async () => {
    const c = spawn(process.execPath, ["-e", "0"]);
    await new Promise((r) => c.once("exit", r));
    expect(await stopTarget(childTarget("gone", c), { graceMs: 100, killMs: 100 })).toBe("not-running");
  });
});

/** A target that writes down what was done to it, and exits on SIGTERM or only on SIGKILL. */
function recorded(name: string, log: string[], opts: { ignoreTerm?: boolean } = {}): StopTarget {
  let alive = true;
  let exit!: () => void;
  const exited = new Promise<void>((r) => (exit = r));
  return {
    name,
    alive: () => alive,
    terminate: () => {
      log.push(`${name}: SIGTERM`);
      if (!opts.ignoreTerm) (alive = false), exit();
    },
    kill: () => {
      log.push(`${name}: SIGKILL`);
      alive = false;
      exit();
    },
    exited: () => exited,
  };
}

describe("the quit sequence", () => {
  it("stops the servers through the gateway, then the gateway, then what it left behind, in that order", async () => {
    const log: string[] = [];
    const gateway = recorded("gateway", log, { ignoreTerm: true });
    const leftover = await child(`process.on("SIGTERM", () => {})`);
    // What killed it, as this process hears it: the quit sequence sees the pid gone (or a
    // zombie) before Node has reaped the child and set its signalCode.
    const leftoverSignal = new Promise<NodeJS.Signals | null>((r) => leftover.once("exit", (_code, signal) => r(signal)));
    const report = await runQuitSequence(
      quitPlan({
        ownsGateway: true,
        stopServersViaGateway: async () => {
          log.push("POST /admin/lab/processes/lab-llama/stop");
          return "1/1 stopped";
        },
        gateway,
        serverPids: [{ name: "lab-llama", pid: leftover.pid!, startTicks: processStartTicks(leftover.pid!)! }],
        timeouts: { serversViaGatewayMs: 5000, gateway: { graceMs: 200, killMs: 1000 }, leftovers: { graceMs: 200, killMs: 5000 } },
      }),
    );
    expect(log).toEqual(["POST /admin/lab/processes/lab-llama/stop", "gateway: SIGTERM", "gateway: SIGKILL"]);
    expect(report).toEqual([
      { step: "supervised servers (via the gateway)", outcome: "1/1 stopped" },
      { step: "gateway", outcome: "killed" },
      { step: `lab-llama (pid ${leftover.pid}, if left behind)`, outcome: "killed" },
    ]);
    expect(await leftoverSignal).toBe("SIGKILL");
  });

  it("a gateway that does not answer the stop request does not hold Quit up", async () => {
    const log: string[] = [];
    const report = await runQuitSequence(
      quitPlan({
        ownsGateway: true,
        stopServersViaGateway: () => new Promise<string>(() => {}), // never answers
        gateway: recorded("gateway", log),
        serverPids: [{ name: "x", pid: 2 ** 22 + 17 }], // no such process
        timeouts: { serversViaGatewayMs: 200, gateway: { graceMs: 1000, killMs: 1000 }, leftovers: { graceMs: 100, killMs: 100 } },
      }),
    );
    expect(report.map((l) => l.outcome)).toEqual(["gave up after 200 ms", "exited", "not-running"]);
  });

  it("an attached gateway (one the app did not start) is left running", () => {
    const log: string[] = [];
    const steps = quitPlan({
      ownsGateway: false,
      stopServersViaGateway: async () => "stopped",
      gateway: recorded("gateway", log),
      serverPids: [{ name: "x", pid: 1 }],
      timeouts: { serversViaGatewayMs: 1, gateway: { graceMs: 1, killMs: 1 }, leftovers: { graceMs: 1, killMs: 1 } },
    });
    expect(steps).toEqual([]);
  });
});

describe("the real gateway, started as the app starts it in development", () => {
  async function startRealGateway(llama: { port: number; args: string[]; stopTimeoutS: number }) {
    const dir = mkdtempSync(join(tmpdir(), "labgate-desktop-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = {
      providers: {
        "lab-llama": {
          type: "llamacpp",
          base_url: `http://127.0.0.1:${llama.port}`,
          launch: { command: process.execPath, args: [FAKE_LLAMA, "--port", String(llama.port), ...llama.args], startup_timeout_s: 20, stop_timeout_s: llama.stopTimeoutS },
        },
      },
      models: { m: { deployments: [{ provider: "lab-llama", model: "x" }] } },
      lab: { discovery: { enabled: false } },
    };
    const file = join(dir, "labgate.yaml");
    writeFileSync(file, JSON.stringify(config));
    const port = await freePort();
    const launch = gatewayLaunch({
      packaged: false,
      appRoot: ROOT,
      host: "127.0.0.1",
      port,
      nodeCommand: process.execPath,
      env: { PATH: process.env.PATH, HOME: dir, LABGATE_CONFIG: file, LABGATE_DATA_DIR: join(dir, "data"), LABGATE_LOG_LEVEL: "warn" },
    });
    if (launch.kind !== "node") throw new Error("development launches use node");
    const gw: GatewayChild = spawnNodeGateway(launch, "ignore");
    cleanup.push(() => void (gw.alive() && gw.kill()));
    const client = new AdminClient(`http://127.0.0.1:${port}`);
    let pid: number | null = null;
    const running = await until(async () => {
      try {
        const p = ((await client.get("/admin/lab/processes")).data as { state: string; pid: number | null }[])[0];
        pid = p?.state === "running" ? p.pid : null;
        return pid !== null;
      } catch {
        return false;
      }
    });
    expect(running).toBe(true);
    cleanup.push(() => void (pid !== null && pidAlive(pid) && process.kill(pid, "SIGKILL")));
    // What the app reads at Quit: the start time the gateway recorded for the server.
    const servers = leftoverServers([{ name: "lab-llama", pid: pid! }], new LaunchedFile(join(dir, "data", "launched.json")).read(), () => undefined);
    expect(servers[0]!.startTicks).toMatch(/^\d+$/);
    return { gw, client, serverPid: pid!, servers };
  }

  it("Quit stops the supervised server through the gateway, then the gateway exits on SIGTERM", async () => {
    const { gw, client, serverPid, servers } = await startRealGateway({ port: await freePort(), args: [], stopTimeoutS: 5 });
    const report = await runQuitSequence(
      quitPlan({
        ownsGateway: true,
        stopServersViaGateway: async () => {
          const v = await client.processAction("lab-llama", "stop");
          return String(v.state);
        },
        gateway: gw,
        serverPids: servers,
        timeouts: { serversViaGatewayMs: 15_000, gateway: { graceMs: 20_000, killMs: 5000 }, leftovers: { graceMs: 2000, killMs: 2000 } },
      }),
    );
    expect(report.map((l) => l.outcome)).toEqual(["stopped", "exited", "not-running"]);
    expect(pidAlive(serverPid)).toBe(false);
    expect(gw.alive()).toBe(false);
  });

  it("when the gateway must be killed, the server it leaves behind (ignoring SIGTERM) is killed too", async () => {
    const { gw, serverPid, servers } = await startRealGateway({ port: await freePort(), args: ["--ignore-sigterm"], stopTimeoutS: 60 });
    const report = await runQuitSequence(
      quitPlan({
        ownsGateway: true,
        gateway: gw,
        serverPids: servers,
        // The gateway waits up to 60 s for its server: the app gives it 1 s.
        timeouts: { serversViaGatewayMs: 0, gateway: { graceMs: 1000, killMs: 5000 }, leftovers: { graceMs: 300, killMs: 5000 } },
      }),
    );
    expect(report).toEqual([
      { step: "gateway", outcome: "killed" },
      { step: `lab-llama (pid ${serverPid}, if left behind)`, outcome: "killed" },
    ]);
    expect(pidAlive(serverPid)).toBe(false);
  });
});
