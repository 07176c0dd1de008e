// The batch queue under /admin (what the dashboard reads with the admin key): every
// tenant's batches in OpenAI's shapes, one batch, and cancel — while /v1/batches keeps
// needing the master key.
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { startGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();
const MASTER = "sk-batch-admin-master";
const ADMIN = "sk-batch-admin-admin";

const chatLine = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: id }] } });

describe("batch queue under /admin", () => {
  it("lists, reads and cancels batches with the admin key, in /v1/batches' shapes; the admin key does not open /v1/batches", async () => {
    const up = await lab.fake({ firstByteDelayMs: 200 });
    const gw = await startGateway(
      JSON.stringify({
        providers: { local: { type: "openai-compatible", base_url: up.v1 } },
        models: { m: { deployments: [{ provider: "local", model: "x" }] } },
        router: { retries: 0 },
        server: { master_key: "env:BA_MASTER", admin_key: "env:BA_ADMIN" },
        batch_profiles: { slow: { concurrency: 1 } },
      }),
      { env: { BA_MASTER: MASTER, BA_ADMIN: ADMIN } },
    );
    try {
      const openai = new OpenAI({ baseURL: gw.v1, apiKey: MASTER, maxRetries: 0 });
      const submit = async (ids: string[], profile?: string) => {
        const file = await openai.files.create({ file: await toFile(Buffer.from(ids.map(chatLine).join("\n") + "\n"), "r.jsonl"), purpose: "batch" });
        return openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: profile ? { profile } : null });
      };
      const admin = (path: string, init: RequestInit = {}, key = ADMIN) => fetch(`${gw.url}/admin${path}`, { ...init, headers: { authorization: `Bearer ${key}` } });

      const small = await submit(["s1"]);
      await expect.poll(async () => (await openai.batches.retrieve(small.id)).status, { timeout: 15_000, interval: 50 }).toBe("completed");
      const big = await submit(Array.from({ length: 30 }, (_, i) => `b${i}`), "slow");

      // The dashboard's key is not the master key: /v1/batches refuses it, /admin/batches answers.
      expect((await fetch(`${gw.v1}/batches`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(401);
      expect((await fetch(`${gw.url}/admin/batches`)).status).toBe(401);
      const list = await admin("/batches?limit=1");
      expect(list.status).toBe(200);
      const page1 = (await list.json()) as { object: string; data: { id: string }[]; has_more: boolean; first_id: string; last_id: string };
      expect(page1).toMatchObject({ object: "list", has_more: true });
      expect(page1.data.map((b) => b.id)).toEqual([big.id]);
      const page2 = (await (await admin(`/batches?limit=5&after=${big.id}`)).json()) as typeof page1;
      expect(page2.data.map((b) => b.id)).toEqual([small.id]);
      expect(page2.has_more).toBe(false);
      expect((await admin("/batches?limit=0")).status).toBe(400);

      // One batch, as /v1/batches/:id gives it.
      const mine = (await (await admin(`/batches/${small.id}`)).json()) as Record<string, unknown>;
      expect(mine).toEqual(JSON.parse(JSON.stringify(await openai.batches.retrieve(small.id))));
      const missing = await admin("/batches/batch_000000000000000000000000");
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(/No such Batch object/);

      // Cancel from /admin: the worker ends the rest as cancelled, the answered part stays.
      await expect.poll(async () => (await openai.batches.retrieve(big.id)).request_counts?.completed ?? 0, { timeout: 15_000, interval: 50 }).toBeGreaterThan(0);
      const cancel = await admin(`/batches/${big.id}/cancel`, { method: "POST" });
      expect(cancel.status).toBe(200);
      expect(((await cancel.json()) as { status: string }).status).toBe("cancelling");
      await expect.poll(async () => ((await (await admin(`/batches/${big.id}`)).json()) as { status: string }).status, { timeout: 15_000, interval: 50 }).toBe("cancelled");
      const ended = await openai.batches.retrieve(big.id);
      expect(ended.request_counts!.total).toBe(30);
      expect(ended.request_counts!.failed).toBeGreaterThan(0);
      const errors = (await (await openai.files.content(ended.error_file_id!)).text()).split("\n").filter(Boolean).map((l) => JSON.parse(l) as { error: { code: string } });
      expect(errors.length).toBe(ended.request_counts!.failed);
      expect(errors.every((l) => l.error.code === "batch_cancelled")).toBe(true);
      // A completed batch cannot be cancelled.
      const late = await admin(`/batches/${small.id}/cancel`, { method: "POST" });
      expect(late.status).toBe(409);
      expect(((await late.json()) as { error: { code: string } }).error.code).toBe("batch_not_cancellable");
    } finally {
      await gw.close();
    }
  });
});
