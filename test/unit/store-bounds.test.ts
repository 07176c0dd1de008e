// What a client sends is stored with a bound, a page of the log has a bound, and
// the log itself has a ceiling past which its oldest rows go and their space is reused.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../../gateway/config/schema.ts";
import { boundAttempts, boundText, MAX_STORED_ATTEMPTS, MAX_STORED_CHARS, TRUNCATION_MARK } from "../../gateway/store/bounds.ts";
import { openDatabase, type Db } from "../../gateway/store/db.ts";
import { LogCeiling } from "../../gateway/store/log-ceiling.ts";
import { MAX_PAGE_BYTES, MAX_PAGE_ROWS, RequestLog, type AttemptRecord, type RequestLogRow } from "../../gateway/store/request-log.ts";

const dirs: string[] = [];
const dbs: Db[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "labgate-bounds-"));
  dirs.push(dir);
  return dir;
};
const open = (dir: string) => {
  const db = openDatabase(join(dir, "labgate.db"));
  dbs.push(db);
  return db;
};
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const folderBytes = (dir: string) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

const attempt = (i: number, over: Partial<AttemptRecord> = {}): AttemptRecord => ({ attempt: i, provider: "ollama", deployment: "m#0", error_class: null, ms: 12.5, ...over });

/** A typical row: the shape the gateway writes for a served chat request. */
const row = (i: number, over: Partial<RequestLogRow> = {}): RequestLogRow => ({
  id: `r${String(i).padStart(8, "0")}`,
  ts: 1_700_000_000_000 + i,
  tenant: "anonymous",
  operation: "chat",
  public_model: "llama3.1:latest",
  provider: "ollama",
  upstream_model: "llama3.1:latest",
  fallback_depth: 0,
  is_overflow: false,
  panic: false,
  stream: i % 2 === 0,
  status: 200,
  error_class: null,
  prompt_tokens: 20 + (i % 500),
  completion_tokens: 100 + (i % 900),
  cost_usd: 0,
  ttfb_ms: 120.5,
  total_ms: 800 + (i % 1000) / 7,
  overhead_ms: 0.3,
  attempts: [attempt(1, { deployment: "llama3.1:latest#0", ms: 799.25 })],
  ...over,
});

describe("bounded texts", () => {
  it("keeps what fits and cuts what does not to its first characters and a mark", () => {
    expect(boundText("llama3.1:latest")).toBe("llama3.1:latest");
    const exact = "a".repeat(MAX_STORED_CHARS);
    expect(boundText(exact)).toBe(exact);
    const cut = boundText("b".repeat(5_000_000));
    expect(cut).toHaveLength(MAX_STORED_CHARS);
    expect(cut).toBe("b".repeat(MAX_STORED_CHARS - 1) + TRUNCATION_MARK);
    // Never half of a surrogate pair: the emoji before the cut goes whole or not at all.
    const emoji = boundText("😀".repeat(1000));
    expect(emoji.length).toBeLessThanOrEqual(MAX_STORED_CHARS);
    expect(emoji.endsWith(TRUNCATION_MARK)).toBe(true);
    expect(emoji.slice(0, -1)).toBe("😀".repeat((emoji.length - 1) / 2));
  });

  it("keeps the first attempts and the last, each field bounded", () => {
    const many = Array.from({ length: 1000 }, (_, i) => attempt(i + 1, { provider: "p".repeat(100_000), error_class: "server_error" }));
    const kept = boundAttempts(many);
    expect(kept).toHaveLength(MAX_STORED_ATTEMPTS);
    expect(kept.map((a) => a.attempt)).toEqual([...Array.from({ length: MAX_STORED_ATTEMPTS - 1 }, (_, i) => i + 1), 1000]);
    for (const a of kept) expect(a.provider).toHaveLength(MAX_STORED_CHARS);
    const few = [attempt(1), attempt(2)];
    expect(boundAttempts(few)).toBe(few); // nothing to cut: no copy
  });
});

describe("request log rows are bounded whoever writes them", () => {
  it("a 5 MB model, tenant, provider and error class and 1,000 attempts are stored bounded, and the data folder stays small", () => {
    const dir = tempDir();
    const db = open(dir);
    const log = new RequestLog(db, { batchSize: 1000, flushIntervalMs: 60_000 });
    const huge = "x".repeat(5 * 1024 * 1024);
    for (let i = 0; i < 10; i++) {
      log.append(
        row(i, {
          public_model: huge,
          tenant: huge,
          provider: huge,
          upstream_model: huge,
          error_class: huge,
          operation: huge,
          status: 404,
          attempts: Array.from({ length: 1000 }, (_, k) => attempt(k + 1, { provider: huge, deployment: huge, error_class: huge })),
        }),
      );
    }
    log.flush();
    db.pragma("wal_checkpoint(TRUNCATE)");
    const longest = db
      .prepare(
        `SELECT MAX(MAX(LENGTH(public_model), LENGTH(tenant), LENGTH(provider), LENGTH(upstream_model), LENGTH(error_class), LENGTH(operation), LENGTH(id))) AS text,
                MAX(LENGTH(attempts)) AS attempts FROM request_log`,
      )
      .get() as { text: number; attempts: number };
    expect(longest.text).toBe(MAX_STORED_CHARS);
    expect(longest.attempts).toBeLessThan(MAX_STORED_ATTEMPTS * (3 * MAX_STORED_CHARS + 100));
    const r = log.get("r00000003")!;
    expect(r.public_model).toBe("x".repeat(MAX_STORED_CHARS - 1) + TRUNCATION_MARK);
    expect(r.attempts).toHaveLength(MAX_STORED_ATTEMPTS);
    expect(r.attempts.at(-1)!.attempt).toBe(1000);
    // Ten such rows: well under a megabyte on disk (they used to take 12 MB each).
    expect(folderBytes(dir)).toBeLessThan(1024 * 1024);
  });

  it("a typical row is stored as it came", () => {
    const db = open(tempDir());
    const log = new RequestLog(db);
    const r = row(7, { error_class: "timeout", attempts: [attempt(1, { error_class: "timeout" }), attempt(2)] });
    log.append(r);
    log.flush();
    // With what analytics adds to it (migration 3): tier, attempts made, the first attempt's provider.
    expect(log.get(r.id)).toEqual({ ...r, tier: null, attempt_count: 2, first_provider: "ollama" });
  });
});

describe("a page of the request log", () => {
  it("holds at most MAX_PAGE_ROWS rows whatever the limit asked, newest first, and says more are left", () => {
    const db = open(tempDir());
    const log = new RequestLog(db, { batchSize: 10_000 });
    for (let i = 0; i < MAX_PAGE_ROWS + 100; i++) log.append(row(i));
    log.flush();
    const page = log.recentPage(1_000_000);
    expect(page.rows).toHaveLength(MAX_PAGE_ROWS);
    expect(page.rows[0]!.id).toBe(row(MAX_PAGE_ROWS + 99).id);
    expect(page.hasMore).toBe(true);
    expect(log.recentPage(10).rows).toHaveLength(10);
    const all = log.recentPage(MAX_PAGE_ROWS);
    expect(all.hasMore).toBe(true);
    expect(log.recentPage(Number.NaN).rows).toHaveLength(1);
  });

  it("ends before MAX_PAGE_BYTES of JSON, and rows written before the bounds existed are bounded as they are read", () => {
    const db = open(tempDir());
    const log = new RequestLog(db, { batchSize: 10_000 });
    // Rows as big as the bounds allow (3-byte characters in every text, every attempt kept).
    const wide = "€".repeat(10_000);
    for (let i = 0; i < 100; i++) {
      log.append(row(i, { public_model: wide, tenant: wide, upstream_model: wide, attempts: Array.from({ length: 50 }, (_, k) => attempt(k + 1, { provider: wide, deployment: wide })) }));
    }
    log.flush();
    // And one row stored whole by an older labgate.
    db.prepare("UPDATE request_log SET public_model = ? WHERE id = ?").run("y".repeat(2_000_000), row(99).id);
    const page = log.recentPage(MAX_PAGE_ROWS);
    expect(page.rows.length).toBeGreaterThan(0);
    expect(page.rows.length).toBeLessThan(100);
    expect(page.hasMore).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(page.rows))).toBeLessThanOrEqual(MAX_PAGE_BYTES);
    expect(page.rows[0]!.id).toBe(row(99).id);
    expect(page.rows[0]!.public_model).toHaveLength(MAX_STORED_CHARS);
  });
});

describe("the request log's ceiling", () => {
  const MB = 1024 * 1024;
  const pagesBytes = (db: Db) => (db.pragma("page_count", { simple: true }) as number) * (db.pragma("page_size", { simple: true }) as number);

  it("past max_log_mb the oldest rows go, the newest stay, and the file stops growing: freed pages are reused", () => {
    const dir = tempDir();
    const db = open(dir);
    const log = new RequestLog(db, { batchSize: 10_000 });
    const ceiling = new LogCeiling(db, { maxBytes: 1 * MB, batchRows: 500 });
    let n = 0;
    let sizeAtHalf = 0;
    // 40,000 rows (about 15 MB unbounded), trimmed after each 1,000 as the timer would.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 1000; i++) log.append(row(n++));
      log.flush();
      ceiling.trimNow();
      if (round === 19) sizeAtHalf = pagesBytes(db);
    }
    expect(ceiling.deleted).toBeGreaterThan(30_000);
    expect(ceiling.logBytes()).toBeLessThanOrEqual(1 * MB);
    // The file stopped growing: as large after 40,000 rows as after 20,000.
    expect(pagesBytes(db)).toBeLessThanOrEqual(sizeAtHalf + 64 * 1024);
    db.pragma("wal_checkpoint(TRUNCATE)");
    expect(statSync(join(dir, "labgate.db")).size).toBeLessThan(1.75 * MB);
    // Oldest gone, newest kept, and what is left is the newest rows without a gap.
    expect(log.get(row(0).id)).toBeUndefined();
    expect(log.get(row(n - 1).id)).toBeDefined();
    const left = db.prepare("SELECT count(*) AS c, min(id) AS oldest FROM request_log").get() as { c: number; oldest: string };
    expect(left.c).toBeGreaterThan(1000);
    expect(left.oldest).toBe(row(n - left.c).id);
  });

  it("below the ceiling nothing is deleted", () => {
    const db = open(tempDir());
    const log = new RequestLog(db);
    for (let i = 0; i < 100; i++) log.append(row(i));
    log.flush();
    const ceiling = new LogCeiling(db, { maxBytes: 1 * MB });
    expect(ceiling.overCeiling()).toBe(false);
    expect(ceiling.trimNow()).toBe(0);
    expect(log.recent(500)).toHaveLength(100);
  });

  it("counts the request log's pages only: other tables never make it delete rows", () => {
    const db = open(tempDir());
    db.exec("CREATE TABLE other_state (k INTEGER PRIMARY KEY, v BLOB)");
    const blob = db.prepare("INSERT INTO other_state (v) VALUES (?)");
    for (let i = 0; i < 300; i++) blob.run(Buffer.alloc(10_000, i));
    const log = new RequestLog(db);
    for (let i = 0; i < 100; i++) log.append(row(i));
    log.flush();
    expect(pagesBytes(db)).toBeGreaterThan(2.5 * MB);
    const ceiling = new LogCeiling(db, { maxBytes: 1 * MB });
    expect(ceiling.logBytes()).toBeLessThan(0.25 * MB);
    expect(ceiling.trimNow()).toBe(0);
    expect(log.recent(500)).toHaveLength(100);
  });

  it("on its timer, trims in steps of at most batchRows with the event loop free between steps", async () => {
    const db = open(tempDir());
    const log = new RequestLog(db, { batchSize: 10_000 });
    for (let i = 0; i < 20_000; i++) log.append(row(i));
    log.flush();
    const trims: number[] = [];
    const ceiling = new LogCeiling(db, { maxBytes: 1 * MB, batchRows: 300, checkIntervalMs: 5, onTrim: (rows) => trims.push(rows) });
    expect(ceiling.overCeiling()).toBe(true);
    const events: string[] = [];
    const deletedPerStep: number[] = [];
    const step = ceiling.step.bind(ceiling);
    ceiling.step = () => {
      events.push("step");
      const n = step();
      deletedPerStep.push(n);
      return n;
    };
    // Another task on the loop, as a request would be: it must get turns between steps.
    let ticking = true;
    const tick = () => {
      events.push("tick");
      if (ticking) setImmediate(tick);
    };
    tick();
    ceiling.start();
    await expect.poll(() => trims.length, { timeout: 10_000 }).toBeGreaterThan(0);
    ceiling.stop();
    ticking = false;
    const steps = events.filter((e) => e === "step").length;
    expect(steps).toBeGreaterThan(10);
    expect(Math.max(...deletedPerStep)).toBe(300);
    expect(trims.reduce((a, b) => a + b, 0)).toBe(deletedPerStep.reduce((a, b) => a + b, 0));
    const firstStep = events.indexOf("step");
    for (let i = firstStep + 1; i < events.length; i++) {
      if (events[i] === "step") expect(events.slice(events.lastIndexOf("step", i - 1), i)).toContain("tick");
    }
    expect(ceiling.overCeiling()).toBe(false);
    expect(log.get(row(19_999).id)).toBeDefined();
    expect(log.get(row(0).id)).toBeUndefined();
  });
});

describe("store config", () => {
  it("store.max_log_mb defaults to 1024 and must be a positive number", () => {
    expect(configSchema.parse({}).store).toEqual({ max_log_mb: 1024, retention_days: 30 });
    expect(configSchema.parse({ store: { max_log_mb: 0.5 } }).store.max_log_mb).toBe(0.5);
    expect(configSchema.safeParse({ store: { max_log_mb: 0 } }).success).toBe(false);
    expect(configSchema.safeParse({ store: { max_log_mb: "big" } }).success).toBe(false);
    expect(configSchema.safeParse({ store: { max_log_rows: 10 } }).success).toBe(false);
  });
});
