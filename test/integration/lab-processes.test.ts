// Servers labgate launches, with real child processes (test/fixtures/fake-llama-server.ts
// speaking llama.cpp's protocol): health wait before traffic, crash and restart with
// backoff, crash-loop give-up and an operator's start, logs and follow, graceful and
// forced stop, on-demand start and idle stop, a port someone else holds, and no
// orphans after the gateway itself is killed with SIGKILL.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pidAlive } from "../../electron/quit.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { openSse } from "../fixtures/sse-client.ts";
import { freePort } from "../fixtures/ports.ts";

const FAKE = new URL("../fixtures/fake-llama-server.ts", import.meta.url).pathname;
const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function launchConfig(port: number, fakeArgs: string[] = [], launch: Record<string, unknown> = {}) {
  return {
    providers: {
      "lab-llama": {
        type: "llamacpp",
        base_url: `http://127.0.0.1:${port}`,
        launch: {
          command: process.execPath,
          args: [FAKE, "--port", String(port), ...fakeArgs],
          startup_timeout_s: 20,
          stop_timeout_s: 0.5,
          backoff_initial_s: 0.1,
          backoff_max_s: 0.4,
          max_restarts: 2,
          restart_window_s: 60,
          ...launch,
        },
      },
    },
    models: { m: { deployments: [{ provider: "lab-llama", model: "x" }] } },
    router: { retries: 0 },
    server: { sse_keepalive_s: 0.2 },
  };
}

async function gateway(config: unknown, dataDir?: string): Promise<TestGateway> {
  const gw = await startGateway(JSON.stringify(config), dataDir ? { dataDir } : {});
  cleanup.push(() => gw.close());
  return gw;
}

interface Proc {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
  lastError: string | null;
  failure: string | null;
  last_exit: { code: number | null; signal: string | null } | null;
}

const proc = async (gw: TestGateway): Promise<Proc> =>
  ((await (await fetch(`${gw.url}/admin/lab/processes`)).json()) as { data: Proc[] }).data[0]!;

async function until(gw: TestGateway, ok: (p: Proc) => boolean, tries = 400): Promise<Proc> {
  let p = await proc(gw);
  for (let i = 0; i < tries && !ok(p); i++) {
    await new Promise((r) => setTimeout(r, 50));
    p = await proc(gw);
  }
  return p;
}

const chat = async (gw: TestGateway, stream = false) => {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream }),
  });
  return { status: res.status, text: await res.text() };
};

// Whether the process runs. A zombie counts as ended: an orphan (its gateway was killed) is
// reaped by init, and some inits (this machine's) take seconds to do it; kill(pid, 0) alone
// would call it alive meanwhile.
const alive = pidAlive;

describe("launched servers", () => {
  it("waits for health before routing, restarts after a crash with backoff, and keeps its logs", async () => {
    const port = await freePort();
    const gw = await gateway(launchConfig(port, ["--health-delay-ms", "600"]));
    const events = await openSse(`${gw.url}/admin/events`);
    cleanup.push(() => events.close());
    // While it loads, traffic is not routed to it.
    const early = await proc(gw);
    if (early.state !== "running") expect((await chat(gw)).status).toBe(503);
    const running = await until(gw, (p) => p.state === "running");
    expect(running).toMatchObject({ state: "running", restarts: 0 });
    const first = await chat(gw);
    expect(first.status).toBe(200);
    expect(first.text).toContain(`pid ${running.pid}`);

    // It crashes: the supervisor restarts it after the backoff and traffic goes to the new one.
    await fetch(`http://127.0.0.1:${port}/__crash`, { method: "POST" });
    const again = await until(gw, (p) => p.state === "running" && p.pid !== running.pid);
    expect(again.restarts).toBe(1);
    expect(again.lastError).toMatch(/exit code 3/);
    expect((await chat(gw)).text).toContain(`pid ${again.pid}`);
    await events.waitFor((e) => e.event === "process" && e.data.to === "backoff");
    const transitions = events.events.filter((e) => e.event === "process").map((e) => `${e.data.from}->${e.data.to}`);
    expect(transitions).toEqual(expect.arrayContaining(["running->backoff", "backoff->starting", "starting->running"]));

    // Its output is kept, and can be followed.
    const logs = (await (await fetch(`${gw.url}/admin/lab/processes/lab-llama/logs?lines=50`)).json()) as { data: { stream: string; line: string }[] };
    expect(logs.data.map((l) => l.line)).toEqual(expect.arrayContaining([`main: crash asked, exit code 3`, `main: server is listening on http://127.0.0.1:${port}`]));
    const follow = await openSse(`${gw.url}/admin/lab/processes/lab-llama/logs?follow=1&lines=1`);
    cleanup.push(() => follow.close());
    await chat(gw);
    await follow.waitFor((e) => e.event === "log" && e.data.line === "request: POST /v1/chat/completions");
  });

  it("gives up after a crash loop with the last exit and output as the reason; an operator's start tries again", async () => {
    const port = await freePort();
    // It crashes before it is ever healthy, every time.
    const gw = await gateway(launchConfig(port, ["--crash-after-ms", "150", "--exit-code", "7", "--health-delay-ms", "60000"]));
    const failed = await until(gw, (p) => p.state === "failed");
    expect(failed.state).toBe("failed");
    expect(failed.failure).toMatch(/exit code 7/);
    expect(failed.failure).toMatch(/crashing with exit code 7/);
    expect((await chat(gw)).status).toBe(503);
    const restartsAtFailure = failed.restarts;
    // The operator tries again: it starts (and, here, fails the same way: a 409 saying why).
    const res = await fetch(`${gw.url}/admin/lab/processes/lab-llama/start`, { method: "POST" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/exit code 7/);
    expect((await proc(gw)).restarts).toBeGreaterThan(restartsAtFailure);
  });

  it("stops gracefully on SIGTERM, and forces one that ignores it after stop_timeout_s", async () => {
    const port = await freePort();
    const gw = await gateway(launchConfig(port));
    await until(gw, (p) => p.state === "running");
    const stopped = (await (await fetch(`${gw.url}/admin/lab/processes/lab-llama/stop`, { method: "POST" })).json()) as Proc;
    expect(stopped).toMatchObject({ state: "stopped", last_exit: { code: 0, signal: null } });
    expect((await chat(gw)).status).toBe(503);
    expect((await (await fetch(`${gw.url}/admin/lab/processes/lab-llama/start`, { method: "POST" })).json()) as Proc).toMatchObject({ state: "running" });
    // The operator's toggle works on a launched server's provider too.
    await fetch(`${gw.url}/admin/providers/lab-llama/disable`, { method: "POST" });
    expect((await chat(gw)).status).toBe(503);
    await fetch(`${gw.url}/admin/providers/lab-llama/enable`, { method: "POST" });
    expect((await chat(gw)).status).toBe(200);

    const port2 = await freePort();
    const stubborn = await gateway(launchConfig(port2, ["--ignore-sigterm"]));
    const p = await until(stubborn, (x) => x.state === "running");
    const forced = (await (await fetch(`${stubborn.url}/admin/lab/processes/lab-llama/stop`, { method: "POST" })).json()) as Proc;
    expect(forced).toMatchObject({ state: "stopped", last_exit: { signal: "SIGKILL" } });
    expect(alive(p.pid!)).toBe(false);
    const lines = ((await (await fetch(`${stubborn.url}/admin/lab/processes/lab-llama/logs`)).json()) as { data: { line: string }[] }).data.map((l) => l.line);
    expect(lines).toContain("main: SIGTERM ignored");
  });

  it("on demand: starts at the first request (a stream keeps alive meanwhile) and stops when idle", async () => {
    const port = await freePort();
    const gw = await gateway(launchConfig(port, ["--health-delay-ms", "800"], { on_demand: true, idle_ttl_s: 0.5 }));
    expect((await proc(gw)).state).toBe("stopped");
    const streamed = await chat(gw, true);
    expect(streamed.status).toBe(200);
    expect(streamed.text.startsWith(": keep-alive")).toBe(true);
    expect(streamed.text).toMatch(/pid \d+/);
    expect(streamed.text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    const idle = await until(gw, (p) => p.state === "stopped", 200);
    expect(idle).toMatchObject({ state: "stopped", last_exit: { code: 0 } });
    // And starts again for the next request.
    expect((await chat(gw)).status).toBe(200);
  });

  it("a port another program holds is a clear failure, not a crash loop", async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => holder.close(() => r())));
    const port = (holder.address() as { port: number }).port;
    const gw = await gateway(launchConfig(port));
    const p = await until(gw, (x) => x.state === "failed");
    expect(p).toMatchObject({ state: "failed", restarts: 0 });
    expect(p.failure).toMatch(new RegExp(`port ${port} on 127.0.0.1 is already in use by another program`));
  });

  it("no orphans: a gateway killed with SIGKILL leaves its server behind, and the next one stops it", async () => {
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), "labgate-orphans-"));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const configFile = join(dataDir, "labgate.yaml");
    await writeFile(configFile, JSON.stringify(launchConfig(port)));
    const serve = (): ChildProcess => {
      const c = spawn(process.execPath, [BIN, "serve", "--config", configFile, "--data-dir", dataDir, "--port", "0"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, LABGATE_LOG_LEVEL: "info" },
      });
      cleanup.push(() => void c.kill("SIGKILL"));
      return c;
    };
    const launchedPid = async (): Promise<number | undefined> => {
      for (let i = 0; i < 400; i++) {
        try {
          const recs = JSON.parse(readFileSync(join(dataDir, "launched.json"), "utf8")) as { pid: number }[];
          if (recs[0]) return recs[0].pid;
        } catch {
          // not written yet
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return undefined;
    };
    const first = serve();
    const orphan = await launchedPid();
    expect(orphan).toBeDefined();
    first.kill("SIGKILL");
    await new Promise((r) => first.once("close", r));
    expect(alive(orphan!)).toBe(true); // left behind

    const second = serve();
    let out = "";
    second.stdout!.on("data", (d: Buffer) => (out += d));
    for (let i = 0; i < 400 && alive(orphan!); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(orphan!)).toBe(false);
    for (let i = 0; i < 200 && !out.includes("stopped a server an earlier labgate left running"); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain("stopped a server an earlier labgate left running");
    second.kill("SIGTERM");
    await new Promise((r) => second.once("close", r));
  });
});

describe("launched servers' secrets", () => {
  it("a launch arg's --api-key and a resolved secret never reach the API, the live events, the logs or crash reasons", async () => {
    const SECRET = "SECRET-flag-value-7c41";
    const RESOLVED = "resolved-upstream-9f8e7d";
    const dir = await mkdtemp(join(tmpdir(), "labgate-secret-args-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // A server that prints its own command line (as many do) at start and as it exits,
    // then runs the fake llama-server with the flags it knows.
    const wrapper = join(dir, "echo-args-server.mjs");
    await writeFile(
      wrapper,
      [
        `const line = "started with " + process.argv.slice(2).join(" ");`,
        `process.stderr.write(line + "\\n");`,
        `process.on("exit", () => process.stderr.write(line + "\\n"));`,
        `const keep = []; const a = process.argv.slice(2);`,
        `for (let i = 0; i < a.length; i++) { if (a[i] === "--api-key" || a[i] === "--alias") i++; else keep.push(a[i]); }`,
        `process.argv.splice(2, Infinity, ...keep);`,
        `await import(${JSON.stringify(FAKE)});`,
      ].join("\n"),
    );
    const port = await freePort();
    const config = launchConfig(port, [], { args: [wrapper, "--port", String(port), "--api-key", SECRET, "--alias", RESOLVED] });
    (config.providers["lab-llama"] as Record<string, unknown>).api_key = "env:LAB_UPSTREAM_KEY";
    const gw = await startGateway(JSON.stringify(config), { env: { LAB_UPSTREAM_KEY: RESOLVED } });
    cleanup.push(() => gw.close());
    const events = await openSse(`${gw.url}/admin/events`);
    cleanup.push(() => events.close());
    const running = await until(gw, (p) => p.state === "running");
    expect(running.state).toBe("running");
    const follow = await openSse(`${gw.url}/admin/lab/processes/lab-llama/logs?follow=1&lines=50`);
    cleanup.push(() => follow.close());

    // It crashes: the reason quotes its last output, which holds its command line.
    await fetch(`http://127.0.0.1:${port}/__crash`, { method: "POST" });
    const again = await until(gw, (p) => p.state === "running" && p.pid !== running.pid);
    expect(again.lastError).toMatch(/last output: .*started with/);
    await events.waitFor((e) => e.event === "process" && e.data.to === "backoff");
    await follow.waitFor((e) => String(e.data.line).includes("crash asked"));

    const served = [
      await (await fetch(`${gw.url}/admin/lab/processes`)).text(),
      await (await fetch(`${gw.url}/admin/lab/processes/lab-llama/logs?lines=200`)).text(),
      JSON.stringify(events.events),
      JSON.stringify(follow.events),
    ];
    expect(events.events.some((e) => e.event === "snapshot" && JSON.stringify(e.data).includes("--api-key"))).toBe(true);
    for (const text of served) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(RESOLVED);
    }
    // The lines were there, masked: a user sees that a value was hidden.
    const view = ((await (await fetch(`${gw.url}/admin/lab/processes`)).json()) as { data: { args: string[] }[] }).data[0]!;
    expect(view.args).toEqual([wrapper, "--port", String(port), "--api-key", "[REDACTED]", "--alias", "[REDACTED]"]);
    expect(served[1]).toContain("started with");
    expect(served[1]).toContain("[REDACTED]");
  });
});

describe("maskLaunchArgs", () => {
  it("masks the values of secret-looking flags, header values and key=/token= forms, and returns them as secrets", async () => {
    const { maskLaunchArgs } = await import("../../gateway/lab/processes.ts");
    const r = maskLaunchArgs([
      "--api-key", "k1-aaaa", "--token=t2-bbbb", "-H", "Authorization: Bearer b3-cccc", "--header", "x-api-key: h4-dddd",
      "--password", "p5-eeee", "api_key=k6-ffff", "token=t7-gggg", "--port", "8080", "--secret-file", "--verbose", "-m", "model.gguf",
      "--hf-token", "hf-eeee", "--max-num-batched-tokens", "8192", "max_tokens=512", "--monkey=banana",
    ]);
    expect(r.args).toEqual([
      "--api-key", "[REDACTED]", "--token=[REDACTED]", "-H", "Authorization: [REDACTED]", "--header", "x-api-key: [REDACTED]",
      "--password", "[REDACTED]", "api_key=[REDACTED]", "token=[REDACTED]", "--port", "8080", "--secret-file", "--verbose", "-m", "model.gguf",
      "--hf-token", "[REDACTED]", "--max-num-batched-tokens", "8192", "max_tokens=512", "--monkey=banana",
    ]);
    expect(r.secrets).toEqual(expect.arrayContaining(["k1-aaaa", "t2-bbbb", "b3-cccc", "h4-dddd", "p5-eeee", "k6-ffff", "t7-gggg", "hf-eeee"]));
    expect(r.secrets).not.toContain("8192"); // a count is not a secret (it would be blanked in every message)
  });
});
