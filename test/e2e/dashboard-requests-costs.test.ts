// The dashboard's Requests and Costs pages in a real Chromium against a real gateway in
// front of two priced fake upstreams: the log's rows show (and new ones arrive while Live
// is on), filters narrow them on the server, a row opens its attempts, and the Costs
// page's totals equal the sums over the request log. No console errors; screenshots of
// both pages in light and dark are kept in test-results/screenshots/.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import type { RequestLogRow } from "../../gateway/store/request-log.ts";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const config = (local: string, cloud: string) => `
router: { retries: 0 }
providers:
  lab-llama: { type: openai-compatible, base_url: "${local}" }
  cloud-gpt: { type: openai-compatible, base_url: "${cloud}" }
models:
  chat:
    deployments: [{ provider: lab-llama, model: tiny, tier: local, price: { input_per_1m: 2, output_per_1m: 6 } }]
    fallbacks: [big]
  big:
    deployments: [{ provider: cloud-gpt, model: large, tier: cloud, price: { input_per_1m: 10, output_per_1m: 30 } }]
budgets:
  tiers:
    local: { max_usd_per_1k_tokens: 0.01, daily_usd: 5 }
    cloud: { max_usd_per_1k_tokens: 0.02, daily_usd: 1 }
  providers:
    cloud-gpt: { daily_usd: 2 }
`;

describe("dashboard: Requests and Costs pages", () => {
  let browser: TestBrowser;
  let local: FakeOpenAI;
  let cloud: FakeOpenAI;
  let gw: TestGateway;

  const chat = async (model: string, words = 3): Promise<number> => {
    const res = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: Array.from({ length: words }, (_, i) => `word${i}`).join(" ") }] }),
    });
    await res.text();
    return res.status;
  };

  /** Every row of the log, page after page, as a client of the API sees them. */
  async function allRows(query = ""): Promise<RequestLogRow[]> {
    const rows: RequestLogRow[] = [];
    let before: string | null = null;
    for (;;) {
      const q = new URLSearchParams(query);
      q.set("limit", "7");
      if (before) q.set("before", before);
      const page = (await (await fetch(`${gw.url}/admin/requests?${q}`)).json()) as { data: RequestLogRow[]; has_more: boolean; next_before: string | null };
      rows.push(...page.data);
      if (!page.has_more) return rows;
      before = page.next_before;
    }
  }

  const tableRows = (page: Page) => page.getByRole("table", { name: "Requests" }).locator("tbody tr");

  beforeAll(async () => {
    browser = await launchBrowser();
    local = await startFakeOpenAI({ name: "local" });
    cloud = await startFakeOpenAI({ name: "cloud" });
    gw = await startGateway(config(local.v1, cloud.v1));
    // 8 local answers of different sizes, 3 cloud ones, one that falls back from local to cloud, one refused by the cloud.
    for (let i = 0; i < 8; i++) expect(await chat("chat", 2 + i)).toBe(200);
    for (let i = 0; i < 3; i++) expect(await chat("big", 20 + i)).toBe(200);
    local.faultNext({ kind: "status", status: 500, message: "boom" });
    expect(await chat("chat", 5)).toBe(200);
    cloud.faultNext({ kind: "status", status: 400, message: "bad request", type: "invalid_request_error" });
    expect(await chat("big", 4)).toBe(400);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await local?.close();
    await cloud?.close();
  });

  it("Requests: shows the log, follows new requests while Live is on, filters on the server and opens a row's attempts", async () => {
    const logged = await allRows();
    expect(logged).toHaveLength(13);
    const fallback = logged.find((r) => r.fallback_depth > 0 || r.attempts.length > 1)!;
    expect(fallback).toBeDefined();

    const { page, errors, context } = await browser.open(`${gw.url}/ui/#/requests`);
    try {
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(13);
      const first = tableRows(page).first();
      expect(await first.getAttribute("data-request-id")).toBe(logged[0]!.id);

      // Live: two more requests show up without a reload.
      expect(await page.getByRole("switch", { name: "Live" }).isChecked()).toBe(true);
      expect(await chat("chat", 6)).toBe(200);
      expect(await chat("big", 6)).toBe(200);
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(15);

      // Filters narrow the rows to what the server says matches.
      const filters = page.getByRole("form", { name: "Filters" });
      await filters.getByLabel("Provider").selectOption("cloud-gpt");
      const cloudRows = await allRows("provider=cloud-gpt");
      expect(cloudRows.length).toBeGreaterThan(1);
      expect(cloudRows.length).toBeLessThan(15);
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(cloudRows.length);
      expect(await tableRows(page).evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-request-id")))).toEqual(cloudRows.map((r) => r.id));
      await filters.getByLabel("Status").selectOption("error");
      const cloudErrors = await allRows("provider=cloud-gpt&status=error");
      expect(cloudErrors).toHaveLength(1);
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(1);
      expect(await tableRows(page).first().getByText("400").count()).toBeGreaterThan(0);
      await filters.getByRole("button", { name: "Clear filters" }).click();
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(15);
      // A custom time range that ended an hour ago holds none of them, and says what to do.
      await filters.getByLabel("Time").selectOption("custom");
      const local = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
      await filters.getByLabel("From", { exact: true }).fill(local(Date.now() - 3 * 3_600_000));
      await filters.getByLabel("To", { exact: true }).fill(local(Date.now() - 3_600_000));
      await page.getByText("No requests match.").waitFor();
      await filters.getByRole("button", { name: "Clear filters" }).click();
      await expect.poll(() => tableRows(page).count(), { timeout: 20_000 }).toBe(15);

      // A row opens its attempts, by keyboard: focus its button, Enter; Escape closes.
      const row = page.locator(`tr[data-request-id="${fallback.id}"]`);
      await row.getByRole("button").focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      const attempts = dialog.getByRole("table", { name: "Attempts" }).locator("tbody tr");
      await expect.poll(() => attempts.count()).toBe(fallback.attempts.length);
      expect(fallback.attempts.length).toBe(2);
      expect(await attempts.nth(0).innerText()).toContain("lab-llama");
      expect(await attempts.nth(0).innerText()).toContain(fallback.attempts[0]!.error_class!);
      expect(await attempts.nth(1).innerText()).toContain("cloud-gpt");
      await browser.screenshot(page, "requests-dialog-light");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });

      await browser.screenshot(page, "requests-light");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }

    const dark = await browser.open(`${gw.url}/ui/#/requests`, { colorScheme: "dark" });
    try {
      await expect.poll(() => tableRows(dark.page).count(), { timeout: 20_000 }).toBe(15);
      await browser.screenshot(dark.page, "requests-dark");
      expect(dark.errors).toEqual([]);
    } finally {
      await dark.context.close();
    }
  }, 90_000);

  it("Requests: Older and Newer walk the log by cursor, 50 rows a page, without overlap", async () => {
    const paged = await startGateway(config(local.v1, cloud.v1));
    const { page, errors, context } = await browser.open(`${paged.url}/ui/#/requests`);
    try {
      const now = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 120; i++) {
        const id = `paged-${String(i).padStart(3, "0")}`;
        ids.push(id);
        // One a second over the last two minutes, straight into the log (its own writer).
        paged.gateway.requestLog.append({
          id,
          ts: now - (120 - i) * 1000,
          tenant: "anonymous",
          operation: "chat",
          public_model: "chat",
          provider: "lab-llama",
          upstream_model: "tiny",
          fallback_depth: 0,
          is_overflow: false,
          panic: false,
          stream: false,
          status: 200,
          error_class: null,
          prompt_tokens: 3,
          completion_tokens: 5,
          cost_usd: 0.00001,
          ttfb_ms: 4,
          total_ms: 9,
          overhead_ms: 0.2,
          attempts: [{ attempt: 1, provider: "lab-llama", deployment: "chat#0", error_class: null, ms: 8 }],
        });
      }
      const newestFirst = ids.slice().reverse();
      const shown = () => tableRows(page).evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-request-id")));
      const pager = page.getByRole("navigation", { name: "Pages of requests" });
      await expect.poll(shown, { timeout: 20_000 }).toEqual(newestFirst.slice(0, 50));
      await pager.getByRole("button", { name: "Older →" }).click();
      await expect.poll(shown, { timeout: 20_000 }).toEqual(newestFirst.slice(50, 100));
      expect(await page.getByRole("switch", { name: "Live" }).isChecked()).toBe(false);
      await pager.getByRole("button", { name: "Older →" }).click();
      await expect.poll(shown, { timeout: 20_000 }).toEqual(newestFirst.slice(100));
      expect(await pager.getByRole("button", { name: "Older →" }).isDisabled()).toBe(true);
      await pager.getByRole("button", { name: "← Newer" }).click();
      await expect.poll(shown, { timeout: 20_000 }).toEqual(newestFirst.slice(50, 100));
      await pager.getByRole("button", { name: "← Newer" }).click();
      await expect.poll(shown, { timeout: 20_000 }).toEqual(newestFirst.slice(0, 50));
      expect(await page.getByTestId("requests-page-label").innerText()).toContain("Newest");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      await paged.close();
    }
  }, 90_000);

  it("Costs: the total spend and request count equal the sums over the request log; budgets by tier and the gate's verdicts show", async () => {
    const rows = await allRows();
    const usd = rows.reduce((a, r) => a + (r.cost_usd ?? 0), 0);
    expect(usd).toBeGreaterThan(0);
    const tokensIn = rows.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0);

    for (const colorScheme of ["light", "dark"] as const) {
      const { page, errors, context } = await browser.open(`${gw.url}/ui/#/costs`, { colorScheme });
      try {
        const requests = page.getByTestId("costs-total-requests");
        await expect.poll(async () => Number(await requests.getAttribute("data-value")), { timeout: 20_000 }).toBe(rows.length);
        expect(await requests.innerText()).toBe(String(rows.length));
        expect(Number(await page.getByTestId("costs-total-usd").getAttribute("data-value"))).toBeCloseTo(usd, 6);
        expect(Number(await page.getByTestId("costs-total-tokens-in").getAttribute("data-value"))).toBe(tokensIn);
        // The breakdown by provider holds both providers; by tier, both tiers with their budgets.
        const byProvider = page.getByRole("table", { name: "Spend by provider" });
        await byProvider.getByRole("rowheader", { name: "lab-llama" }).waitFor();
        await byProvider.getByRole("rowheader", { name: "cloud-gpt" }).waitFor();
        await page.getByTestId("tier-cloud").getByRole("meter").first().waitFor();
        expect(await page.getByTestId("tier-local").innerText()).toContain("of $0.01");
        // The gate: every criterion with a verdict badge.
        const criteria = page.getByRole("table", { name: "Gate criteria" }).locator("tbody tr");
        await expect.poll(() => criteria.count(), { timeout: 15_000 }).toBeGreaterThan(3);
        const verdicts = await criteria.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-verdict")));
        expect(verdicts.every((v) => v === "PASS" || v === "FAIL" || v === "NO DATA")).toBe(true);
        expect(verdicts).toContain("PASS");
        expect(await page.getByTestId("gate-availability").getByText(/^(PASS|FAIL)$/).count()).toBe(1);
        // Another split, by keyboard: the Model radio.
        await page.getByRole("radio", { name: "Model" }).check();
        await page.getByRole("table", { name: "Spend by model" }).getByRole("rowheader", { name: "big" }).waitFor();
        await page.getByRole("radio", { name: "Provider" }).check();
        await byProvider.waitFor();
        await browser.screenshot(page, `costs-${colorScheme}`);
        // By day over 30 days (the daily rollups): the same sums.
        await page.getByRole("radio", { name: "30 days" }).check();
        await page.getByRole("img", { name: /^Spend per day by provider/ }).waitFor();
        await expect.poll(async () => Number(await page.getByTestId("costs-total-requests").getAttribute("data-value")), { timeout: 20_000 }).toBe(rows.length);
        expect(Number(await page.getByTestId("costs-total-usd").getAttribute("data-value"))).toBeCloseTo(usd, 6);
        if (colorScheme === "light") await browser.screenshot(page, "costs-30d-light");
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    }
  }, 90_000);
});
