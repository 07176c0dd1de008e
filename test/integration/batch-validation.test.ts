// Validating a big batch file keeps the gateway's memory flat: the file is streamed, its
// items are inserted a chunk (1,000) per transaction while the batch stays validating, and
// batches validate one at a time. A line over batch.max_line_kb is refused at upload with
// its line number (a line is held whole in memory when read, so its size is capped).
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import type { NewItem } from "../../gateway/store/batches.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

const chatLine = (id: string, pad = "") =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: `q ${id} ${pad}` }] } });

const config = (upV1: string, batch: Record<string, unknown> = {}) => ({
  providers: { local: { type: "openai-compatible", base_url: upV1 } },
  models: { m: { deployments: [{ provider: "local", model: "x" }] } },
  router: { retries: 0 },
  // No item starts: the test looks at validation only.
  batch: { providers: { local: 0 }, ...batch },
});

describe("batch validation: bounded memory, one at a time", () => {
  it("two 10k-line batches created at once: items go in 1,000 per transaction, all of one batch before any of the other", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1));
    const store = gw.gateway.batches.store;
    const calls: { batch: string; items: number }[] = [];
    const insertItems = store.insertItems.bind(store);
    store.insertItems = (batchId: string, items: NewItem[]) => {
      calls.push({ batch: batchId, items: items.length });
      return insertItems(batchId, items);
    };
    const openai = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const n = 10_000;
    const text = Array.from({ length: n }, (_, i) => chatLine(`r${i}`, "x".repeat(200))).join("\n") + "\n";
    const file = await openai.files.create({ file: await toFile(Buffer.from(text), "big.jsonl"), purpose: "batch" });
    const [a, b] = await Promise.all([0, 1].map(() => openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })));
    for (const id of [a!.id, b!.id]) {
      await expect.poll(async () => (await openai.batches.retrieve(id)).status, { timeout: 120_000, interval: 100 }).toBe("in_progress");
      expect((await openai.batches.retrieve(id)).request_counts!.total).toBe(n);
    }
    // Chunked: no transaction held a whole file's items.
    expect(Math.max(...calls.map((c) => c.items))).toBeLessThanOrEqual(1000);
    // One after the other: the calls form two runs, one per batch.
    const runs = calls.map((c) => c.batch).filter((id, i, all) => i === 0 || all[i - 1] !== id);
    expect(runs).toHaveLength(2);
    expect(new Set(runs)).toEqual(new Set([a!.id, b!.id]));
  });

  it("a line longer than batch.max_line_kb is refused at upload with its line number; shorter lines pass", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1, { max_line_kb: 2 }));
    const openai = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const ok = [chatLine("a", "x".repeat(1500)), chatLine("b")];
    const file = await openai.files.create({ file: await toFile(Buffer.from(ok.join("\n") + "\n"), "ok.jsonl"), purpose: "batch" });
    expect(file.status).toBe("processed");
    const long = [chatLine("a"), chatLine("b"), chatLine("c", "x".repeat(100_000)), chatLine("d")];
    const err = await openai.files.create({ file: await toFile(Buffer.from(long.join("\n") + "\n"), "long.jsonl"), purpose: "batch" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe("invalid_batch_file");
    expect(e.message).toContain("1 invalid line: Line 3: the line is longer than 2 KB (batch.max_line_kb).");
  });
});
