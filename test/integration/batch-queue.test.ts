// The local batch queue through OpenAI's Batch API, driven by the official `openai`
// client against a real gateway and a fake OpenAI-compatible upstream: upload, create,
// poll, download; broken JSONL; 4xx items; retries; cancel; expiry; profiles and
// redaction; interactive traffic first.
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

interface Line {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}

const chatLine = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: `question ${id}` }], ...extra } });

const jsonl = (lines: string[]) => lines.join("\n") + "\n";

function client(v1: string): OpenAI {
  return new OpenAI({ baseURL: v1, apiKey: "unused", maxRetries: 0 });
}

async function upload(openai: OpenAI, text: string, name = "requests.jsonl") {
  return openai.files.create({ file: await toFile(Buffer.from(text), name), purpose: "batch" });
}

async function waitFor(openai: OpenAI, id: string, statuses: string[], timeout = 15_000) {
  let batch = await openai.batches.retrieve(id);
  await expect
    .poll(
      async () => {
        batch = await openai.batches.retrieve(id);
        return batch.status;
      },
      { timeout, interval: 50 },
    )
    .toSatisfy((s: string) => statuses.includes(s));
  return batch;
}

async function lines(openai: OpenAI, fileId: string | null | undefined): Promise<Line[]> {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

const config = (upV1: string, extra: Record<string, unknown> = {}) => ({
  providers: { local: { type: "openai-compatible", base_url: upV1 } },
  models: { m: { deployments: [{ provider: "local", model: "x" }] } },
  router: { retries: 0 },
  batch: { retry_backoff_s: 0.05 },
  ...extra,
});

describe("batch queue: OpenAI's Batch API on localhost", () => {
  it("the openai client uploads a file, creates a batch, polls it to completion and downloads the results", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1));
    const openai = client(gw.v1);
    const ids = Array.from({ length: 6 }, (_, i) => `req-${i + 1}`);
    const file = await upload(openai, jsonl(ids.map((id) => chatLine(id))));
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "requests.jsonl", status: "processed" });
    expect(file.id).toMatch(/^file-[0-9a-f]{24}$/);
    expect((await openai.files.retrieve(file.id)).bytes).toBe(file.bytes);

    const created = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { job: "t1" } });
    expect(created).toMatchObject({ object: "batch", status: "validating", endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { job: "t1" } });
    expect(created.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const done = await waitFor(openai, created.id, ["completed", "failed"]);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    for (const t of ["in_progress_at", "finalizing_at", "completed_at"] as const) expect(done[t]).toBeGreaterThanOrEqual(done.created_at);
    expect(done.failed_at ?? null).toBeNull();
    expect(done.error_file_id ?? null).toBeNull();
    expect(done.usage?.output_tokens).toBe(6 * 5);

    const out = await lines(openai, done.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    for (const l of out) {
      expect(l.id).toMatch(/^batch_req_/);
      expect(l.error).toBeNull();
      expect(l.response!.status_code).toBe(200);
      expect(l.response!.body).toMatchObject({ object: "chat.completion", choices: [{ message: { content: "Hello from the fake upstream." } }] });
    }
    // Each result names its request-log row; batch rows carry a batch: tenant.
    gw.gateway.requestLog.flush();
    const db = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
    const rows = db.prepare("SELECT id, tenant, status FROM request_log").all() as { id: string; tenant: string; status: number }[];
    db.close();
    expect(rows.map((r) => r.id).sort()).toEqual(out.map((l) => l.response!.request_id).sort());
    expect(new Set(rows.map((r) => r.tenant))).toEqual(new Set(["batch:anonymous"]));

    // Listing pages with limit/after, newest first; the output file is listed with purpose batch_output.
    const second = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const page1 = await openai.batches.list({ limit: 1 });
    expect(page1.data.map((b) => b.id)).toEqual([second.id]);
    expect(page1.has_more).toBe(true);
    const page2 = await openai.batches.list({ limit: 1, after: second.id });
    expect(page2.data.map((b) => b.id)).toEqual([created.id]);
    const outputs = await openai.files.list({ purpose: "batch_output" });
    expect(outputs.data.map((f) => f.id)).toContain(done.output_file_id);
    await waitFor(openai, second.id, ["completed"]);

    // Deleting a file removes it; its id no longer answers.
    expect(await openai.files.delete(file.id)).toEqual({ id: file.id, object: "file", deleted: true });
    await expect(openai.files.retrieve(file.id)).rejects.toMatchObject({ status: 404 });
  });
});
