// The dashboard's frame in a real Chromium against a real gateway: served at /ui
// under a strict CSP, no console errors, the admin key asked for once and never
// put in a URL, and a banner while the gateway is away that goes when it is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const config = (upstream: string) => `
providers:
  lab-openai: { type: openai-compatible, base_url: "${upstream}" }
models:
  chat:
    deployments: [{ provider: lab-openai, model: tiny }]
`;

describe("dashboard shell", () => {
  let browser: TestBrowser;
  let upstream: FakeOpenAI;
  beforeAll(async () => {
    browser = await launchBrowser();
    upstream = await startFakeOpenAI();
  });
  afterAll(async () => {
    await browser?.close();
    await upstream?.close();
  });

  it("serves /ui with a strict Content-Security-Policy and opens without console errors", async () => {
    const gw = await startGateway(config(upstream.v1));
    try {
      const res = await fetch(`${gw.url}/ui/`);
      expect(res.status).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).toContain("frame-ancestors 'none'");
      const root = await fetch(`${gw.url}/`, { redirect: "manual" });
      expect(root.headers.get("location")).toBe("/ui/");

      const { page, errors, context } = await browser.open(`${gw.url}/ui/`);
      await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Overview" }).waitFor();
      for (const name of ["Routes", "Lab", "Requests", "Costs", "Overview"]) {
        await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name }).click();
        await page.locator(`main[data-page="${name.toLowerCase()}"]`).waitFor();
      }
      expect(errors).toEqual([]);
      await context.close();
    } finally {
      await gw.close();
    }
  });

  it("asks for the admin key once, sends it as a header and never in a URL", async () => {
    const gw = await startGateway(`server: { admin_key: "env:DASH_ADMIN_KEY" }\n${config(upstream.v1)}`, { env: { DASH_ADMIN_KEY: "dash-admin-secret" } });
    try {
      const { page, context } = await browser.open(`${gw.url}/ui/`);
      const urls: string[] = [];
      const authorized: string[] = [];
      /** Admin API answers: path and status, in the order they came. */
      const answers: { path: string; status: number }[] = [];
      page.on("request", (r) => {
        urls.push(r.url());
        if (r.headers().authorization === "Bearer dash-admin-secret") authorized.push(new URL(r.url()).pathname);
      });
      page.on("response", (r) => {
        const path = new URL(r.url()).pathname;
        if (path.startsWith("/admin/")) answers.push({ path, status: r.status() });
      });
      const dialog = page.getByRole("dialog", { name: "Admin key" });
      await dialog.waitFor();
      await dialog.getByLabel("Key").fill("dash-admin-secret");
      await dialog.getByRole("button", { name: "Continue" }).click();
      await dialog.waitFor({ state: "hidden" });
      await expect.poll(() => authorized.filter((p) => p === "/admin/events").length, { timeout: 10_000 }).toBeGreaterThan(0);
      // Another page of the same tab does not ask again: after a reload, the pages' admin
      // requests carry the key and none is refused (a 401 would open the dialog again).
      await page.getByRole("link", { name: "Requests" }).click();
      authorized.length = 0;
      answers.length = 0;
      await page.reload();
      await page.locator('main[data-page="requests"]').waitFor();
      // The Requests page's own list and the live stream were both answered with the key.
      await expect
        .poll(() => ["/admin/requests", "/admin/events"].every((path) => answers.some((a) => a.path === path && a.status === 200)), { timeout: 10_000 })
        .toBe(true);
      expect(authorized).toContain("/admin/events");
      expect(answers.filter((a) => a.status === 401)).toEqual([]);
      expect(await dialog.isVisible()).toBe(false);
      // The key stays in this tab's session only.
      expect(await page.evaluate(() => Object.values(localStorage).join("\n"))).not.toContain("dash-admin-secret");
      expect(urls.some((u) => u.includes("dash-admin-secret"))).toBe(false);
      expect(page.url()).not.toContain("dash-admin-secret");
      expect(await page.content()).not.toContain("dash-admin-secret");
      await context.close();
    } finally {
      await gw.close();
    }
  });

  it("shows a banner while the gateway is away and recovers by itself", async () => {
    let gw = await startGateway(config(upstream.v1));
    const port = new URL(gw.url).port;
    const dataDir = gw.dataDir;
    const { page, context } = await browser.open(`${gw.url}/ui/`);
    const banner = page.getByTestId("unreachable-banner");
    try {
      await page.locator('main[data-page="overview"]').waitFor();
      expect(await banner.count()).toBe(0);
      await gw.gateway.close();
      await banner.waitFor({ timeout: 15_000 });
      gw = await restartOn(port, dataDir);
      await banner.waitFor({ state: "detached", timeout: 15_000 });
    } finally {
      await context.close();
      await gw.close();
    }
  });

  async function restartOn(port: string, dataDir: string): Promise<TestGateway> {
    const { buildGateway } = await import("../../gateway/app.ts");
    const { parseConfigText } = await import("../../gateway/config/load.ts");
    const parsed = parseConfigText(config(upstream.v1), "test.yaml");
    if (!parsed.ok) throw new Error("bad config");
    const gateway = await buildGateway({ config: parsed.config, dataDir, modelsDir: `${dataDir}/models`, env: {}, logLevel: "silent", healthIntervalMs: 0, serverDiscovery: false, gpu: false, upstreamMetricsIntervalMs: 0 });
    const url = await gateway.listen("127.0.0.1", Number(port));
    return { url, v1: `${url}/v1`, gateway, dataDir, close: () => gateway.close() };
  }
});
