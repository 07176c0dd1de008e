// The dashboard's Routes page in a real Chromium against a real gateway whose config has
// the example's chain (llama3.1:latest -> llama-cpp-default -> gpt-oss:20b-cloud) in front
// of fakes: a fake Ollama, a fake llama-server and a fake cloud OpenAI. The chain is drawn
// left to right, requests that fall back are counted on the arrows they took, and a
// killed upstream's deployment turns red and back when it returns.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const CLOUD_KEY = "routes-cloud-secret";
const CHAIN = ["llama3.1:latest", "llama-cpp-default", "gpt-oss:20b-cloud"];

const config = (ollama: string, llama: string, cloud: string) => `
providers:
  ollama:           {type: ollama,   base_url: "${ollama}"}
  llama-cpp-native: {type: llamacpp, base_url: "${llama}"}
  openai:           {type: openai,   base_url: "${cloud}", api_key: env:ROUTES_OPENAI_KEY}
models:
  "llama3.1:latest":
    deployments: [{provider: ollama, model: "llama3.1:latest", tier: local}]
    fallbacks: [llama-cpp-default, "gpt-oss:20b-cloud"]
  llama-cpp-default:
    deployments: [{provider: llama-cpp-native, model: default, tier: local}]
  "gpt-oss:20b-cloud":
    deployments: [{provider: openai, model: gpt-oss-20b, tier: standard}]
  qwen2.5-coder:
    strategy: weighted
    deployments:
      - {provider: ollama, model: "qwen2.5-coder:7b", weight: 2, tier: local}
      - {provider: llama-cpp-native, model: qwen2.5-coder-7b, weight: 1, tier: local}
      - {provider: openai, model: gpt-4o-mini, tier: standard, overflow: true}
`;

// A real Chromium and a gateway per test on two shared cores: a test can take far longer
// than alone (30 s seen while other browser tests ran); the waits inside stay bounded.
describe("dashboard routes page", { timeout: 90_000 }, () => {
  let browser: TestBrowser;
  let ollama: FakeOllama;
  let llama: FakeOpenAI;
  let cloud: FakeOpenAI;
  let gw: TestGateway;

  beforeAll(async () => {
    browser = await launchBrowser();
    ollama = await startFakeOllama();
    cloud = await startFakeOpenAI({ name: "cloud", apiKey: CLOUD_KEY, flavour: "openai" });
  });
  afterAll(async () => {
    await browser?.close();
    await ollama?.close();
    await cloud?.close();
  });
  beforeEach(async () => {
    ollama.reset();
    llama = await startFakeOpenAI({ name: "llama" });
    gw = await startGateway(config(ollama.url, llama.url, cloud.v1), { healthIntervalMs: 300, env: { ROUTES_OPENAI_KEY: CLOUD_KEY } });
  });
  afterEach(async () => {
    await gw?.close();
    await llama?.close();
  });

  async function openRoutes(colorScheme: "light" | "dark" = "light") {
    const opened = await browser.open(`${gw.url}/ui/#/routes`, { colorScheme });
    await opened.page.getByTestId(`route-node-${CHAIN[0]}`).waitFor();
    return opened;
  }

  const health = (page: Page, testid: string) => page.getByTestId(testid).getAttribute("data-health");

  async function chat(model: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], stream: false }),
    });
    return { status: res.status, text: await res.text() };
  }

  it("draws the example's fallback chain left to right, every deployment healthy, without console errors", async () => {
    const { page, errors, context } = await openRoutes();
    try {
      const boxes = [];
      for (const name of CHAIN) {
        const group = page.getByTestId(`route-node-${name}`);
        await expect.poll(() => group.getAttribute("data-health"), { timeout: 5_000 }).toBe("ok");
        boxes.push((await group.boundingBox())!);
      }
      // One row, left to right, in the router's order.
      expect(boxes[0]!.x + boxes[0]!.width).toBeLessThan(boxes[1]!.x);
      expect(boxes[1]!.x + boxes[1]!.width).toBeLessThan(boxes[2]!.x);
      expect(Math.abs(boxes[0]!.y - boxes[2]!.y)).toBeLessThan(2);
      // Exactly the chain's two arrows, in order.
      const arrows = await page.locator(".react-flow__edge[data-from]").evaluateAll((els) => els.map((e) => [e.getAttribute("data-from"), e.getAttribute("data-to")]));
      expect(arrows).toEqual([
        [CHAIN[0], CHAIN[1]],
        [CHAIN[1], CHAIN[2]],
      ]);
      expect(await page.getByRole("list", { name: "Fallback chains" }).textContent()).toContain(CHAIN.join(" → "));
      // Each deployment: provider and upstream model; the overflow one marked.
      const cloudNode = page.getByTestId("deployment-node-gpt-oss:20b-cloud#0");
      expect(await cloudNode.textContent()).toMatch(/openai.*gpt-oss-20b/);
      expect(await page.getByTestId("deployment-node-qwen2.5-coder#2").textContent()).toContain("overflow");
      for (const id of ["llama3.1:latest#0", "llama-cpp-default#0", "gpt-oss:20b-cloud#0", "qwen2.5-coder#0", "qwen2.5-coder#1", "qwen2.5-coder#2"]) {
        expect(await health(page, `deployment-node-${id}`)).toBe("ok");
      }
      // Nodes are reachable by keyboard and say what they are.
      await page.getByTestId(`route-node-${CHAIN[0]}`).focus();
      expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toContain(`Model group ${CHAIN[0]}: ok`);
      await page.keyboard.press("Tab");
      expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toMatch(/^(route|deployment)-node-/);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("draws each chain only as far as the gateway's router.max_fallback_depth goes", async () => {
    // The chain one step per group: llama3.1 -> llama-cpp-default -> gpt-oss, with depth 1.
    await gw.close();
    const nested = config(ollama.url, llama.url, cloud.v1)
      .replace('fallbacks: [llama-cpp-default, "gpt-oss:20b-cloud"]', "fallbacks: [llama-cpp-default]")
      .replace("deployments: [{provider: llama-cpp-native, model: default, tier: local}]", '$&\n    fallbacks: ["gpt-oss:20b-cloud"]');
    gw = await startGateway(`router: {max_fallback_depth: 1}\n${nested}`, { healthIntervalMs: 300, env: { ROUTES_OPENAI_KEY: CLOUD_KEY } });
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { router: { max_fallback_depth: number } };
    expect(providers.router.max_fallback_depth).toBe(1);
    const { page, errors, context } = await openRoutes();
    try {
      // The router plans llama3.1's requests to llama-cpp-default and no further; llama-cpp-default's own go on to the cloud.
      const chains = () => page.getByRole("list", { name: "Fallback chains" }).locator("li").allTextContents();
      await expect.poll(chains, { timeout: 5_000 }).toContain(`${CHAIN[0]} → ${CHAIN[1]}`);
      expect(await chains()).not.toContain(CHAIN.join(" → "));
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("counts requests that fell back on the arrows they took", async () => {
    const { page, errors, context } = await openRoutes();
    try {
      const first = page.getByTestId(`fallback-label-${CHAIN[0]}->${CHAIN[1]}`);
      const second = page.getByTestId(`fallback-label-${CHAIN[1]}->${CHAIN[2]}`);
      expect(await first.getAttribute("data-count")).toBe("0");
      ollama.setReply("chat", replies.error(500, "model runner has unexpectedly stopped"));
      // Ollama fails. qwen2.5-coder's requests go on to its llama-server deployment: the same
      // provider pair as llama3.1's fallbacks below, but inside its group, so on no arrow.
      for (let i = 0; i < 4; i++) expect((await chat("qwen2.5-coder")).status).toBe(200);
      // llama3.1's requests are answered by llama-cpp-default...
      const llamaHits = llama.hits("/v1/chat/completions");
      for (let i = 0; i < 2; i++) expect((await chat(CHAIN[0]!)).status).toBe(200);
      expect(llama.hits("/v1/chat/completions")).toBe(llamaHits + 2);
      // ...and when llama-server fails too, by the cloud at the end of the chain.
      llama.fault = { kind: "status", status: 500, message: "slot unavailable" };
      const cloudHits = cloud.hits("/v1/chat/completions");
      expect((await chat(CHAIN[0]!)).status).toBe(200);
      expect(cloud.hits("/v1/chat/completions")).toBe(cloudHits + 1);
      // The second arrow counts only the last request: once it shows, so do all before it.
      await expect.poll(async () => second.getAttribute("data-count"), { timeout: 10_000 }).toBe("1");
      expect(await first.getAttribute("data-count")).toBe("3");
      expect(await first.textContent()).toMatch(/[0-9]+ fell back/);
      ollama.setReply("chat", undefined);
      llama.fault = { kind: "none" };
      await browser.screenshot(page, "routes-light");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
    const dark = await openRoutes("dark");
    try {
      await expect.poll(() => dark.page.getByTestId(`fallback-label-${CHAIN[0]}->${CHAIN[1]}`).getAttribute("data-count"), { timeout: 10_000 }).not.toBe("0");
      await browser.screenshot(dark.page, "routes-dark");
      expect(dark.errors).toEqual([]);
    } finally {
      await dark.context.close();
    }
  });

  it("turns a killed upstream's deployment red within seconds and green when it returns", async () => {
    const { page, errors, context } = await openRoutes();
    const node = "deployment-node-llama-cpp-default#0";
    try {
      await expect.poll(() => health(page, node), { timeout: 5_000 }).toBe("ok");
      const port = Number(new URL(llama.url).port);
      await llama.close();
      await expect.poll(() => health(page, node), { timeout: 4_000 }).toBe("down");
      expect(await page.getByTestId(node).textContent()).toContain("down");
      // Its group cannot answer any more; the groups around it still can.
      expect(await health(page, `route-node-${CHAIN[1]}`)).toBe("down");
      expect(await health(page, `route-node-${CHAIN[2]}`)).toBe("ok");
      // The box has no room for the whole reason; selecting it by keyboard shows it in full.
      await page.getByTestId(node).focus();
      await page.keyboard.press("Enter");
      const details = page.getByTestId("route-details");
      await expect.poll(() => details.textContent(), { timeout: 2_000 }).toContain("llama-cpp-native · default in llama-cpp-default");
      expect(await details.textContent()).toMatch(/down: health check failed: .+/);
      await browser.screenshot(page, "routes-upstream-down");
      llama = await startFakeOpenAI({ name: "llama", port });
      await expect.poll(() => health(page, node), { timeout: 4_000 }).toBe("ok");
      expect(await health(page, `route-node-${CHAIN[1]}`)).toBe("ok");
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
