// GET /admin/requests with filters and keyset pages, through a real gateway over a real
// SQLite file holding 100,000 generated rows (seeded; written by the log's own writer):
// pages never overlap, together they hold exactly the rows a filter matches, filters
// combine, bad values are 400s that name the parameter, and every page query runs on an
// index in the log's order (EXPLAIN QUERY PLAN) rather than scanning and sorting the table.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pageSql, type RequestLogQuery, type RequestLogRow } from "../../gateway/store/request-log.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { seededRandom } from "../fixtures/random.ts";

const ROWS = 100_000;
const MODELS = ["chat", "chat-large", "embed", "code"];
// "rare" answers about 1 row in 1,000: its pages come from all over the log.
const PROVIDERS: [string, number][] = [
  ["lab-vllm", 0.55],
  ["lab-llama", 0.25],
  ["cloud-openai", 0.15],
  ["cloud-azure", 0.049],
  ["rare", 0.001],
];
const STATUSES: [number, number][] = [
  [200, 0.9],
  [429, 0.04],
  [500, 0.03],
  [502, 0.02],
  [400, 0.01],
];

function pick<T>(r: () => number, weighted: [T, number][]): T {
  let x = r();
  for (const [v, w] of weighted) if ((x -= w) < 0) return v;
  return weighted[0]![0];
}

/** 100,000 rows over the last 7 days, several per second: ties on ts test the order's tie-break. */
function generateRows(now: number): RequestLogRow[] {
  const r = seededRandom(13);
  const start = now - 7 * 86_400_000;
  const rows: RequestLogRow[] = [];
  let ts = start;
  for (let i = 0; i < ROWS; i++) {
    // About 6 s apart on average, whole seconds: many rows share a ts.
    ts += Math.floor(r() * 12) * 1000;
    const provider = pick(r, PROVIDERS);
    const status = pick(r, STATUSES);
    const depth = r() < 0.1 ? 1 : 0;
    const attempts = [{ attempt: 1, provider, deployment: `${provider}#0`, error_class: status === 200 ? null : "upstream_5xx", ms: 12.5 }];
    if (depth) attempts.unshift({ attempt: 0, provider: "cloud-openai", deployment: "cloud-openai#0", error_class: "timeout", ms: 30 });
    rows.push({
      id: `gen-${String(i).padStart(6, "0")}`,
      ts,
      tenant: r() < 0.5 ? "team-a" : "team-b",
      operation: "chat",
      public_model: MODELS[Math.floor(r() * MODELS.length)]!,
      provider,
      upstream_model: "m",
      fallback_depth: depth,
      is_overflow: false,
      panic: false,
      stream: r() < 0.5,
      status,
      error_class: status === 200 ? null : "upstream_5xx",
      prompt_tokens: 10 + Math.floor(r() * 500),
      completion_tokens: Math.floor(r() * 300),
      cost_usd: Math.round(r() * 1e4) / 1e6,
      ttfb_ms: 20 + r() * 300,
      total_ms: 100 + r() * 900,
      overhead_ms: 0.3,
      attempts,
      tier: provider.startsWith("cloud") ? "cloud" : "local",
    });
  }
  return rows;
}

interface Page {
  data: RequestLogRow[];
  has_more: boolean;
  next_before: string | null;
  next_after: string | null;
}

describe("GET /admin/requests over 100,000 rows", () => {
  let gw: TestGateway;
  let rows: RequestLogRow[];
  /** The log's order: newest first, later inserts first among equal times. */
  let newestFirst: RequestLogRow[];

  beforeAll(async () => {
    gw = await startGateway(`
providers:
  lab-vllm: { type: openai-compatible, base_url: "http://127.0.0.1:9/v1" }
models:
  chat:
    deployments: [{ provider: lab-vllm, model: m }]
`);
    rows = generateRows(Date.now());
    for (const row of rows) gw.gateway.requestLog.append(row);
    gw.gateway.requestLog.flush();
    newestFirst = rows.slice().reverse();
  }, 120_000);
  afterAll(async () => {
    await gw?.close();
  });

  const get = async (query: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${gw.url}/admin/requests${query}`);
    return { status: res.status, body: await res.json() };
  };

  /** Every page of a filter, Older after Older, as the dashboard walks them. */
  async function walk(filter: Record<string, string>, limit: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let before: string | null = null;
    let pages = 0;
    for (;;) {
      const q = new URLSearchParams({ ...filter, limit: String(limit), ...(before ? { before } : {}) });
      const t0 = performance.now();
      const { status, body } = await get(`?${q}`);
      if (pages === 0) console.log(`first page of ${JSON.stringify(filter)}: ${(performance.now() - t0).toFixed(1)} ms round trip`);
      expect(status).toBe(200);
      const page = body as Page;
      pages++;
      ids.push(...page.data.map((r) => r.id));
      if (!page.has_more) break;
      expect(page.data.length).toBe(limit);
      before = page.next_before;
    }
    return { ids, pages };
  }

  const expectedIds = (match: (r: RequestLogRow) => boolean): string[] => newestFirst.filter(match).map((r) => r.id);

  it("without parameters answers the newest 100 rows, as it always did", async () => {
    const { status, body } = await get("");
    expect(status).toBe(200);
    expect(body.object).toBe("list");
    expect(body.has_more).toBe(true);
    expect((body as Page).data.map((r) => r.id)).toEqual(newestFirst.slice(0, 100).map((r) => r.id));
    expect(body.data[0].attempts[0]).toMatchObject({ provider: expect.any(String), deployment: expect.any(String), ms: expect.any(Number) });
  });

  it("pages of the whole log never overlap and hold every row once, in order", async () => {
    const { ids, pages } = await walk({}, 500);
    expect(pages).toBe(ROWS / 500);
    expect(new Set(ids).size).toBe(ROWS);
    expect(ids).toEqual(newestFirst.map((r) => r.id));
  }, 120_000);

  it("filters by provider, model, status class or code and time, alone and combined; the pages cover exactly the matching rows", async () => {
    const now = Date.now();
    const from = now - 3 * 86_400_000;
    const to = now - 1 * 86_400_000;
    const cases: [Record<string, string>, (r: RequestLogRow) => boolean][] = [
      [{ provider: "rare" }, (r) => r.provider === "rare"],
      [{ model: "embed", status: "error" }, (r) => r.public_model === "embed" && (r.status < 200 || r.status > 299)],
      [{ provider: "cloud-azure", status: "ok" }, (r) => r.provider === "cloud-azure" && r.status >= 200 && r.status <= 299],
      [{ status: "429", from: String(from), to: new Date(to).toISOString() }, (r) => r.status === 429 && r.ts >= from && r.ts < to],
      [
        { model: "code", provider: "lab-llama", status: "500", from: new Date(from).toISOString() },
        (r) => r.public_model === "code" && r.provider === "lab-llama" && r.status === 500 && r.ts >= from,
      ],
    ];
    for (const [filter, match] of cases) {
      const expected = expectedIds(match);
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(10);
      const { ids } = await walk(filter, 37);
      expect(ids, JSON.stringify(filter)).toEqual(expected);
    }
    // A filter nothing matches: an empty page, no cursor.
    const none = await get("?provider=nobody");
    expect(none.body).toMatchObject({ data: [], has_more: false, next_before: null, next_after: null });
  }, 120_000);

  it("pages back up with after= (Newer) and continue from a request id as well as from a cursor", async () => {
    const first = (await get("?model=chat&limit=50")).body as Page;
    const second = (await get(`?model=chat&limit=50&before=${first.next_before}`)).body as Page;
    const third = (await get(`?model=chat&limit=50&before=${second.next_before}`)).body as Page;
    const backToSecond = (await get(`?model=chat&limit=50&after=${third.next_after}`)).body as Page;
    expect(backToSecond.data.map((r) => r.id)).toEqual(second.data.map((r) => r.id));
    expect(backToSecond.has_more).toBe(true);
    const backToFirst = (await get(`?model=chat&limit=50&after=${second.next_after}`)).body as Page;
    expect(backToFirst.data.map((r) => r.id)).toEqual(first.data.map((r) => r.id));
    expect(backToFirst.has_more).toBe(false);
    // The id of the last row seen is a cursor too.
    const byId = (await get(`?model=chat&limit=50&before=${first.data.at(-1)!.id}`)).body as Page;
    expect(byId.data.map((r) => r.id)).toEqual(second.data.map((r) => r.id));
  });

  it("GET /admin/requests/:id answers one row with its attempts; an unknown id is a 404", async () => {
    const withFallback = rows.find((r) => r.fallback_depth === 1)!;
    const res = await fetch(`${gw.url}/admin/requests/${withFallback.id}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as RequestLogRow;
    expect(body).toMatchObject({ id: withFallback.id, provider: withFallback.provider, status: withFallback.status, fallback_depth: 1 });
    expect(body.attempts.map((a) => [a.provider, a.error_class])).toEqual([
      ["cloud-openai", "timeout"],
      [withFallback.provider, withFallback.status === 200 ? null : "upstream_5xx"],
    ]);
    const missing = await fetch(`${gw.url}/admin/requests/no-such-request`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("request_not_found");
  });

  it("bad values are 400s in OpenAI's error shape that name the parameter", async () => {
    const bad: [string, string][] = [
      ["?status=teapot", "status"],
      ["?status=700", "status"],
      ["?from=yesterday", "from"],
      ["?to=-5", "to"],
      [`?from=${Date.now()}&to=${Date.now() - 1000}`, "from"],
      ["?limit=ten", "limit"],
      ["?before=not-a-request", "before"],
      ["?after=12_x", "after"],
      ["?before=1_1&after=1_1", "after"],
      ["?provider=a&provider=b", "provider"],
      [`?model=${"x".repeat(2000)}`, "model"],
    ];
    for (const [query, param] of bad) {
      const { status, body } = await get(query);
      expect(status, query).toBe(400);
      expect(body.error, query).toMatchObject({ type: "invalid_request_error", param, message: expect.any(String) });
    }
    // Out-of-range numbers are clamped, as before.
    expect((await get("?limit=100000")).body.data).toHaveLength(500);
    expect((await get("?limit=0")).body.data).toHaveLength(1);
  });

  it("every shape of page query reads an index in the log's order: no table scan, no sort", () => {
    const db = gw.gateway.requestLog.database;
    const cursor = { ts: rows[50_000]!.ts, rowid: 50_000 };
    const filters: Omit<RequestLogQuery, "limit">[] = [{}, { model: "chat" }, { provider: "rare" }, { status: "error" }, { status: 429 }, { from: rows[10]!.ts, to: rows[90_000]!.ts }];
    for (const f of filters) {
      for (const place of [{}, { before: cursor }, { after: cursor }]) {
        const combined: RequestLogQuery = { ...f, ...place, limit: 100 };
        const { sql, args } = pageSql(combined);
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((p) => p.detail).join("; ");
        expect(plan, JSON.stringify(combined)).toMatch(/USING INDEX request_log_(ts|model)\b/);
        expect(plan, JSON.stringify(combined)).not.toMatch(/TEMP B-TREE/);
        const t0 = performance.now();
        db.prepare(sql).all(...args);
        console.log(`${JSON.stringify(combined)}: ${(performance.now() - t0).toFixed(2)} ms  [${plan}]`);
      }
    }
    // With a model, the model's own index; with a model and a time range, its range too.
    const modelPlan = (db.prepare(`EXPLAIN QUERY PLAN ${pageSql({ model: "chat", from: 1, limit: 10 }).sql}`).all("chat", 1, 11) as { detail: string }[])[0]!.detail;
    expect(modelPlan).toContain("USING INDEX request_log_model (public_model=? AND ts>?)");
  });
});
