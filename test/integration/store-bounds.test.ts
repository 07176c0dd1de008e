// Through a real gateway: what a client sends cannot fill the disk, /admin/requests
// has a maximum page, and the request log stays under store.max_log_mb.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CompletionFailure } from "../../gateway/completion/service.ts";
import { MAX_STORED_CHARS, TRUNCATION_MARK } from "../../gateway/store/bounds.ts";
import { MAX_PAGE_ROWS, type RequestLogRow } from "../../gateway/store/request-log.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

const folderBytes = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? folderBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);

async function labGateway(extra: Record<string, unknown> = {}) {
  const up = await lab.fake();
  const gw = await lab.gateway({ providers: { a: { type: "openai-compatible", base_url: up.v1 } }, models: { m: { deployments: [{ provider: "a", model: "x" }] } }, ...extra });
  return { up, gw };
}

const chat = (model: string) => JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });

const syntheticRow = (i: number): RequestLogRow => ({
  id: `s${String(i).padStart(8, "0")}`,
  ts: 1_700_000_000_000 + i,
  tenant: "anonymous",
  operation: "chat",
  public_model: "m",
  provider: "a",
  upstream_model: "x",
  fallback_depth: 0,
  is_overflow: false,
  panic: false,
  stream: false,
  status: 200,
  error_class: null,
  prompt_tokens: 3,
  completion_tokens: 5,
  cost_usd: 0,
  ttfb_ms: 1.5,
  total_ms: 2.5,
  overhead_ms: 0.2,
  attempts: [{ attempt: 1, provider: "a", deployment: "m#0", error_class: null, ms: 1.4 }],
});

describe("the disk cannot be filled through the gateway", () => {
  it("1 MB model names, over HTTP (4xx) or from another caller (404), leave the data folder small and every stored text bounded", async () => {
    const { gw } = await labGateway();
    const before = folderBytes(gw.dataDir);
    const huge = "q".repeat(1024 * 1024);
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${gw.v1}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: chat(huge) });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect((await res.text()).length).toBeLessThan(10_000);
    }
    // A caller below HTTP (the batch worker) has no body limits in front of it: the store bounds what it keeps.
    const failure = await gw.gateway.completions
      .complete({ operation: "chat", body: JSON.parse(chat(huge)), stream: false, tenant: "t".repeat(1024 * 1024), signal: new AbortController().signal })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CompletionFailure);
    expect((failure as CompletionFailure).status).toBe(404);

    gw.gateway.requestLog.flush();
    const row = gw.gateway.requestLog.get((failure as CompletionFailure).id)!;
    expect(row.public_model).toBe("q".repeat(MAX_STORED_CHARS - 1) + TRUNCATION_MARK);
    expect(row.tenant).toHaveLength(MAX_STORED_CHARS);
    const longest = gw.gateway.db.prepare("SELECT MAX(MAX(LENGTH(public_model), LENGTH(tenant))) AS n FROM request_log").get() as { n: number };
    expect(longest.n).toBeLessThanOrEqual(MAX_STORED_CHARS);
    // Eleven 1 MB names cost the data folder less than 1 MB (each used to be stored whole).
    gw.gateway.db.pragma("wal_checkpoint(TRUNCATE)");
    expect(folderBytes(gw.dataDir) - before).toBeLessThan(1024 * 1024);
    const page = await (await fetch(`${gw.url}/admin/requests?limit=1000`)).text();
    expect(page.length).toBeLessThan(20_000);
  });

  it("/admin/requests?limit=1000000 answers at most the maximum page, newest first, in the list shape with has_more", async () => {
    const { gw } = await labGateway();
    for (let i = 0; i < MAX_PAGE_ROWS + 50; i++) gw.gateway.requestLog.append(syntheticRow(i));
    const res = await fetch(`${gw.url}/admin/requests?limit=1000000`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: RequestLogRow[]; has_more: boolean };
    expect(body.object).toBe("list");
    expect(body.data).toHaveLength(MAX_PAGE_ROWS);
    expect(body.has_more).toBe(true);
    expect(body.data[0]!.id).toBe(syntheticRow(MAX_PAGE_ROWS + 49).id);
    const small = (await (await fetch(`${gw.url}/admin/requests?limit=3`)).json()) as { data: unknown[]; has_more: boolean };
    expect(small.data).toHaveLength(3);
    const junk = (await (await fetch(`${gw.url}/admin/requests?limit=-5`)).json()) as { data: unknown[] };
    expect(junk.data).toHaveLength(1);
  });

  it("with store.max_log_mb: 1 the gateway trims its log on its own timer, oldest first, and keeps serving", async () => {
    const { gw } = await labGateway({ store: { max_log_mb: 1 } });
    expect(gw.gateway.logCeiling.maxBytes).toBe(1024 * 1024);
    // About 5 MB of rows, as weeks of traffic would leave them.
    for (let i = 0; i < 15_000; i++) gw.gateway.requestLog.append(syntheticRow(i));
    gw.gateway.requestLog.flush();
    expect(gw.gateway.logCeiling.overCeiling()).toBe(true);
    const served = await fetch(`${gw.v1}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: chat("m") });
    expect(served.status).toBe(200);
    await served.text();
    await expect.poll(() => gw.gateway.logCeiling.deleted > 0 && !gw.gateway.logCeiling.busy, { timeout: 15_000 }).toBe(true);
    expect(gw.gateway.logCeiling.overCeiling()).toBe(false);
    gw.gateway.requestLog.flush();
    expect(gw.gateway.requestLog.get(syntheticRow(0).id)).toBeUndefined();
    expect(gw.gateway.requestLog.get(syntheticRow(14_999).id)).toBeDefined();
    // The request served meanwhile is in the log.
    const newest = (await (await fetch(`${gw.url}/admin/requests?limit=1`)).json()) as { data: RequestLogRow[] };
    expect(newest.data[0]).toMatchObject({ public_model: "m", status: 200 });
  });
});
