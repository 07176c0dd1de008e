// Exposure and shutdown (issue #9, items 7 and 8): a gateway bound to a network address
// without a master key refuses to start unless told to; after SIGTERM, a stream that would
// outlast server.shutdown_grace_s is cancelled, its row written (499), and the process exits.
// The gateways bound to 0.0.0.0 here only ever get traffic on 127.0.0.1.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGateway, type Gateway } from "../../gateway/app.ts";
import { exposureProblem, isLoopbackHost } from "../../gateway/api/guards.ts";
import { parseConfigText } from "../../gateway/config/load.ts";
import { useLab } from "../fixtures/lab.ts";
import { send } from "../fixtures/raw-http.ts";

const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;
const lab = useLab();

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "labgate-hardening-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `labgate serve` as a child process; resolves with its exit code and everything it printed. */
function serve(args: string[], env: Record<string, string> = {}): { exited: Promise<number | null>; output: () => string; kill(signal: NodeJS.Signals): void } {
  const child = spawn(process.execPath, [BIN, "serve", ...args], {
    env: { ...process.env, LABGATE_LOG_LEVEL: "info", LABGATE_MASTER_KEY: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  // A test that fails half-way leaves no process behind.
  afterAll(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { exited, output: () => out, kill: (s) => child.kill(s) };
}

async function gatewayFrom(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Gateway> {
  const parsed = parseConfigText(yaml, "test.yaml");
  if (!parsed.ok) throw new Error(parsed.problems.map((p) => p.message).join("\n"));
  const dataDir = mkdtempSync(join(dir, "gw-"));
  return buildGateway({ config: parsed.config, dataDir, modelsDir: join(dataDir, "models"), env, logLevel: "silent", healthIntervalMs: 0, serverDiscovery: false });
}

describe("listening on a network address", () => {
  it("labgate serve --host 0.0.0.0 without a master key refuses to start and says why", async () => {
    const cfg = join(dir, "open.yaml");
    writeFileSync(cfg, "providers: {}\n");
    const p = serve(["--config", cfg, "--host", "0.0.0.0", "--port", "0", "--data-dir", join(dir, "open-data"), "--models-dir", join(dir, "models")]);
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/refusing to listen on 0\.0\.0\.0 without server\.master_key/);
    expect(p.output()).toMatch(/server\.allow_unauthenticated: true/);
    expect(p.output()).not.toMatch(/labgate listening on/);
  }, 60_000);

  it("in process: listen() refuses 0.0.0.0 before binding; allow_unauthenticated or a master key lets it start", async () => {
    const up = await lab.fake({ name: "up" });
    const providers = `providers: {lab: {type: llamacpp, base_url: "${up.url}"}}\nmodels: {m: {deployments: [{provider: lab, model: x}]}}\n`;

    const refused = await gatewayFrom(providers);
    try {
      await expect(refused.listen("0.0.0.0", 0)).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without server\.master_key/);
      expect(refused.app.server.listening).toBe(false);
    } finally {
      await refused.close();
    }

    const allowed = await gatewayFrom(`server: {allow_unauthenticated: true}\n${providers}`);
    try {
      const url = await allowed.listen("0.0.0.0", 0);
      const port = new URL(url).port;
      const r = await send(`http://127.0.0.1:${port}`, "/v1/models");
      expect(r.status).toBe(200);
    } finally {
      await allowed.close();
    }

    const keyed = await gatewayFrom(`server: {master_key: env:LABGATE_MASTER_KEY}\n${providers}`, { LABGATE_MASTER_KEY: "sk-m" });
    try {
      const url = await keyed.listen("0.0.0.0", 0);
      const port = new URL(url).port;
      expect((await send(`http://127.0.0.1:${port}`, "/v1/models")).status).toBe(401);
      expect((await send(`http://127.0.0.1:${port}`, "/v1/models", { headers: { authorization: "Bearer sk-m" } })).status).toBe(200);
    } finally {
      await keyed.close();
    }
  });

  it("which bind addresses count as loopback", () => {
    for (const h of ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"]) {
      expect(isLoopbackHost(h), h).toBe(true);
      expect(exposureProblem(h, undefined, { allow_unauthenticated: false }), h).toBeUndefined();
    }
    for (const h of ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "gpu-box.lab", "128.0.0.1"]) {
      expect(isLoopbackHost(h), h).toBe(false);
      expect(exposureProblem(h, undefined, { allow_unauthenticated: false }), h).toMatch(/refusing/);
      expect(exposureProblem(h, "key", { allow_unauthenticated: false }), h).toBeUndefined();
      expect(exposureProblem(h, undefined, { allow_unauthenticated: true }), h).toBeUndefined();
    }
  });
});

describe("shutdown deadline (the real CLI process)", () => {
  it("after SIGTERM, a slow-reading stream is cancelled at server.shutdown_grace_s, its row is written as 499, and the process exits", async () => {
    // A long answer: 400 chunks, 50 ms apart (20 s), far longer than the grace period.
    const up = await lab.fake({ name: "long", reply: Array.from({ length: 400 }, (_, i) => ` word${i}`), chunkDelayMs: 50 });
    const cfg = join(dir, "grace.yaml");
    writeFileSync(cfg, `server: {shutdown_grace_s: 1}\nproviders: {lab: {type: llamacpp, base_url: "${up.url}"}}\nmodels: {tiny: {deployments: [{provider: lab, model: x}]}}\n`);
    const dataDir = join(dir, "grace-data");
    const p = serve(["--config", cfg, "--port", "0", "--data-dir", dataDir, "--models-dir", join(dir, "models")]);
    await expect.poll(() => p.output(), { timeout: 40_000 }).toContain("labgate listening on");
    const port = Number(/labgate listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(p.output())![1]);

    // The client sends its request and then reads (almost) nothing.
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    const body = JSON.stringify({ model: "tiny", stream: true, messages: [{ role: "user", content: "go" }] });
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    let firstBytes = "";
    socket.once("data", (d: Buffer) => {
      firstBytes = d.toString();
      socket.pause();
    });
    await expect.poll(() => firstBytes, { timeout: 10_000 }).toMatch(/^HTTP\/1\.1 200/);

    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    socket.destroy();
    expect(p.output()).toMatch(/shutdown grace period over: cancelling in-flight requests/);
    expect(p.output()).toMatch(/request log flushed/);
    // The upstream's stream was cancelled long before its end.
    await expect.poll(() => up.abortedStreams, { timeout: 5000 }).toBe(1);

    const db = new Database(join(dataDir, "labgate.db"), { readonly: true });
    try {
      const rows = db.prepare("SELECT status, stream, error_class FROM request_log").all();
      expect(rows).toEqual([{ status: 499, stream: 1, error_class: "cancelled" }]);
    } finally {
      db.close();
    }
  }, 60_000);
});
