// The dashboard's Overview in a real Chromium against a real gateway and two fake
// OpenAI-compatible upstreams: it opens without console errors, traffic shows up in the
// provider tiles and their TTFB charts, a killed upstream turns its tile red ("down")
// and green again when it is back, in light and dark; GET /admin/traffic behind the admin key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { seededRandom, startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const config = (alpha: string, beta: string) => `
providers:
  alpha: { type: openai-compatible, base_url: "${alpha}" }
  beta: { type: openai-compatible, base_url: "${beta}" }
models:
  chat-alpha:
    deployments: [{ provider: alpha, model: tiny }]
  chat-beta:
    deployments: [{ provider: beta, model: tiny }]
`;

const ask = async (gw: TestGateway, model: string, stream = false, headers: Record<string, string> = {}) => {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model, stream, messages: [{ role: "user", content: "hi" }] }),
  });
  expect(res.status).toBe(200);
  await res.text();
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const localMidnight = (now: number): number => {
  const d = new Date(now);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
};

/** GET without a key (these gateways have none). */
const adminJson = async <T>(gw: TestGateway, path: string): Promise<T> => (await fetch(`${gw.url}${path}`)).json() as Promise<T>;

/** Requests since local midnight as the request log counts them: what "Requests today" reads. */
const requestsToday = async (gw: TestGateway): Promise<number> => {
  const now = Date.now();
  const spend = await adminJson<{ series: { total: { requests: number } }[] }>(gw, `/admin/analytics/spend?from=${localMidnight(now)}&to=${now}&limit=1000&group_by=provider`);
  return spend.series.reduce((n, x) => n + x.total.requests, 0);
};

/**
 * "Requests today" must show every request sent since startedAt, unless the run crossed
 * local midnight: then the ones the log counts for the new day, asked at the same moment.
 * Returns "ok" or what differed, for expect.poll.
 */
const todayMatches = async (gw: TestGateway, shown: Promise<string | null>, sent: number, startedAt: number): Promise<string> => {
  const text = await shown;
  const expected = localMidnight(Date.now()) > startedAt ? await requestsToday(gw) : sent;
  return text === String(expected) ? "ok" : `shows ${text}, expected ${expected}`;
};

describe("dashboard overview", () => {
  let browser: TestBrowser;
  let alpha: FakeOpenAI;
  let beta: FakeOpenAI;
  beforeAll(async () => {
    browser = await launchBrowser();
    alpha = await startFakeOpenAI({ name: "alpha", firstByteDelayMs: 20 });
    beta = await startFakeOpenAI({ name: "beta", firstByteDelayMs: 60 });
  });
  afterAll(async () => {
    await browser?.close();
    await alpha?.close();
    await beta?.close();
  });

  it("shows each provider's traffic and TTFB, and a killed upstream's tile goes down and comes back", { timeout: 90_000 }, async () => {
    // 2 s buckets rather than 10 s: the charts' growth is seen in seconds (the page reads the width from /admin/traffic).
    const gw = await startGateway(config(alpha.v1, beta.v1), { healthIntervalMs: 300, trafficBucketMs: 2_000 });
    const startedAt = Date.now();
    let traffic: ReturnType<typeof startTraffic> | undefined;
    try {
      const { page, errors, context } = await browser.open(`${gw.url}/ui/#/overview`);
      const tile = (name: string) => page.getByTestId(`provider-tile-${name}`);
      await tile("alpha").waitFor();
      await tile("beta").waitFor();
      await expect.poll(() => tile("alpha").getAttribute("data-health"), { timeout: 5_000 }).toBe("ok");
      await expect.poll(() => tile("beta").getAttribute("data-health"), { timeout: 5_000 }).toBe("ok");
      await expect.poll(() => tile("alpha").getByText("Healthy").count()).toBe(1);

      for (let i = 0; i < 4; i++) {
        await ask(gw, "chat-alpha", i % 2 === 1);
        await ask(gw, "chat-beta", i % 2 === 1);
      }
      // The API counts the 4 requests each just sent in its recent window...
      const traffic0 = await adminJson<{ providers: { provider: string; recent: { requests: number } }[] }>(gw, "/admin/traffic");
      expect(Object.fromEntries(traffic0.providers.map((p) => [p.provider, p.recent.requests]))).toEqual({ alpha: 4, beta: 4 });
      for (const name of ["alpha", "beta"]) {
        // ...and the tile shows what the API says at the same moment (on a slow run the
        // window may have slid past some of them since: the page must follow, not stay at 4).
        await expect
          .poll(
            async () => {
              const shown = await tile(name).getByTestId("provider-requests").textContent();
              const now = await adminJson<{ providers: { provider: string; recent: { requests: number } }[] }>(gw, "/admin/traffic");
              const n = now.providers.find((p) => p.provider === name)?.recent.requests ?? 0;
              return n > 0 && shown?.startsWith(`${n} request${n === 1 ? "" : "s"} in the last `) ? "ok" : `shows "${shown}", the API ${n}`;
            },
            { timeout: 10_000 },
          )
          .toBe("ok");
        const chart = tile(name).locator("figure.ttfb-chart");
        await expect.poll(() => chart.getAttribute("data-points"), { timeout: 10_000 }).not.toBe("0");
        expect(await chart.locator("canvas").count()).toBe(1);
        // The readout names the newest bucket's TTFB: a number of ms, not a dash.
        expect(await chart.locator(".ttfb-chart-readout").textContent()).toMatch(/^latest: p50 [\d.]+ m?s · p95 [\d.]+ m?s$/);
      }
      // Today's totals come from the request log.
      const todayValue = () => page.getByTestId("total-requests").locator(".stat-tile-value").textContent();
      await expect.poll(() => todayMatches(gw, todayValue(), 8, startedAt), { timeout: 10_000 }).toBe("ok");
      expect(await page.getByTestId("total-errors").locator(".stat-tile-value").textContent()).toBe("0");

      // Steady traffic from here on (beta's paused while it is away), so the charts move.
      traffic = startTraffic(gw);
      // The upstream goes away: its health probe fails and its tile turns red, the other stays green.
      const betaPort = Number(new URL(beta.url).port);
      await traffic.pauseBeta();
      await beta.close();
      await expect.poll(() => tile("beta").getAttribute("data-health"), { timeout: 5_000 }).toBe("down");
      expect(await tile("beta").getByTestId("provider-health").textContent()).toBe("Down");
      expect(await tile("alpha").getAttribute("data-health")).toBe("ok");
      await browser.screenshot(page, "overview-down");
      beta = await startFakeOpenAI({ name: "beta", firstByteDelayMs: 60, port: betaPort });
      await expect.poll(() => tile("beta").getAttribute("data-health"), { timeout: 5_000 }).toBe("ok");
      traffic.resumeBeta();

      // The charts grow bucket by bucket (2 s each here) while the page stays open.
      for (const name of ["alpha", "beta"]) {
        await expect.poll(async () => Number(await tile(name).locator("figure.ttfb-chart").getAttribute("data-points")), { timeout: 15_000 }).toBeGreaterThan(1);
      }
      const sent = 8 + (await traffic.stop());
      traffic = undefined;
      await expect.poll(() => todayMatches(gw, todayValue(), sent, startedAt), { timeout: 10_000 }).toBe("ok");
      expect(await page.getByTestId("total-errors").locator(".stat-tile-value").textContent()).toBe("0");
      await browser.screenshot(page, "overview-light");

      // Failed requests turn a tile amber, with the reason said; an operator's toggle turns it grey.
      alpha.faultNext({ kind: "status", status: 500 }, 5);
      const failed = await fetch(`${gw.v1}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "chat-alpha", messages: [{ role: "user", content: "hi" }] }) });
      expect(failed.status).toBeGreaterThanOrEqual(500);
      // Amber lasts only while the failure is among the last seconds the page looks at:
      // colour, word and reason are read together, in one snapshot of the tile.
      const tileState = () =>
        tile("alpha").evaluate((el) => ({
          health: el.getAttribute("data-health"),
          label: el.querySelector('[data-testid="provider-health"]')?.textContent ?? null,
          failedReason: [...el.querySelectorAll("li")].some((li) => /failed request/.test(li.textContent ?? "")),
        }));
      await expect.poll(tileState, { timeout: 5_000 }).toEqual({ health: "degraded", label: "Degraded", failedReason: true });
      alpha.faultNext({ kind: "none" }, 0);
      expect((await fetch(`${gw.url}/admin/providers/beta/disable`, { method: "POST" })).status).toBe(200);
      await expect.poll(() => tile("beta").getAttribute("data-health"), { timeout: 5_000 }).toBe("off");
      expect(await tile("beta").getByTestId("provider-health").textContent()).toBe("Disabled");
      expect((await fetch(`${gw.url}/admin/providers/beta/enable`, { method: "POST" })).status).toBe(200);
      await expect.poll(() => tile("beta").getAttribute("data-health"), { timeout: 5_000 }).toBe("ok");
      expect(errors).toEqual([]);
      await context.close();

      const dark = await browser.open(`${gw.url}/ui/#/overview`, { colorScheme: "dark" });
      const darkChart = dark.page.getByTestId("provider-tile-alpha").locator("figure.ttfb-chart");
      await expect.poll(() => darkChart.getAttribute("data-points"), { timeout: 5_000 }).not.toBe("0");
      await expect.poll(() => todayMatches(gw, dark.page.getByTestId("total-requests").locator(".stat-tile-value").textContent(), sent + 1, startedAt), { timeout: 10_000 }).toBe("ok");
      await browser.screenshot(dark.page, "overview-dark");
      expect(dark.errors).toEqual([]);
      await dark.context.close();
    } finally {
      await traffic?.stop().catch(() => {});
      await gw.close();
    }
  });

  /** Requests to alpha and beta in turn, with seeded first-byte delays, until stopped; resolves to how many were sent. */
  function startTraffic(gw: TestGateway) {
    const rand = seededRandom(13);
    let betaOn = true;
    let stopped = false;
    let sent = 0;
    let round: Promise<void> = Promise.resolve();
    const loop = (async () => {
      while (!stopped) {
        round = (async () => {
          alpha.options.firstByteDelayMs = 10 + Math.round(rand() * 40);
          await ask(gw, "chat-alpha", rand() < 0.5);
          sent++;
          if (betaOn) {
            beta.options.firstByteDelayMs = 40 + Math.round(rand() * 80);
            await ask(gw, "chat-beta", rand() < 0.5);
            sent++;
          }
        })();
        await round;
        await sleep(150);
      }
    })();
    return {
      async pauseBeta() {
        betaOn = false;
        await round;
      },
      resumeBeta() {
        betaOn = true;
      },
      async stop() {
        stopped = true;
        await loop;
        return sent;
      },
    };
  }

  it("serves the last hour per provider at /admin/traffic, behind the admin key", async () => {
    const gw = await startGateway(`server: { admin_key: "env:OVERVIEW_ADMIN_KEY" }\n${config(alpha.v1, beta.v1)}`, { env: { OVERVIEW_ADMIN_KEY: "overview-admin" } });
    try {
      expect((await fetch(`${gw.url}/admin/traffic`)).status).toBe(401);
      alpha.options.firstByteDelayMs = 20; // whatever an earlier test left
      await ask(gw, "chat-alpha");
      await ask(gw, "chat-alpha", true);
      const res = await fetch(`${gw.url}/admin/traffic`, { headers: { authorization: "Bearer overview-admin" } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { bucket_ms: number; providers: { provider: string; points: { requests: number; errors: number; ttfb_p50_ms: number }[]; recent: { requests: number } }[] };
      expect(body.bucket_ms).toBe(10_000);
      expect(body.providers.map((p) => p.provider)).toEqual(["alpha"]);
      const points = body.providers[0]!.points;
      expect(points.reduce((n, p) => n + p.requests, 0)).toBe(2);
      expect(points.every((p) => p.errors === 0)).toBe(true);
      // The fake waits 20 ms before its first byte.
      expect(points.at(-1)!.ttfb_p50_ms).toBeGreaterThanOrEqual(20);
      expect(body.providers[0]!.recent.requests).toBe(2);
    } finally {
      await gw.close();
    }
  });
});

