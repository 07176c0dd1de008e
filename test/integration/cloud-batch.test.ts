// The cloud Batch API client (gateway/batch/cloud-batch.ts) against the fake OpenAI Files +
// Batch server on loopback; and the fake itself checked with OpenAI's own SDK, so the
// client is tested against the protocol and not against a fake made to its measure.
import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { CloudBatchClient, CloudBatchError, parseResultLines, type CloudBatch, type CloudRequestLine } from "../../gateway/batch/cloud-batch.ts";
import { startFakeOpenAIBatch, type FakeOpenAIBatch } from "../fixtures/fake-openai-batch.ts";

const KEY = "sk-cloud-test-0123456789";
let fake: FakeOpenAIBatch | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const lines = (n: number, url = "/v1/chat/completions"): CloudRequestLine[] =>
  Array.from({ length: n }, (_, i) => ({ custom_id: `req-${i + 1}`, method: "POST", url, body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `q${i + 1}` }] } }));

describe("the fake OpenAI batch server, seen by OpenAI's SDK", () => {
  it("uploads, creates, follows a batch to completed and serves its output in OpenAI's line format", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const sdk = new OpenAI({ baseURL: fake.v1, apiKey: KEY, maxRetries: 0 });
    const jsonl = lines(3).map((l) => JSON.stringify(l)).join("\n");
    const file = await sdk.files.create({ file: await toFile(Buffer.from(jsonl), "in.jsonl"), purpose: "batch" });
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "in.jsonl", bytes: Buffer.byteLength(jsonl) });
    let batch = await sdk.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    expect(batch.status).toBe("validating");
    const seen = new Set<string>([batch.status]);
    // Followed until it ends, however long a loaded machine takes (the bound only catches a hang).
    await expect
      .poll(
        async () => {
          batch = await sdk.batches.retrieve(batch.id);
          seen.add(batch.status);
          return batch.status;
        },
        { timeout: 60_000, interval: 5 },
      )
      .toMatch(/^(completed|failed|expired|cancelled)$/);
    expect(batch.status).toBe("completed");
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(batch.completed_at).toBeGreaterThan(0);
    const text = await (await sdk.files.content(batch.output_file_id!)).text();
    const out = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(out.map((l) => l.custom_id)).toEqual(["req-1", "req-2", "req-3"]);
    expect(Object.keys(out[0]!)).toEqual(["id", "custom_id", "response", "error"]);
    expect(out[0]).toMatchObject({ error: null, response: { status_code: 200, body: { object: "chat.completion", choices: [{ message: { content: "cloud answers req-1" } }] } } });
  });

  it("refuses a wrong key with OpenAI's 401", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const sdk = new OpenAI({ baseURL: fake.v1, apiKey: "sk-wrong", maxRetries: 0 });
    await expect(sdk.batches.list()).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
  });
});

describe("CloudBatchClient", () => {
  it("runs items through a cloud batch: upload, create, poll to the end, both result files parsed", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY, failItem: (id) => id === "req-4" });
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY });
    const fileId = await client.uploadRequests(lines(5));
    expect(fake.files.get(fileId)?.purpose).toBe("batch");
    const created = await client.createBatch({ input_file_id: fileId, endpoint: "/v1/chat/completions", metadata: { labgate_batch: "batch_x" } });
    const statuses: string[] = [];
    const ended = await client.waitUntilEnded(created.id, { initialDelayMs: 2, maxDelayMs: 20, onUpdate: (b) => statuses.push(b.status) });
    expect(ended.status).toBe("completed");
    expect(statuses.at(-1)).toBe("completed");
    expect(ended.request_counts).toEqual({ total: 5, completed: 4, failed: 1 });
    const output = await client.resultLines(ended.output_file_id!);
    const errors = await client.resultLines(ended.error_file_id!);
    expect(output.malformed + errors.malformed).toBe(0);
    expect(output.lines.map((l) => l.custom_id)).toEqual(["req-1", "req-2", "req-3", "req-5"]);
    expect(errors.lines).toEqual([expect.objectContaining({ custom_id: "req-4", response: expect.objectContaining({ status_code: 400 }) })]);
    // Every call carried the key; nothing else was asked.
    expect(fake.requests.every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);
  });

  it("keeps polling through transient failures (503, 429) and slows down while nothing moves", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY });
    const created = await client.createBatch({ input_file_id: await client.uploadRequests(lines(2)), endpoint: "/v1/chat/completions" });
    fake.paused = true;
    fake.failNext("retrieve", 503, 2);
    fake.failNext("retrieve", 429);
    const polls: string[] = [];
    const waiting = client.waitUntilEnded(created.id, { initialDelayMs: 1, maxDelayMs: 8, onUpdate: (b) => polls.push(b.status) });
    // Paused: the client keeps asking while the batch stays put.
    await until(() => polls.length >= 4);
    expect(new Set(polls)).toEqual(new Set(["validating"]));
    fake.paused = false;
    const ended = await waiting;
    expect(ended.status).toBe("completed");
    expect(fake.requests.filter((r) => r.path === `/v1/batches/${created.id}`).length).toBeGreaterThanOrEqual(polls.length + 3);
  });

  it("gives up on a refusal (401, 404) at once, with the API's message", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const wrong = new CloudBatchClient({ baseUrl: fake.v1, apiKey: "sk-wrong-key-000000" });
    const err = await wrong.uploadRequests(lines(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudBatchError);
    expect(err).toMatchObject({ status: 401, code: "invalid_api_key", retryable: false });
    expect((err as Error).message).toContain("Incorrect API key provided");
    expect((err as Error).message).not.toContain("sk-wrong-key");
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY });
    await expect(client.waitUntilEnded("batch_nope", { initialDelayMs: 1 })).rejects.toMatchObject({ status: 404 });
  });

  it("says when the cloud cannot be reached, and a poll stops when its signal is aborted", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const url = fake.v1;
    const client = new CloudBatchClient({ baseUrl: url, apiKey: KEY });
    const created = await client.createBatch({ input_file_id: await client.uploadRequests(lines(1)), endpoint: "/v1/chat/completions" });
    fake.paused = true;
    const abort = new AbortController();
    const updates: CloudBatch[] = [];
    const waiting = client.waitUntilEnded(created.id, { initialDelayMs: 1, signal: abort.signal, onUpdate: (b) => updates.push(b) });
    await until(() => updates.length > 0);
    abort.abort();
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
    await fake.close();
    fake = undefined;
    const err = (await client.retrieveBatch(created.id).catch((e: unknown) => e)) as CloudBatchError;
    expect(err).toBeInstanceOf(CloudBatchError);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("a batch the cloud rejects ends failed with its errors; an expired one keeps its finished part", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY, expireAfterItems: 2 });
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY });
    fake.rejectNextBatch();
    const rejected = await client.createBatch({ input_file_id: await client.uploadRequests(lines(2)), endpoint: "/v1/chat/completions" });
    expect(rejected.status).toBe("failed");
    expect(rejected.errors?.data?.length).toBe(1);
    const b = await client.createBatch({ input_file_id: await client.uploadRequests(lines(4)), endpoint: "/v1/chat/completions" });
    const ended = await client.waitUntilEnded(b.id, { initialDelayMs: 2 });
    expect(ended.status).toBe("expired");
    expect((await client.resultLines(ended.output_file_id!)).lines.map((l) => l.custom_id)).toEqual(["req-1", "req-2"]);
    const errors = (await client.resultLines(ended.error_file_id!)).lines;
    expect(errors.map((l) => [l.custom_id, l.error?.code])).toEqual([
      ["req-3", "batch_expired"],
      ["req-4", "batch_expired"],
    ]);
  });
});

describe("CloudBatchClient: credentials and Retry-After", () => {
  it("no key or header value the client sends appears in an error, whatever the cloud quotes back", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const PROXY = "proxy-secret-77777777";
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY, headers: { "x-proxy-token": PROXY } });
    fake.failNext("upload", 401, 1, { quoteHeaders: true });
    fake.failNext("upload", 502, 1, { quoteHeaders: true, plainText: true });
    for (const status of [401, 502]) {
      const err = (await client.uploadRequests(lines(1)).catch((e: unknown) => e)) as CloudBatchError;
      expect(err).toBeInstanceOf(CloudBatchError);
      expect(err).toMatchObject({ status, retryable: status === 502 });
      // The cloud did quote them (the fake saw them), the message keeps the rest of what it said.
      expect(err.message).toContain(`${status}`);
      expect(err.message).toContain("[REDACTED]");
      expect(err.message).not.toContain(KEY);
      expect(err.message).not.toContain(PROXY);
      expect(JSON.stringify(err)).not.toContain(KEY);
    }
    expect(fake.requests.filter((r) => r.path === "/v1/files").every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);
  });

  it("waits as long as a 429's Retry-After asks before polling again", async () => {
    fake = await startFakeOpenAIBatch({ apiKey: KEY });
    const client = new CloudBatchClient({ baseUrl: fake.v1, apiKey: KEY });
    const created = await client.createBatch({ input_file_id: await client.uploadRequests(lines(1)), endpoint: "/v1/chat/completions" });
    fake.failNext("retrieve", 429, 1, { retryAfter: "1" });
    const started = performance.now();
    let firstAnswerAt: number | undefined;
    const ended = await client.waitUntilEnded(created.id, { initialDelayMs: 1, maxDelayMs: 8, onUpdate: () => (firstAnswerAt ??= performance.now()) });
    expect(ended.status).toBe("completed");
    // A lower bound only: the backoff alone (1-8 ms) would have asked again at once.
    expect(firstAnswerAt! - started).toBeGreaterThanOrEqual(950);
  });
});

describe("parseResultLines", () => {
  it("reads a result file the way input lines are read: a byte order mark is not a problem, a body nested too deep is", () => {
    const deep = `{"id":"d","custom_id":"deep","response":{"status_code":200,"request_id":null,"body":${"[".repeat(5000)}${"]".repeat(5000)}},"error":null}`;
    const text = `\uFEFF{"id":"a","custom_id":"first","response":{"status_code":200,"request_id":null,"body":{}},"error":null}\r\n${deep}\n`;
    const r = parseResultLines(text);
    expect(r.lines.map((l) => l.custom_id)).toEqual(["first"]);
    expect(r.malformed).toBe(1);
  });

  it("reads OpenAI's documented output and error lines and counts what is not one", () => {
    const text = [
      '{"id": "batch_req_wnaDys", "custom_id": "request-2", "response": {"status_code": 200, "request_id": "req_c187b3", "body": {"object": "chat.completion"}}, "error": null}',
      '{"id": "batch_req_Jk41Lm", "custom_id": "request-4", "response": null, "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}',
      "{not json",
      '{"id": "x", "response": null, "error": null}',
      "",
    ].join("\n");
    const r = parseResultLines(text);
    expect(r.malformed).toBe(2);
    expect(r.lines.map((l) => l.custom_id)).toEqual(["request-2", "request-4"]);
    expect(r.lines[1]!.error?.code).toBe("batch_expired");
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}
