import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../gateway/store/db.ts";
import { MIGRATIONS } from "../../gateway/store/migrations.ts";
import { ProviderStateStore } from "../../gateway/store/provider-state.ts";
import { RequestLog, type RequestLogRow } from "../../gateway/store/request-log.ts";
import { costOf } from "../../gateway/store/cost.ts";

const dirs: string[] = [];
const tempDb = () => {
  const dir = mkdtempSync(join(tmpdir(), "labgate-store-"));
  dirs.push(dir);
  return join(dir, "labgate.db");
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const row = (i: number): RequestLogRow => ({
  id: `r${i}`,
  ts: 1_700_000_000_000 + i,
  tenant: "anonymous",
  operation: "chat",
  public_model: "m",
  provider: "p",
  upstream_model: "u",
  fallback_depth: 0,
  is_overflow: false,
  panic: false,
  stream: i % 2 === 0,
  status: 200,
  error_class: null,
  prompt_tokens: 3,
  completion_tokens: 4,
  cost_usd: 0.001,
  ttfb_ms: 1.5,
  total_ms: 2.5,
  overhead_ms: 0.2,
  attempts: [{ attempt: 1, provider: "p", deployment: "m#0", error_class: null, ms: 1.4 }],
});

describe("SQLite store", () => {
  it("opens in WAL mode at the latest schema version, and re-opening migrates nothing twice", () => {
    const file = tempDb();
    const db = openDatabase(file);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    db.close();
    const again = openDatabase(file);
    expect(again.pragma("user_version", { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    again.close();
  });

  it("queues rows and writes them in one batch, not one write per request", () => {
    const file = tempDb();
    const db = openDatabase(file);
    const log = new RequestLog(db, { batchSize: 1000, flushIntervalMs: 60_000 });
    for (let i = 0; i < 250; i++) log.append(row(i));
    // Nothing on disk yet: a second connection sees no rows.
    const reader = new Database(file, { readonly: true });
    expect(reader.prepare("SELECT count(*) n FROM request_log").get()).toEqual({ n: 0 });
    expect(log.pending).toBe(250);
    log.flush();
    expect(reader.prepare("SELECT count(*) n FROM request_log").get()).toEqual({ n: 250 });
    const r = log.get("r7")!;
    expect(r.attempts).toEqual([{ attempt: 1, provider: "p", deployment: "m#0", error_class: null, ms: 1.4 }]);
    expect(r.stream).toBe(false);
    reader.close();
    db.close();
  });

  it("flushes on its own after the interval", async () => {
    const db = openDatabase(tempDb());
    const log = new RequestLog(db, { flushIntervalMs: 20 });
    log.append(row(1));
    await new Promise((r) => setTimeout(r, 80));
    expect(log.pending).toBe(0);
    expect(log.recent(10)).toHaveLength(1);
    db.close();
  });

  it("while the database refuses writes, rows wait in a bounded queue, retried from the timer, and land once it recovers", async () => {
    const db = openDatabase(tempDb());
    db.exec("CREATE TRIGGER refuse BEFORE INSERT ON request_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;");
    const errors: unknown[] = [];
    const log = new RequestLog(db, { batchSize: 10, flushIntervalMs: 20, maxQueued: 50, onError: (e) => errors.push(e) });
    for (let i = 0; i < 80; i++) log.append(row(i));
    expect(errors).toHaveLength(1); // reported once, not once per request
    expect(log.pending).toBe(50);
    expect(log.dropped).toBe(30);
    db.exec("DROP TRIGGER refuse");
    await expect.poll(() => log.pending, { timeout: 3000 }).toBe(0);
    expect(log.recent(100).map((r) => r.id)).toContain("r79");
    expect(log.get("r0")).toBeUndefined(); // the oldest were the ones given up
    db.close();
  });

  it("remembers provider toggles", () => {
    const file = tempDb();
    const db = openDatabase(file);
    new ProviderStateStore(db).setEnabled("openai", false);
    db.close();
    const db2 = openDatabase(file);
    expect(new ProviderStateStore(db2).load().get("openai")).toBe(false);
    db2.close();
  });
});

describe("cost", () => {
  it("prices prompt and completion tokens per million; unpriced deployments cost 0; no usage is unknown", () => {
    expect(costOf({ prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 }, { input_per_1m: 10, output_per_1m: 30 })).toBeCloseTo(0.025, 12);
    expect(costOf({ prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 }, undefined)).toBe(0);
    expect(costOf(null, { input_per_1m: 10, output_per_1m: 30 })).toBeNull();
  });
});
