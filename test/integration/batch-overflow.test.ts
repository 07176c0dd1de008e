// Cloud overflow of the local batch queue, through a real gateway: a batch whose profile has
// a short completion_window and an overflow_provider, a slow local upstream (the fake
// OpenAI-compatible server) and a fake OpenAI Files + Batch API as the cloud. The queue
// measures its own pace, sends what it cannot finish in time to the cloud, and merges the
// answers into the batch's one output file: each custom_id exactly once, none run twice.
import Database from "better-sqlite3";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeOpenAIBatch, type FakeOpenAIBatch } from "../fixtures/fake-openai-batch.ts";
import { useLab } from "../fixtures/lab.ts";

const CLOUD_KEY = "sk-cloud-overflow-0123456789";
const lab = useLab({ env: { CLOUD_KEY } });
let cloud: FakeOpenAIBatch | undefined;
afterEach(async () => {
  await cloud?.close();
  cloud = undefined;
});

interface Line {
  custom_id: string;
  response: { status_code: number; body: { choices?: { message: { content: string } }[] } } | null;
  error: { code: string; message: string } | null;
}

const N = 60;
const ids = Array.from({ length: N }, (_, i) => `item-${String(i + 1).padStart(3, "0")}`);
const input = ids.map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: id }] } })).join("\n") + "\n";

// The local pace is the test's (the fake upstream holds its answers, see each test), so whether
// the deadline needs the cloud does not depend on the machine's speed.
const config = (localV1: string, cloudUrl: string, window = "6s") => ({
  providers: {
    local: { type: "openai-compatible", base_url: localV1 },
    cloud: { type: "openai", base_url: cloudUrl, api_key: "env:CLOUD_KEY" },
  },
  models: { m: { deployments: [{ provider: "local", model: "x" }] } },
  router: { retries: 0 },
  batch_profiles: { rush: { completion_window: window, concurrency: 1, overflow_provider: "cloud" } },
});

async function runBatch(v1: string): Promise<{ batch: OpenAI.Batches.Batch; output: Line[]; errors: Line[] }> {
  const openai = new OpenAI({ baseURL: v1, apiKey: "unused", maxRetries: 0 });
  const file = await openai.files.create({ file: await toFile(Buffer.from(input), "rush.jsonl"), purpose: "batch" });
  const created = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "rush" } });
  let batch = created;
  await expect
    .poll(
      async () => {
        batch = await openai.batches.retrieve(created.id);
        return batch.status;
      },
      { timeout: 60_000, interval: 100 },
    )
    .toMatch(/^(completed|expired|failed|cancelled)$/);
  const read = async (id: string | null | undefined): Promise<Line[]> =>
    id ? (await (await openai.files.content(id)).text()).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Line) : [];
  return { batch, output: await read(batch.output_file_id), errors: await read(batch.error_file_id) };
}

describe("cloud overflow", () => {
  it("sends what the local pace cannot finish in the window to the cloud's Batch API and merges the answers into one output file", async () => {
    // Five quick local answers, then the local upstream stalls until the cloud has been sent
    // items (the pace measured is then far too slow for the window): the overflow must act, and
    // once it has, the local queue answers the rest at once.
    let answered = 0;
    const cloudHasItems = () =>
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if ((cloud?.batches.size ?? 0) > 0) {
            clearInterval(t);
            resolve();
          }
        }, 20);
      });
    const local = await lab.fake({ name: "local", beforeAnswer: () => (answered++ < 5 ? undefined : cloudHasItems()) });
    cloud = await startFakeOpenAIBatch({ apiKey: CLOUD_KEY, name: "cloud" });
    const gw = await lab.gateway(config(local.v1, cloud.url, "30s"));
    const { batch, output, errors } = await runBatch(gw.v1);

    expect(batch.status).toBe("completed");
    expect(errors).toEqual([]);
    // One output file, in input order, each custom_id exactly once, every one answered.
    expect(output.map((l) => l.custom_id)).toEqual(ids);
    expect(output.every((l) => l.response?.status_code === 200)).toBe(true);
    expect(batch.request_counts).toEqual({ total: N, completed: N, failed: 0 });

    const byCloud = output.filter((l) => l.response?.body.choices?.[0]?.message.content === `cloud answers ${l.custom_id}`);
    const byLocal = output.filter((l) => l.response?.body.choices?.[0]?.message.content === "Hello from the fake upstream.");
    expect(byCloud.length).toBeGreaterThan(0);
    expect(byLocal.length).toBeGreaterThan(0);
    expect(byCloud.length + byLocal.length).toBe(N);
    // Nothing ran twice: the local upstream saw exactly the items it answered, the cloud exactly the rest.
    expect(local.hits("/v1/chat/completions")).toBe(byLocal.length);
    const sent = [...cloud.batches.values()].flatMap((b) => b.lines.map((l) => l.custom_id));
    expect(sent.sort()).toEqual(byCloud.map((l) => l.custom_id).sort());
    // The cloud was asked with its own key, and got a batch input it could read.
    expect(cloud.requests.length).toBeGreaterThan(0);
    expect(cloud.requests.every((r) => r.authorization === `Bearer ${CLOUD_KEY}`)).toBe(true);
    expect([...cloud.batches.values()].every((b) => b.errorsList === null)).toBe(true);
    // The request log counts both: one row per item, the cloud's marked overflow on its provider with its tokens.
    gw.gateway.requestLog.flush();
    const db = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
    try {
      const rows = db.prepare("SELECT provider, is_overflow AS overflow, status, tenant, count(*) AS n, sum(prompt_tokens) AS prompt FROM request_log GROUP BY provider, is_overflow, status, tenant ORDER BY provider").all();
      expect(rows).toEqual([
        { provider: "cloud", overflow: 1, status: 200, tenant: "batch:anonymous", n: byCloud.length, prompt: 3 * byCloud.length },
        { provider: "local", overflow: 0, status: 200, tenant: "batch:anonymous", n: byLocal.length, prompt: expect.any(Number) },
      ]);
    } finally {
      db.close();
    }
  });

  it("when the cloud refuses, its items go back to the local queue; the window closes with the finished part kept", async () => {
    // Three local answers, then the local upstream holds every request until the batch has
    // ended: without the cloud it cannot finish, whatever the machine's speed.
    let answered = 0;
    let release!: () => void;
    const ended = new Promise<void>((r) => (release = r));
    const local = await lab.fake({ name: "local", beforeAnswer: () => (answered++ < 3 ? undefined : ended) });
    cloud = await startFakeOpenAIBatch({ apiKey: CLOUD_KEY, name: "cloud" });
    cloud.failNext("create", 500, 10);
    const gw = await lab.gateway(config(local.v1, cloud.url));
    let run: Awaited<ReturnType<typeof runBatch>>;
    try {
      run = await runBatch(gw.v1);
    } finally {
      release();
    }
    const { batch, output, errors } = run;
    // Items run in input order: the three answered ones are the first three.
    expect(output.map((l) => l.custom_id)).toEqual(ids.slice(0, 3));

    expect(batch.status).toBe("expired");
    expect(cloud.batches.size).toBe(0);
    // Every item ended once, in one of the two files: answered locally, or expired.
    expect([...output, ...errors].map((l) => l.custom_id).sort()).toEqual(ids);
    expect(output.length).toBeGreaterThan(0);
    // Each answered item was asked once; the one running when the window closed (concurrency 1) was cut off.
    expect(local.hits("/v1/chat/completions") - output.length).toBeGreaterThanOrEqual(0);
    expect(local.hits("/v1/chat/completions") - output.length).toBeLessThanOrEqual(1);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((l) => l.error?.code === "batch_expired")).toBe(true);
    expect(batch.request_counts).toEqual({ total: N, completed: output.length, failed: errors.length });
  });
});
