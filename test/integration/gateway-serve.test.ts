// labgate as a newcomer runs it: the real CLI process, auth, SSE keep-alive for
// slow local models, secrets that cannot be resolved, and a clean SIGTERM.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway } from "../fixtures/gateway.ts";

const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;

let up: FakeOpenAI;
beforeAll(async () => {
  up = await startFakeOpenAI({ name: "up" });
});
afterAll(async () => {
  await up?.close();
});

describe("master key", () => {
  it("with server.master_key set, /v1 needs the bearer key; health stays open", async () => {
    const gw = await startGateway(
      `
server: {master_key: env:LABGATE_MASTER_KEY}
providers: {lab: {type: llamacpp, base_url: "${up.url}"}}
models: {tiny: {deployments: [{provider: lab, model: x}]}}
`,
      { env: { LABGATE_MASTER_KEY: "sk-lab-master-123" } },
    );
    try {
      const body = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }] });
      const none = await fetch(gw.v1 + "/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(none.status).toBe(401);
      expect(await none.json()).toMatchObject({ error: { type: "authentication_error", code: "missing_api_key" } });
      const wrong = new OpenAI({ baseURL: gw.v1, apiKey: "sk-wrong", maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toMatchObject({ status: 401 });
      const right = new OpenAI({ baseURL: gw.v1, apiKey: "sk-lab-master-123", maxRetries: 0 });
      const r = await right.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] });
      expect(r.choices[0]!.message.content).toContain("Hello");
      expect((await fetch(gw.url + "/health")).status).toBe(200);
      gw.gateway.requestLog.flush();
      expect(gw.gateway.requestLog.recent(1)[0]!.tenant).toBe("master");
    } finally {
      await gw.close();
    }
  });
});

describe("unresolvable secrets", () => {
  it("mark only that provider unavailable, with the reason, and the gateway serves the others", async () => {
    const gw = await startGateway(`
providers:
  lab: {type: llamacpp, base_url: "${up.url}"}
  openai: {type: openai, base_url: "${up.v1}", api_key: env:OPENAI_API_KEY}
  azure: {type: azure, base_url: "${up.url}", api_version: "2024-10-21", api_key: "vault:secret/lab/azure"}
models:
  tiny: {deployments: [{provider: lab, model: x}]}
  cloud: {deployments: [{provider: openai, model: gpt-4o}]}
`);
    try {
      const h = await fetch(gw.url + "/health/openai");
      expect(h.status).toBe(503);
      const body = (await h.json()) as { available: boolean; reason: string };
      expect(body.available).toBe(false);
      expect(body.reason).toMatch(/OPENAI_API_KEY is not set/);
      expect(((await (await fetch(gw.url + "/health/azure")).json()) as { reason: string }).reason).toMatch(/vault/);
      const cloud = await fetch(gw.v1 + "/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "cloud", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(cloud.status).toBe(503);
      const client = new OpenAI({ baseURL: gw.v1, apiKey: "x", maxRetries: 0 });
      const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] });
      expect(r.choices[0]!.message.content).toContain("Hello");
    } finally {
      await gw.close();
    }
  });
});

describe("SSE keep-alive", () => {
  it("while a slow local model has not produced its first token, comments keep the connection warm", async () => {
    const slowStart = await startFakeOpenAI({ name: "slow", firstByteDelayMs: 1200, reply: ["late", " answer"] });
    const gw = await startGateway(`
server: {sse_keepalive_s: 0.3}
providers: {lab: {type: llamacpp, base_url: "${slowStart.url}"}}
models: {tiny: {deployments: [{provider: lab, model: x}]}}
`);
    try {
      const res = await fetch(gw.v1 + "/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", stream: true, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.headers.get("x-routed-provider")).toBe("lab");
      const text = await res.text();
      // Comments come before the first token, so the headers went out before it too (no elapsed-time check).
      const comments = text.split("\n\n").filter((e) => e.startsWith(": keep-alive"));
      expect(comments.length).toBeGreaterThanOrEqual(2);
      expect(text.indexOf(": keep-alive")).toBeLessThan(text.indexOf("data: {"));
      expect(text).toContain('"late"');
      expect(text.trim().endsWith("data: [DONE]")).toBe(true);
      // The OpenAI client ignores the comments.
      const client = new OpenAI({ baseURL: gw.v1, apiKey: "x", maxRetries: 0 });
      let got = "";
      for await (const c of await client.chat.completions.create({ model: "tiny", stream: true, messages: [{ role: "user", content: "hi" }] })) {
        got += c.choices[0]?.delta?.content ?? "";
      }
      expect(got).toBe("late answer");
    } finally {
      await gw.close();
      await slowStart.close();
    }
  });
});

describe("labgate serve (the real CLI process)", () => {
  let dir: string;
  let child: ChildProcess | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "labgate-cli-"));
  });
  afterAll(() => {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts on the given port, serves, and on SIGTERM finishes in-flight requests and flushes the log", async () => {
    const slowUp = await startFakeOpenAI({ name: "cli", reply: ["a", "b", "c", "d", "e", "f"], chunkDelayMs: 150 });
    const cfg = join(dir, "labgate.yaml");
    writeFileSync(cfg, `providers: {lab: {type: llamacpp, base_url: "${slowUp.url}"}}\nmodels: {tiny: {deployments: [{provider: lab, model: x}]}}\n`);
    const dataDir = join(dir, "data");
    // Port 0: the system picks a free one, and the log line says which (a random port could be taken).
    child = spawn(process.execPath, [BIN, "serve", "--config", cfg, "--port", "0", "--data-dir", dataDir, "--models-dir", join(dir, "models")], {
      env: { ...process.env, LABGATE_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out, { timeout: 15_000 }).toContain("labgate listening on");
    const base = /labgate listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    // A stream that is still running when SIGTERM arrives.
    const inFlight = fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", stream: true, messages: [{ role: "user", content: "go" }] }),
    }).then((r) => r.text());
    await expect.poll(() => slowUp.hits(), { timeout: 5000 }).toBe(1); // in flight: the upstream has it
    const exited = new Promise<number | null>((resolve) => child!.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    const text = await inFlight;
    expect(text).toContain('"f"');
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    expect(await exited).toBe(0);
    expect(out).toMatch(/request log flushed/);
    const db = new Database(join(dataDir, "labgate.db"), { readonly: true });
    const rows = db.prepare("SELECT status, stream, completion_tokens FROM request_log").all();
    db.close();
    expect(rows).toEqual([{ status: 200, stream: 1, completion_tokens: 6 }]);
    await slowUp.close();
  }, 30_000);

  it("validate prints every problem with file and line and exits 1; a good file exits 0 with a summary", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d: Buffer) => (out += d.toString()));
        p.stderr.on("data", (d: Buffer) => (out += d.toString()));
        p.on("exit", (code) => resolve({ code, out }));
      });
    const example = new URL("../../resources/labgate.example.yaml", import.meta.url).pathname;
    const good = await run(["validate", example]);
    expect(good.code).toBe(0);
    expect(good.out.trim().split("\n")).toHaveLength(1);
    expect(good.out).toMatch(/OK — 7 providers, 4 models/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, readFileSync(example, "utf8").replace('"gpt-oss:20b-cloud"]', '"gpt-oss:120b"]').replace("retries: 2", "retries: many"));
    const r = await run(["validate", bad]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`${bad}:\\d+:\\d+: models\\.llama3\\.1:latest\\.fallbacks\\[1\\]: fallback model "gpt-oss:120b" is not defined`));
    expect(r.out).toMatch(/router\.retries: expected number/);
  }, 30_000);
});
