// `labgate batch ...` as a user runs it: the real CLI process (bin/labgate.js) against a
// real gateway with its batch queue in front of a fake upstream.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { batchCommand, progressBar } from "../../gateway/batch/cli.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { freePort } from "../fixtures/ports.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

// The shipped default config, as if it could not be read (in-process calls of batchCommand only;
// the CLI processes below load their own modules).
vi.mock("../../gateway/config/defaults.ts", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../gateway/config/defaults.ts")>()),
  DEFAULT_CONFIG_FILE: new URL("file:///nonexistent-labgate/labgate.yaml"),
}));

const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;
const KEY = "sk-lab-batch-cli-123456";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function labgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: dir, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
let up: FakeOpenAI;
let gw: TestGateway;
let input: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "labgate-batch-cli-"));
  up = await startFakeOpenAI({ name: "up", firstByteDelayMs: 20 });
  gw = await startGateway(
    `
server: {master_key: env:MASTER}
providers: {lab: {type: openai-compatible, base_url: "${up.v1}"}}
models: {m: {deployments: [{provider: lab, model: x}]}}
batch_profiles: {nightly: {concurrency: 2, max_tokens: 3}}
`,
    { env: { MASTER: KEY } },
  );
  input = join(dir, "requests.jsonl");
  writeFileSync(
    input,
    Array.from({ length: 12 }, (_, i) => JSON.stringify({ custom_id: `r${i + 1}`, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: `q${i + 1}` }] } })).join("\n") + "\n",
  );
  env = { LABGATE_URL: gw.url, LABGATE_API_KEY: KEY };
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("labgate batch", () => {
  it("submit, status until it ends, list and download: the whole round trip", async () => {
    const submitted = await labgate(["batch", "submit", input, "--profile", "nightly"], env);
    expect(submitted.stderr).toMatch(/uploaded requests\.jsonl as file-[0-9a-f]+ .* batch batch_[0-9a-f]+ is validating \(profile nightly\)/);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^batch_[0-9a-f]{24}$/);

    // Not a terminal: one line per change, in order, ending with the summary; exit 0 when completed.
    const status = await labgate(["batch", "status", id, "--every", "0.05"], env);
    expect(status.code).toBe(0);
    const lines = status.stdout.trim().split("\n");
    expect(lines.at(-2)).toBe(`${id} completed 12/12 done (12 completed, 0 failed)`);
    expect(lines.at(-1)).toMatch(new RegExp(`^${id} completed after [0-9.]+s: 12 completed, 0 failed of 12 \\(output file-[0-9a-f]+\\); labgate batch download ${id}`));
    expect(new Set(lines).size).toBe(lines.length); // nothing printed twice
    expect(status.stdout).not.toContain("\r");

    const list = await labgate(["batch", "list"], env);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID +STATUS +DONE +FAILED +PROFILE +CREATED +ENDPOINT$/);
    expect(list.stdout).toMatch(new RegExp(`${id} +completed +12/12 +0 +nightly +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ +/v1/chat/completions`));

    const out = join(dir, "results.jsonl");
    const saved = await labgate(["batch", "download", id, "-o", out], env);
    expect(saved.code).toBe(0);
    expect(saved.stderr).toContain(`written to ${out}`);
    const rows = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: { usage: { completion_tokens: number } } } });
    expect(rows.map((r) => r.custom_id)).toEqual(Array.from({ length: 12 }, (_, i) => `r${i + 1}`));
    // The profile's max_tokens reached the upstream: 3 of the fake's 5 words.
    expect(rows.every((r) => r.response.status_code === 200 && r.response.body.usage.completion_tokens === 3)).toBe(true);

    const piped = await labgate(["batch", "download", id], env);
    expect(piped.stdout).toBe(readFileSync(out, "utf8"));
    const noErrors = await labgate(["batch", "download", id, "--errors"], env);
    expect(noErrors.code).toBe(1);
    expect(noErrors.stderr).toBe(`labgate: batch ${id} (completed) has no error file (it has an output file)\n`);
  });

  it("finds the gateway and its key from the config (server.port, server.master_key)", async () => {
    const config = join(dir, "labgate.yaml");
    writeFileSync(config, `server: {host: 127.0.0.1, port: ${new URL(gw.url).port}, master_key: env:MASTER}\n`);
    const ok = await labgate(["batch", "list", "--config", config], { MASTER: KEY });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ID +STATUS/);
    // The key's variable is not set: said before anything is sent.
    const unset = await labgate(["batch", "list", "--config", config]);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/server\.master_key is env:MASTER.*set LABGATE_API_KEY/);
    // A wrong key: the gateway's refusal in one line.
    const wrong = await labgate(["batch", "list"], { LABGATE_URL: gw.url, LABGATE_API_KEY: "sk-wrong" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe("labgate: Incorrect API key provided. (set LABGATE_API_KEY to the gateway's master key) [HTTP 401]\n");
  });

  it("cancel, then status says how it ended and exits 1; download of a running batch says to wait", async () => {
    // Slow enough that the batch is still running when the next commands start (each is a new process).
    up.options.firstByteDelayMs = 5000;
    try {
      const id = (await labgate(["batch", "submit", input], env)).stdout.trim();
      const early = await labgate(["batch", "download", id], env);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(new RegExp(`batch ${id} is (validating|in_progress): its files are written when it ends`));
      const cancelled = await labgate(["batch", "cancel", id], env);
      expect(cancelled.stdout).toMatch(new RegExp(`^${id} (cancelling|cancelled)\n$`));
      const status = await labgate(["batch", "status", id, "--every", "0.05"], env);
      expect(status.code).toBe(1);
      expect(status.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^${id} cancelled after .*of 12`));
    } finally {
      up.options.firstByteDelayMs = 20;
    }
  });

  it("mistakes and an absent gateway get one line each", async () => {
    const unknown = await labgate(["batch", "status", "batch_000000000000000000000000"], env);
    expect(unknown).toMatchObject({ code: 1, stderr: "labgate: No such Batch object: batch_000000000000000000000000 [HTTP 404]\n" });
    const port = await freePort();
    const away = await labgate(["batch", "list"], { LABGATE_URL: `http://127.0.0.1:${port}`, LABGATE_API_KEY: KEY });
    expect(away.code).toBe(1);
    expect(away.stderr).toBe(`labgate: no gateway answers at http://127.0.0.1:${port} (ECONNREFUSED): is labgate serve running? (--url URL or LABGATE_URL)\n`);
    expect(await labgate(["batch", "submit", join(dir, "nope.jsonl")], env)).toMatchObject({ code: 2, stderr: `labgate: ${join(dir, "nope.jsonl")}: no such file\n` });
    expect(await labgate(["batch", "status"], env)).toMatchObject({ code: 2, stderr: "labgate: ID is missing (usage: labgate batch status ID)\n" });
    expect(await labgate(["batch", "frobnicate"], env)).toMatchObject({ code: 2 });
    const help = await labgate(["batch", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("labgate batch submit FILE [--profile P] [--endpoint E]");
    // A bad line is refused at upload with its line number.
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}\nnot json\n');
    const refused = await labgate(["batch", "submit", bad], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^labgate: The batch file has 1 invalid line: Line 2: .*\[HTTP 400\]\n$/);
  });
});

describe("labgate batch: scripts, keys and broken pipes", () => {
  it("submit --follow prints the id alone on stdout (progress on stderr) and exits 1 when every item failed", async () => {
    const failing = join(dir, "failing.jsonl");
    writeFileSync(failing, Array.from({ length: 3 }, (_, i) => JSON.stringify({ custom_id: `f${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "no-such-model", messages: [] } })).join("\n") + "\n");
    const run = await labgate(["batch", "submit", failing, "--follow", "--every", "0.05"], env);
    expect(run.stdout).toMatch(/^batch_[0-9a-f]{24}\n$/);
    const id = run.stdout.trim();
    expect(run.stderr).toMatch(new RegExp(`${id} completed after [0-9.]+s: 0 completed, 3 failed of 3`));
    expect(run.code).toBe(1);
    // status says the same: completed, but not a success.
    const status = await labgate(["batch", "status", id], env);
    expect(status.stdout).toContain(`${id} completed 3/3 done (0 completed, 3 failed)`);
    expect(status.code).toBe(1);
    const help = await labgate(["batch", "--help"]);
    expect(help.stdout).toMatch(/Exit status: 0 when it worked \(status and submit --follow: the batch completed with no failed\s+request\)/);
  });

  it("sends the config's master key only to that config's server or loopback", async () => {
    const config = join(dir, "keyed.yaml");
    writeFileSync(config, `server: {host: 127.0.0.1, port: ${new URL(gw.url).port}, master_key: env:MASTER}\n`);
    // Another machine (TEST-NET-1, never contacted): refused before anything is sent.
    const remote = await labgate(["batch", "list", "--config", config, "--url", "http://192.0.2.1:4000"], { MASTER: KEY });
    expect(remote).toMatchObject({ code: 2, stdout: "" });
    expect(remote.stderr).toBe(`labgate: not sending ${config}'s server.master_key to 192.0.2.1:4000 (not that config's server 127.0.0.1, nor loopback): set LABGATE_API_KEY to that gateway's key\n`);
    // Loopback under another name is fine.
    const local = await labgate(["batch", "list", "--config", config, "--url", gw.url.replace("127.0.0.1", "localhost")], { MASTER: KEY });
    expect(local.code).toBe(0);
  });

  it("names the default config file when it cannot be loaded", async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    const code = await batchCommand(["list"], {}, { out, err });
    expect(code).toBe(2);
    expect(String(err.read())).toMatch(/^labgate: cannot use the config \/nonexistent-labgate\/labgate\.yaml: .*ENOENT.*\n$/);
  });

  it("a download the gateway cuts off mid-file is one line and exit 1", async () => {
    const server = createServer((req, res) => {
      if (req.url === "/v1/batches/batch_cut") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: "batch_cut", status: "completed", output_file_id: "file-cut", error_file_id: null }));
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": 100_000 });
      res.write('{"custom_id":"a"}\n', () => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const cut = await labgate(["batch", "download", "batch_cut"], { LABGATE_URL: url, LABGATE_API_KEY: KEY });
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(/^labgate: the output file of batch_cut \(file-cut\) was cut off: .+\n$/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("progressBar (the terminal's redrawn line)", () => {
  it("shows share, counts, failures, status, pace and time left", () => {
    expect(progressBar({ status: "in_progress", request_counts: { total: 1000, completed: 597, failed: 3 } }, { width: 10, rate: 12.5 })).toBe(
      "[██████░░░░]   60%  600/1000  3 failed  in_progress  13/s  ETA 32s",
    );
    expect(progressBar({ status: "validating", request_counts: { total: 0, completed: 0, failed: 0 } }, { width: 4 })).toBe("[░░░░]    0%  0/0  validating");
    expect(progressBar({ status: "completed", request_counts: { total: 8, completed: 8, failed: 0 } }, { width: 4, rate: 3 })).toBe("[████]  100%  8/8  completed");
  });
});
