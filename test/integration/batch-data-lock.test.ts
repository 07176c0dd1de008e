// One gateway per data folder: a second `labgate serve` on a folder a running one uses
// exits at once with one line naming it (two gateways would corrupt each other's batches);
// a lock left by a gateway that died is taken over.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_FILE } from "../../gateway/store/data-lock.ts";

const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;

interface Run {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

function run(dataDir: string, cfg: string): Run {
  const child = spawn(process.execPath, [BIN, "serve", "--config", cfg, "--port", "0", "--data-dir", dataDir, "--models-dir", join(dataDir, "models")], {
    env: { ...process.env, LABGATE_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

describe("the data folder lock (real `labgate serve` processes)", () => {
  let dir: string;
  let cfg: string;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "labgate-lock-"));
    cfg = join(dir, "labgate.yaml");
    writeFileSync(cfg, "server:\n  host: 127.0.0.1\n");
  });
  afterAll(() => {
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("a second serve on the same data folder exits with code 2 and one line naming the first's pid; the first keeps serving", async () => {
    const data = join(dir, "shared");
    const first = run(data, cfg);
    children.push(first.child);
    await expect.poll(() => first.output(), { timeout: 60_000 }).toContain("labgate listening on");
    const second = run(data, cfg);
    children.push(second.child);
    expect(await second.exited).toBe(2);
    const lines = second.output().trim().split("\n");
    expect(lines).toEqual([`labgate: another labgate (pid ${first.child.pid}) uses ${data}; stop it or use --data-dir`]);
    // The first still answers, and its lock names it.
    const base = /labgate listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(first.output())![1]!;
    expect((await fetch(`${base}/health`)).status).toBeLessThan(500);
    expect(JSON.parse(readFileSync(join(data, LOCK_FILE), "utf8")).pid).toBe(first.child.pid);
    // A clean stop removes the lock.
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
  });

  it("a lock left by a process that died (its pid not running) is taken over", async () => {
    const data = join(dir, "stale");
    const dead = spawn(process.execPath, ["-e", "0"]);
    const deadPid = dead.pid!;
    await new Promise((resolve) => dead.on("exit", resolve));
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, LOCK_FILE), JSON.stringify({ pid: deadPid, started_at: "2026-01-01T00:00:00.000Z", token: "old" }));
    const g = run(data, cfg);
    children.push(g.child);
    await expect.poll(() => g.output(), { timeout: 60_000 }).toContain("labgate listening on");
    expect(JSON.parse(readFileSync(join(data, LOCK_FILE), "utf8")).pid).toBe(g.child.pid);
    g.child.kill("SIGKILL");
    await g.exited;
  });
});
