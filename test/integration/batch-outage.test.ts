// A provider outage does not use up batch items' retries: while the upstream refuses
// connections (and its breaker is open: no healthy deployment) items wait and try again,
// and once it is back every item completes. Only failures about the item itself count.
import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const chatLine = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: id }] } });

async function retried(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^labgate_batch_items_total\{status="retried"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe("batch items during a provider outage", () => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  it("the upstream down (connection refused) for many retry rounds, then back: every item completes, none failed", async () => {
    const port = await freePort();
    const cfg = {
      providers: { local: { type: "openai-compatible", base_url: `http://127.0.0.1:${port}/v1` } },
      models: { m: { deployments: [{ provider: "local", model: "x" }] } },
      router: { retries: 0 },
      batch: { retry_backoff_s: 0.05 },
      batch_profiles: { default: { retries: 1 } },
    };
    const gw: TestGateway = await startGateway(JSON.stringify(cfg));
    open.push(gw);
    const openai = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const n = 4;
    const ids = Array.from({ length: n }, (_, i) => `r${i}`);
    const file = await openai.files.create({ file: await toFile(Buffer.from(ids.map(chatLine).join("\n") + "\n"), "in.jsonl"), purpose: "batch" });
    const batch = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "default" } });
    // Nothing listens: each item fails several times over what its retries (1) allow.
    await expect.poll(() => retried(gw.url), { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(n * 3);
    expect((await openai.batches.retrieve(batch.id)).request_counts).toMatchObject({ failed: 0 });
    const up: FakeOpenAI = await startFakeOpenAI({ name: "back", port });
    open.push(up);
    let done = await openai.batches.retrieve(batch.id);
    await expect
      .poll(
        async () => {
          done = await openai.batches.retrieve(batch.id);
          return done.status;
        },
        { timeout: 90_000, interval: 100 },
      )
      .toBe("completed");
    expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
    expect(done.error_file_id ?? null).toBeNull();
  });
});
