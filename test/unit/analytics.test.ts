import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { parseAnalyticsQuery } from "../../gateway/api/analytics.ts";
import { ApiError } from "../../gateway/api/errors.ts";
import { AnalyticsClient } from "../../gateway/store/analytics-client.ts";
import { distribution, errors, fallbacks, spend, summary, ttfb } from "../../gateway/store/analytics.ts";
import { openDatabase } from "../../gateway/store/db.ts";
import { MIGRATIONS } from "../../gateway/store/migrations.ts";
import { RequestLog, type RequestLogRow } from "../../gateway/store/request-log.ts";
import { Retention } from "../../gateway/store/retention.ts";
import { DAY_MS, HOUR_MS, TTFB_RELATIVE_PRECISION } from "../../gateway/store/rollup.ts";
import { formatReport, parseSince } from "../../gateway/telemetry/report.ts";
import { reportCommand } from "../../gateway/telemetry/report-command.ts";
import { seededRandom as rng } from "../fixtures/random.ts";

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "labgate-analytics-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const PROVIDERS = [
  { name: "local-a", tier: "local" },
  { name: "local-b", tier: "local" },
  { name: "openai", tier: "premium" },
];
const MODELS = ["llama", "qwen"];
const TENANTS = ["alice", "bob", "anonymous"];

/** n rows spread over `hours` hours from T0: some errors, some fallbacks (first attempt elsewhere). */
function generate(n: number, hours: number, seed = 1, start = T0): RequestLogRow[] {
  const r = rng(seed);
  const rows: RequestLogRow[] = [];
  for (let i = 0; i < n; i++) {
    const p = PROVIDERS[Math.floor(r() * PROVIDERS.length)]!;
    const model = MODELS[Math.floor(r() * MODELS.length)]!;
    const tenant = TENANTS[Math.floor(r() * TENANTS.length)]!;
    const fell = r() < 0.1;
    const first = fell ? PROVIDERS[(PROVIDERS.indexOf(p) + 1) % PROVIDERS.length]!.name : p.name;
    const failed = r() < 0.08;
    const errorClass = failed ? (r() < 0.5 ? "timeout" : "server_error") : null;
    const ttfbMs = failed && errorClass === "timeout" ? null : 5 + r() * r() * 800;
    const attempts = fell
      ? [
          { attempt: 1, provider: first, deployment: `${model}#1`, error_class: "server_error", ms: 3 },
          { attempt: 2, provider: p.name, deployment: `${model}#0`, error_class: errorClass, ms: 10 },
        ]
      : [{ attempt: 1, provider: p.name, deployment: `${model}#0`, error_class: errorClass, ms: 10 }];
    rows.push({
      id: `r${seed}-${i}`,
      ts: start + Math.floor(r() * hours * HOUR_MS),
      tenant,
      operation: "chat",
      public_model: model,
      provider: p.name,
      upstream_model: model,
      fallback_depth: 0,
      is_overflow: false,
      panic: false,
      stream: false,
      status: failed ? (errorClass === "timeout" ? 504 : 502) : 200,
      error_class: errorClass,
      prompt_tokens: failed ? null : 10 + Math.floor(r() * 100),
      completion_tokens: failed ? null : Math.floor(r() * 200),
      cost_usd: failed ? null : Math.round(r() * 1e4) / 1e7,
      ttfb_ms: ttfbMs,
      total_ms: 20,
      overhead_ms: 0.1,
      attempts,
      tier: p.tier,
    });
  }
  return rows;
}

function writeRows(db: Database.Database, rows: RequestLogRow[]): void {
  const log = new RequestLog(db, { batchSize: 250, flushIntervalMs: 60_000 });
  for (const row of rows) log.append(row);
  log.flush();
}

/** Exact nearest-rank percentile. */
function exactPercentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(1, Math.ceil(q * s.length)) - 1]!;
}

const bucketOf = (ts: number, size: number): number => Math.floor(ts / size) * size;

describe("analytics over the hourly rollups", () => {
  // One database for the whole block (tempDir's are removed after each test).
  const dir = mkdtempSync(join(tmpdir(), "labgate-analytics-"));
  const db = openDatabase(join(dir, "labgate.db"));
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rows = generate(6000, 48);
  writeRows(db, rows);
  const params = { from: T0, to: T0 + 48 * HOUR_MS, bucket: "hour" as const };

  it("the log stores tier, attempt count and first provider; rollups exist", () => {
    const r = db.prepare("SELECT tier, attempt_count, first_provider FROM request_log WHERE id = ?").get(rows[0]!.id) as Record<string, unknown>;
    expect(r.tier).toBe(rows[0]!.tier);
    expect(r.attempt_count).toBe(rows[0]!.attempts.length);
    expect(r.first_provider).toBe(rows[0]!.attempts[0]!.provider);
    expect((db.prepare("SELECT sum(requests) FROM request_rollup").pluck().get() as number)).toBe(rows.length);
  });

  it("spend by provider, model, tenant and tier per hour and per day matches the rows", () => {
    for (const bucket of ["hour", "day"] as const) {
      const size = bucket === "hour" ? HOUR_MS : DAY_MS;
      const ans = spend(db, { ...params, bucket });
      expect(ans.buckets.length).toBe(bucket === "hour" ? 48 : 2);
      const expected = new Map<string, { cost: number; requests: number; prompt: number }>();
      for (const r of rows) {
        const k = [bucketOf(r.ts, size), r.provider, r.public_model, r.tenant, r.tier].join("|");
        const e = expected.get(k) ?? { cost: 0, requests: 0, prompt: 0 };
        e.cost += r.cost_usd ?? 0;
        e.requests++;
        e.prompt += r.prompt_tokens ?? 0;
        expected.set(k, e);
      }
      let seen = 0;
      for (const s of ans.series) {
        expect(s.points.map((p) => p.t)).toEqual(ans.buckets);
        for (const p of s.points) {
          const e = expected.get([p.t, s.key.provider, s.key.model, s.key.tenant, s.key.tier].join("|"));
          if (!e) {
            expect(p.requests).toBe(0);
            continue;
          }
          seen++;
          expect(p.requests).toBe(e.requests);
          expect(p.prompt_tokens).toBe(e.prompt);
          expect(p.cost_usd).toBeCloseTo(e.cost, 5);
        }
      }
      expect(seen).toBe(expected.size);
    }
  });

  it("spend grouped by tier only, with a limit", () => {
    const ans = spend(db, { ...params, bucket: "day", groupBy: ["tier"] });
    expect(ans.group_by).toEqual(["tier"]);
    const premium = ans.series.find((s) => s.key.tier === "premium")!;
    const expected = rows.filter((r) => r.tier === "premium").reduce((a, r) => a + (r.cost_usd ?? 0), 0);
    expect(premium.total.cost_usd).toBeCloseTo(expected, 5);
    expect(Object.keys(premium.key)).toEqual(["tier"]);
    const limited = spend(db, { ...params, limit: 2 });
    expect(limited.series.length).toBe(2);
    expect(limited.truncated).toBeGreaterThan(0);
  });

  it("spend's largest series over a range that is not whole days (hourly edges, daily middle)", () => {
    const from = T0 + 5 * HOUR_MS;
    const to = T0 + 40 * HOUR_MS;
    const inRange = rows.filter((r) => r.ts >= from && r.ts < to);
    const byKey = new Map<string, number>();
    for (const r of inRange) {
      const k = [r.provider, r.public_model, r.tenant, r.tier].join("|");
      byKey.set(k, (byKey.get(k) ?? 0) + (r.cost_usd ?? 0));
    }
    const top = [...byKey.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
    const ans = spend(db, { from, to, bucket: "hour", limit: 3 });
    expect(ans.buckets.length).toBe(35);
    expect(ans.truncated).toBe(byKey.size - 3);
    expect(ans.series.map((s) => [s.key.provider, s.key.model, s.key.tenant, s.key.tier].join("|"))).toEqual(top.map(([k]) => k));
    for (const [i, s] of ans.series.entries()) expect(s.total.cost_usd).toBeCloseTo(top[i]![1], 5);
  });

  it("distribution: requests per provider per bucket, with shares", () => {
    const ans = distribution(db, { ...params, bucket: "day" });
    for (const s of ans.series) {
      for (const p of s.points) {
        const inBucket = rows.filter((r) => bucketOf(r.ts, DAY_MS) === p.t);
        const mine = inBucket.filter((r) => r.provider === s.key.provider).length;
        expect(p.requests).toBe(mine);
        expect(p.share).toBeCloseTo(mine / inBucket.length, 5);
      }
    }
    expect(ans.series.reduce((a, s) => a + s.total.requests, 0)).toBe(rows.length);
  });

  it("fallbacks: from -> to with counts and success", () => {
    const ans = fallbacks(db, params);
    const fell = rows.filter((r) => r.attempts.length > 1);
    expect(ans.data.reduce((a, d) => a + d.count, 0)).toBe(fell.length);
    for (const d of ans.data) {
      const these = fell.filter((r) => r.attempts[0]!.provider === d.from && r.provider === d.to);
      expect(d.count).toBe(these.length);
      expect(d.success).toBe(these.filter((r) => r.status < 400).length);
      expect(d.failure).toBe(d.count - d.success);
      expect(d.from).not.toBe(d.to);
    }
  });

  it("ttfb: p50 and p95 per provider per bucket within the stated precision", () => {
    const ans = ttfb(db, { ...params, bucket: "day" });
    expect(ans.precision).toBeCloseTo(TTFB_RELATIVE_PRECISION, 3);
    const tol = TTFB_RELATIVE_PRECISION + 1e-3;
    for (const s of ans.series) {
      for (const p of s.points) {
        const values = rows.filter((r) => r.provider === s.key.provider && bucketOf(r.ts, DAY_MS) === p.t && r.ttfb_ms !== null).map((r) => r.ttfb_ms!);
        expect(p.count).toBe(values.length);
        const p50 = exactPercentile(values, 0.5);
        const p95 = exactPercentile(values, 0.95);
        expect(Math.abs(p.p50_ms! - p50) / p50).toBeLessThanOrEqual(tol);
        expect(Math.abs(p.p95_ms! - p95) / p95).toBeLessThanOrEqual(tol);
      }
    }
  });

  it("errors by class and provider", () => {
    const ans = errors(db, params);
    for (const s of ans.series) {
      expect(s.total.errors).toBe(rows.filter((r) => r.provider === s.key.provider && r.error_class === s.key.error_class).length);
    }
    expect(ans.series.reduce((a, s) => a + s.total.errors, 0)).toBe(rows.filter((r) => r.error_class).length);
  });

  it("only the range asked for counts; hours outside are left out", () => {
    const ans = distribution(db, { from: T0 + 10 * HOUR_MS + 5, to: T0 + 12 * HOUR_MS, bucket: "hour" });
    expect(ans.from).toBe(T0 + 10 * HOUR_MS);
    expect(ans.buckets).toEqual([T0 + 10 * HOUR_MS, T0 + 11 * HOUR_MS]);
    const expected = rows.filter((r) => r.ts >= T0 + 10 * HOUR_MS && r.ts < T0 + 12 * HOUR_MS).length;
    expect(ans.series.reduce((a, s) => a + s.total.requests, 0)).toBe(expected);
  });

  it("the worker client answers the same as the inline query, on a read-only connection", async () => {
    const client = new AnalyticsClient(db);
    try {
      expect(await client.query("spend", params)).toEqual(spend(db, params));
      expect(JSON.parse(await client.queryJson("ttfb", params))).toEqual(ttfb(db, params));
      expect(client.answered).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("summary and the report", async () => {
    const s = summary(db, T0, T0 + 48 * HOUR_MS);
    expect(s.requests).toBe(rows.length);
    expect(s.errors).toBe(rows.filter((r) => r.status >= 400).length);
    expect(s.cost_usd).toBeCloseTo(rows.reduce((a, r) => a + (r.cost_usd ?? 0), 0), 5);
    const text = formatReport(s, "x.db");
    expect(text).toContain("Spend by provider, model and tier");
    expect(text).toContain("local-a");
    expect(parseSince("24h")).toBe(DAY_MS);
    expect(parseSince("7d")).toBe(7 * DAY_MS);
    expect(parseSince("soon")).toBeNaN();
    // The command on the file, read-only, as JSON.
    let out = "";
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await reportCommand(["--data-dir", dir, "--since", "48h", "--json"], {}, T0 + 48 * HOUR_MS);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    expect((JSON.parse(out) as { requests: number }).requests).toBe(rows.length);
  });

  it("query parameters: defaults, ISO and epoch ms, errors in OpenAI's shape", () => {
    const now = T0 + 5 * HOUR_MS;
    expect(parseAnalyticsQuery({}, "spend", now)).toEqual({ from: now - DAY_MS, to: now, bucket: "hour" });
    expect(parseAnalyticsQuery({ from: new Date(T0).toISOString(), to: String(now), bucket: "day" }, "ttfb", now)).toEqual({ from: T0, to: now, bucket: "day" });
    const bad = (q: Record<string, string>, param: string): void => {
      try {
        parseAnalyticsQuery(q, "spend", now);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).status).toBe(400);
        expect((err as ApiError).param).toBe(param);
      }
    };
    bad({ bucket: "week" }, "bucket");
    bad({ from: "yesterday" }, "from");
    bad({ from: String(now), to: String(T0) }, "from");
    bad({ from: "0", to: String(now) }, "bucket");
    bad({ group_by: "provider,colour" }, "group_by");
    bad({ limit: "0" }, "limit");
  });
});

describe("migration 3", () => {
  it("rolls up rows logged before it", () => {
    const file = join(tempDir(), "labgate.db");
    const old = new Database(file);
    old.pragma("journal_mode = WAL");
    for (const m of MIGRATIONS.filter((m) => m.version <= 2)) old.exec(m.sql);
    old.pragma("user_version = 2");
    const rows = generate(500, 5, 7);
    const ins = old.prepare(`INSERT INTO request_log (id, ts, tenant, operation, public_model, provider, upstream_model, status, error_class,
      prompt_tokens, completion_tokens, cost_usd, ttfb_ms, total_ms, attempts) VALUES (?, ?, ?, 'chat', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`);
    for (const r of rows) {
      ins.run(r.id, r.ts, r.tenant, r.public_model, r.provider, r.upstream_model, r.status, r.error_class, r.prompt_tokens, r.completion_tokens, r.cost_usd, r.ttfb_ms, JSON.stringify(r.attempts));
    }
    old.close();
    const db = openDatabase(file);
    const params = { from: T0, to: T0 + 5 * HOUR_MS, bucket: "hour" as const };
    expect(distribution(db, params).series.reduce((a, s) => a + s.total.requests, 0)).toBe(500);
    expect(fallbacks(db, params).data.reduce((a, d) => a + d.count, 0)).toBe(rows.filter((r) => r.attempts.length > 1).length);
    const t = ttfb(db, { ...params, bucket: "day" });
    expect(t.series.reduce((a, s) => a + s.total.count, 0)).toBe(rows.filter((r) => r.ttfb_ms !== null).length);
    db.close();
  });
});

describe("retention", () => {
  it("a week of traffic with a 2-day retention: old rows and rollups go, the file stays bounded", () => {
    const dir = tempDir();
    const file = join(dir, "labgate.db");
    const db = openDatabase(file);
    expect(db.pragma("auto_vacuum", { simple: true })).toBe(2); // INCREMENTAL on a new file
    let now = T0;
    const retention = new Retention(db, { retentionDays: 2, now: () => now, batchRows: 500 });
    const sizes: number[] = [];
    const log = new RequestLog(db, { batchSize: 500, flushIntervalMs: 60_000 });
    for (let hour = 0; hour < 7 * 24; hour++) {
      for (const r of generate(400, 1, hour + 100, T0 + hour * HOUR_MS)) log.append(r);
      log.flush();
      now = T0 + (hour + 1) * HOUR_MS;
      retention.purgeNow();
      db.pragma("wal_checkpoint(TRUNCATE)");
      if ((hour + 1) % 24 === 0) sizes.push(statSync(file).size);
    }
    const oldest = db.prepare("SELECT min(ts) FROM request_log").pluck().get() as number;
    expect(oldest).toBeGreaterThanOrEqual(now - 2 * DAY_MS);
    const oldestRollup = db.prepare("SELECT min(hour) FROM request_rollup").pluck().get() as number;
    expect(oldestRollup).toBeGreaterThanOrEqual(now - 2 * DAY_MS - HOUR_MS);
    const oldestDay = db.prepare("SELECT min(day) FROM request_rollup_day").pluck().get() as number;
    expect(oldestDay).toBeGreaterThanOrEqual(now - 3 * DAY_MS);
    expect(db.prepare("SELECT count(*) FROM request_log").pluck().get()).toBeLessThanOrEqual(2 * 24 * 400);
    expect(retention.deletedRows).toBeGreaterThan(4 * 24 * 400);
    expect(retention.pagesFreed).toBeGreaterThan(0);
    // From day 3 on (retention full) the file does not grow: within 15% of its size then.
    const steady = sizes[2]!;
    for (const s of sizes.slice(3)) expect(s).toBeLessThanOrEqual(steady * 1.15);
    expect(db.pragma("freelist_count", { simple: true })).toBeLessThan(600);
    db.close();
  });

  it("runs off the request path in steps on its timer, and stops", async () => {
    const db = openDatabase(join(tempDir(), "labgate.db"));
    writeRows(db, generate(3000, 24, 3));
    const now = T0 + 36 * HOUR_MS;
    const retention = new Retention(db, { retentionDays: 0.5, now: () => now, batchRows: 100, checkIntervalMs: 10 });
    retention.start();
    for (let i = 0; i < 200 && (retention.deletedRows === 0 || retention.busy); i++) await new Promise((r) => setTimeout(r, 10));
    retention.stop();
    expect(db.prepare("SELECT count(*) FROM request_log WHERE ts < ?").pluck().get(now - 12 * HOUR_MS)).toBe(0);
    expect(db.prepare("SELECT count(*) FROM request_rollup WHERE hour < ?").pluck().get(now - 13 * HOUR_MS)).toBe(0);
    db.close();
  });
});
