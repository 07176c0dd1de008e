// A batch is not starved by steady interactive traffic: with interactive_threshold 0 and
// the quiet period, requests that never stop would hold every item back; once the deadline
// estimate calls the batch late (nothing ran for a tenth of its window) it gets one item at
// a time, and it ends in its window while the traffic goes on.
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

const chatLine = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: id }] } });

describe("batch under steady interactive traffic", () => {
  it("a 30 s batch behind interactive requests that never pause completes every item while the traffic continues", async () => {
    // Slow answers (700 ms): the batch's one-at-a-time share spans several lateness checks (every 5 s), and
    // must not be taken away when the pace it gives looks fast enough.
    const up = await lab.fake({ name: "up", firstByteDelayMs: 700 });
    const gw = await lab.gateway({
      providers: { local: { type: "openai-compatible", base_url: up.v1 } },
      models: { m: { deployments: [{ provider: "local", model: "x" }] } },
      router: { retries: 0 },
      batch: { interactive_threshold: 0, interactive_quiet_ms: 50 },
      batch_profiles: { short: { completion_window: "30s" } },
    });
    const openai = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    // Four clients back to back: an interactive request is always in flight.
    let traffic = true;
    let interactive = 0;
    const clients = Array.from({ length: 4 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 150));
      while (traffic) {
        await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
        interactive++;
      }
    });
    try {
      const ids = Array.from({ length: 12 }, (_, i) => `r${i}`);
      const file = await openai.files.create({ file: await toFile(Buffer.from(ids.map(chatLine).join("\n") + "\n"), "in.jsonl"), purpose: "batch" });
      const batch = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "short" } });
      let b = batch;
      await expect
        .poll(
          async () => {
            b = await openai.batches.retrieve(batch.id);
            return b.status;
          },
          { timeout: 60_000, interval: 100 },
        )
        .toSatisfy((s: string) => ["completed", "expired", "failed"].includes(s));
      expect(traffic).toBe(true);
      expect(b.status).toBe("completed");
      expect(b.request_counts).toEqual({ total: 12, completed: 12, failed: 0 });
      expect(interactive).toBeGreaterThan(0);
    } finally {
      traffic = false;
      await Promise.all(clients);
    }
  });
});
