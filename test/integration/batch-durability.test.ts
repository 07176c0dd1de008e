// The batch queue survives a crash: a real `labgate serve` process is killed with SIGKILL
// in the middle of a batch and started again on the same data folder; the batch resumes
// and every request ends in the output or error file exactly once.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway } from "../fixtures/gateway.ts";

const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;

interface Served {
  child: ChildProcess;
  base: string;
  exited: Promise<number | null>;
  output(): string;
}

async function serve(cfg: string, dataDir: string, modelsDir: string): Promise<Served> {
  const child = spawn(process.execPath, [BIN, "serve", "--config", cfg, "--port", "0", "--data-dir", dataDir, "--models-dir", modelsDir], {
    env: { ...process.env, LABGATE_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  // Generous: a loaded machine (other test runs) can take long to start a process.
  await expect.poll(() => out, { timeout: 60_000 }).toContain("labgate listening on");
  const base = /labgate listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
  return { child, base, exited, output: () => out };
}

function itemStates(dataDir: string): Record<string, number> {
  const db = new Database(join(dataDir, "labgate.db"), { readonly: true });
  const rows = db.prepare("SELECT state, count(*) AS n FROM batch_item GROUP BY state").all() as { state: string; n: number }[];
  db.close();
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

describe("batch queue durability (the real CLI process)", () => {
  let dir: string;
  let up: FakeOpenAI;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "labgate-batch-kill-"));
    up = await startFakeOpenAI({ name: "slow", firstByteDelayMs: 120 });
  });
  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("SIGKILL mid-batch, then a restart on the same data folder: the batch resumes and every item is in exactly one file, once", async () => {
    const cfg = join(dir, "labgate.yaml");
    writeFileSync(
      cfg,
      [
        `providers: {lab: {type: llamacpp, base_url: "${up.url}"}}`,
        `models: {m: {deployments: [{provider: lab, model: x}]}}`,
        `lab: {discovery: {enabled: false}}`,
        `batch: {provider_concurrency: 3}`,
        `batch_profiles: {steady: {concurrency: 3}}`,
        "",
      ].join("\n"),
    );
    const dataDir = join(dir, "data");
    const modelsDir = join(dir, "models");
    const first = await serve(cfg, dataDir, modelsDir);
    children.push(first.child);
    // 90 items of 120 ms three at a time take 3.6 s: the kill lands well inside.
    const ids = Array.from({ length: 90 }, (_, i) => `doc-${String(i).padStart(2, "0")}`);
    const text = ids.map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { messages: [{ role: "user", content: `extract ${id}` }], model: "m" } })).join("\n");
    let openai = new OpenAI({ baseURL: `${first.base}/v1`, apiKey: "unused", maxRetries: 0 });
    const file = await openai.files.create({ file: await toFile(Buffer.from(text), "docs.jsonl"), purpose: "batch" });
    const batch = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "steady" } });
    await expect.poll(async () => (await openai.batches.retrieve(batch.id)).request_counts?.completed ?? 0, { timeout: 15_000, interval: 20 }).toBeGreaterThanOrEqual(6);
    // From now on the upstream takes requests and never answers: the items asked next stay
    // running, so the kill lands on a state with items done, running and pending (however
    // slow this machine is, and not in the instant between one item's end and the next's start).
    up.fault = { kind: "hang" };
    await expect
      .poll(() => {
        const s = itemStates(dataDir);
        return (s.done ?? 0) >= 6 && (s.running ?? 0) > 0 && (s.pending ?? 0) > 0;
      }, { timeout: 15_000, interval: 20 })
      .toBe(true);

    first.child.kill("SIGKILL");
    await first.exited;
    up.fault = { kind: "none" };
    // Killed mid-batch: some items ended, some never ran, some were running when it died.
    const atKill = itemStates(dataDir);
    expect(atKill.done ?? 0).toBeGreaterThanOrEqual(6);
    expect(atKill.pending ?? 0).toBeGreaterThan(0);
    expect(atKill.running ?? 0).toBeGreaterThan(0);
    expect(Object.values(atKill).reduce((a, b) => a + b, 0)).toBe(90);

    const second = await serve(cfg, dataDir, modelsDir);
    children.push(second.child);
    openai = new OpenAI({ baseURL: `${second.base}/v1`, apiKey: "unused", maxRetries: 0 });
    await expect.poll(async () => (await openai.batches.retrieve(batch.id)).status, { timeout: 30_000, interval: 50 }).toBe("completed");
    const done = await openai.batches.retrieve(batch.id);
    expect(done.request_counts).toEqual({ total: 90, completed: 90, failed: 0 });
    const lines = async (id: string | null | undefined) =>
      id ? (await (await openai.files.content(id)).text()).split("\n").filter(Boolean).map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } | null }) : [];
    const out = await lines(done.output_file_id);
    const errs = await lines(done.error_file_id);
    const seen = [...out, ...errs].map((l) => l.custom_id).sort();
    expect(seen).toEqual(ids);
    expect(new Set(seen).size).toBe(90);
    for (const l of out) expect(l.response!.status_code).toBe(200);
    // The upstream saw every item at least once (those running at the kill twice).
    expect(up.hits("/v1/chat/completions")).toBeGreaterThanOrEqual(90);
    expect(second.output()).toMatch(/batch items a stopped gateway was running are pending again/);

    const exited = second.exited;
    second.child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 180_000);

  it("a graceful stop mid-batch puts running items back, a restart finishes them; files no row names are removed at start", async () => {
    const dataDir = join(dir, "graceful");
    const yaml = JSON.stringify({
      providers: { lab: { type: "openai-compatible", base_url: up.v1 } },
      models: { m: { deployments: [{ provider: "lab", model: "x" }] } },
      batch_profiles: { steady: { concurrency: 2 } },
    });
    const first = await startGateway(yaml, { dataDir });
    let openai = new OpenAI({ baseURL: first.v1, apiKey: "unused", maxRetries: 0 });
    const ids = Array.from({ length: 12 }, (_, i) => `g-${i}`);
    const text = ids.map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: id }] } })).join("\n");
    const file = await openai.files.create({ file: await toFile(Buffer.from(text), "g.jsonl"), purpose: "batch" });
    const batch = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "steady" } });
    await expect.poll(async () => (await openai.batches.retrieve(batch.id)).request_counts?.completed ?? 0, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(2);
    await first.close();
    const atStop = itemStates(dataDir);
    expect(atStop.running ?? 0).toBe(0);
    expect(atStop.pending ?? 0).toBeGreaterThan(0);

    // What a crash between writing a file and recording it would leave, and a half upload.
    const files = join(dataDir, "files");
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, "file-0123456789abcdef01234567"), "orphan\n");
    writeFileSync(join(files, ".upload-0123456789abcdef"), "half");
    writeFileSync(join(files, "notes.txt"), "not labgate's: left alone");

    const second = await startGateway(yaml, { dataDir });
    try {
      openai = new OpenAI({ baseURL: second.v1, apiKey: "unused", maxRetries: 0 });
      expect(existsSync(join(files, "file-0123456789abcdef01234567"))).toBe(false);
      expect(existsSync(join(files, ".upload-0123456789abcdef"))).toBe(false);
      expect(existsSync(join(files, "notes.txt"))).toBe(true);
      expect(existsSync(join(files, file.id))).toBe(true);
      await expect.poll(async () => (await openai.batches.retrieve(batch.id)).status, { timeout: 15_000, interval: 50 }).toBe("completed");
      const done = await openai.batches.retrieve(batch.id);
      expect(done.request_counts).toEqual({ total: 12, completed: 12, failed: 0 });
      const out = (await (await openai.files.content(done.output_file_id!)).text()).split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { custom_id: string }).custom_id);
      expect(out).toEqual(ids);
    } finally {
      await second.close();
    }
  }, 60_000);
});

