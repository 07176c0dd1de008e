// Upstream error text never hands the lab's secrets to clients. A provider that
// quotes the request's Authorization header (and its own stack trace) in a 401, or
// in an error event mid-stream, reaches the client cleaned: configured secrets and
// bearer tokens are [REDACTED], stack lines and file paths gone, the message bounded.
// The request log holds no key either, and the server log has the full text at
// debug level, with the secrets redacted the same way.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeAnthropic } from "../fixtures/fake-anthropic.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const CLOUD_KEY = "sk-cloud-0123456789abcdefSECRET";
const LAB_TOKEN = "lab-header-token-7f3a9c";
const MASTER_KEY = "master-key-for-tests-42";
const ANTHROPIC_KEY = "sk-ant-api03-abcdefghijklmnopSECRET";
const env = { CLOUD_KEY, LAB_TOKEN, LABGATE_MASTER_KEY: MASTER_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY };
const SECRETS = [CLOUD_KEY, LAB_TOKEN, MASTER_KEY, ANTHROPIC_KEY];

function expectNoSecret(text: string, where: string): void {
  for (const s of SECRETS) expect(text.includes(s), `${where} contains a secret`).toBe(false);
}

function config(openaiUrl: string, anthropicUrl = "http://127.0.0.1:9"): string {
  return JSON.stringify({
    server: { master_key: "env:LABGATE_MASTER_KEY" },
    providers: {
      cloud: { type: "openai-compatible", base_url: openaiUrl, api_key: "env:CLOUD_KEY", headers: { "x-lab-token": "env:LAB_TOKEN" } },
      claude: { type: "anthropic", base_url: anthropicUrl, api_key: "env:ANTHROPIC_API_KEY" },
    },
    models: {
      cloudy: { deployments: [{ provider: "cloud", model: "gpt-x" }] },
      claude: { deployments: [{ provider: "claude", model: "claude-test" }] },
    },
    router: { retries: 0, circuit_breaker: { consecutive_failures: 1000, min_requests: 1000 } },
  });
}

async function chat(base: string, model: string, stream: boolean): Promise<{ status: number; text: string; id: string | null }> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${MASTER_KEY}` },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], stream }),
  });
  return { status: res.status, text: await res.text(), id: res.headers.get("x-request-id") };
}

/** The client-facing message of an error answer: the JSON body's, or the stream's error event's. */
function messageOf(text: string): string {
  const json = text.trimStart().startsWith("{")
    ? (JSON.parse(text) as { error: { message: string } })
    : (JSON.parse(
        text
          .split("\n\n")
          .map((b) => b.replace(/^data: /, ""))
          .find((d) => d.startsWith('{"error"'))!,
      ) as { error: { message: string } });
  return json.error.message;
}

function expectCleaned(message: string): void {
  expect(message).toContain("Incorrect API key provided"); // still says what went wrong
  expect(message).toContain("[REDACTED]");
  expect(message).not.toMatch(/\bat checkKey|\/srv\/fake-upstream|task_queues/); // no stack lines, no paths
  expect(message).not.toContain("\n");
  expect(message.length).toBeLessThanOrEqual(600);
}

describe("through a gateway", () => {
  let up: FakeOpenAI;
  let gw: TestGateway;
  afterEach(async () => {
    await gw?.close();
    await up?.close();
  });

  async function setUp(): Promise<void> {
    up = await startFakeOpenAI({ name: "cloud", reply: ["one", " two", " three"] });
    gw = await startGateway(config(up.v1), { env });
  }

  function rowJson(id: string | null): string {
    gw.gateway.requestLog.flush();
    const row = gw.gateway.requestLog.get(id ?? "");
    expect(row).toBeDefined();
    return JSON.stringify(row);
  }

  it("a 401 that echoes the Authorization header and a stack: the client's error and the log row hold no key", async () => {
    await setUp();
    for (const stream of [false, true]) {
      up.faultNext({ kind: "echo_credentials", status: 401 });
      const a = await chat(gw.url, "cloudy", stream);
      // The upstream did get the key and echoed it; the client does not.
      expect(up.requests.at(-1)!.headers.authorization).toBe(`Bearer ${CLOUD_KEY}`);
      expect(a.status).toBe(502);
      expectNoSecret(a.text, "the client's answer");
      expectCleaned(messageOf(a.text));
      const row = rowJson(a.id);
      expectNoSecret(row, "the request log row");
      expect(JSON.parse(row)).toMatchObject({ status: 502, error_class: "auth" });
    }
  });

  it("the same echo in an error event mid-stream: the event holds no key, the chunks before it arrive", async () => {
    await setUp();
    up.faultNext({ kind: "echo_credentials", status: 500, afterChunks: 2 });
    const a = await chat(gw.url, "cloudy", true);
    expect(a.status).toBe(200);
    expect(a.text).toContain('"one"');
    expectNoSecret(a.text, "the stream");
    expectCleaned(messageOf(a.text));
    expectNoSecret(rowJson(a.id), "the request log row");
  });

  it("Anthropic's 401 quoting its x-api-key: cleaned too", async () => {
    const anthropic = await startFakeAnthropic();
    up = await startFakeOpenAI({ name: "cloud" });
    gw = await startGateway(config(up.v1, anthropic.url), { env });
    try {
      anthropic.faultOnce({
        kind: "http",
        status: 401,
        errorType: "authentication_error",
        message: `Incorrect API key provided: x-api-key: ${ANTHROPIC_KEY}\n    at verify (/opt/anthropic/gateway/auth.py:12:3)`,
      });
      const a = await chat(gw.url, "claude", false);
      expect(a.status).toBe(502);
      expectNoSecret(a.text, "the client's answer");
      expectCleaned(messageOf(a.text));
      expectNoSecret(rowJson(a.id), "the request log row");
    } finally {
      await anthropic.close();
    }
  });
});

describe("the server log", () => {
  const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  let up: FakeOpenAI | undefined;
  afterEach(async () => {
    child?.kill("SIGKILL");
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("has the full upstream text at debug level, with every secret redacted, and no key anywhere", async () => {
    up = await startFakeOpenAI({ name: "cloud", reply: ["one", " two", " three"] });
    dir = mkdtempSync(join(tmpdir(), "labgate-redact-"));
    const cfg = join(dir, "labgate.yaml");
    writeFileSync(cfg, config(up.v1));
    child = spawn(process.execPath, [BIN, "serve", "--config", cfg, "--port", "0", "--data-dir", join(dir, "data"), "--models-dir", join(dir, "models")], {
      env: { ...process.env, ...env, LABGATE_LOG_LEVEL: "debug" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out, { timeout: 15_000 }).toContain("labgate listening on");
    const base = /labgate listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;

    up.faultNext({ kind: "echo_credentials", status: 401 });
    const plain = await chat(base, "cloudy", false);
    up.faultNext({ kind: "echo_credentials", status: 500, afterChunks: 1 });
    const streamed = await chat(base, "cloudy", true);
    expectNoSecret(plain.text + streamed.text, "the answers");

    // Both full texts are logged, stack included, secrets redacted.
    await expect.poll(() => out.split("upstream error (full text)").length - 1, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    const lines = out.split("\n").filter((l) => l.includes("upstream error (full text)"));
    expect(lines.some((l) => l.includes("at checkKey") && l.includes("[REDACTED]"))).toBe(true);
    const exited = new Promise<void>((resolve) => child!.on("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
    expectNoSecret(out, "the server log");
    // Nor the database file.
    expectNoSecret(readFileSync(join(dir, "data", "labgate.db")).toString("latin1"), "labgate.db");
  }, 30_000);
});
