// The dashboard's Batches page in a real Chromium against a real gateway and its batch
// queue: batches submitted through the API show with their status and progress, a running
// one is cancelled from the page, no console errors; screenshots in light and dark.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const config = (upstream: string) => `
providers:
  lab: { type: openai-compatible, base_url: "${upstream}" }
models:
  chat:
    deployments: [{ provider: lab, model: tiny }]
batch_profiles:
  nightly: { concurrency: 1, completion_window: 2h }
`;

const line = (id: string, url = "/v1/chat/completions") =>
  JSON.stringify({ custom_id: id, method: "POST", url, body: url === "/v1/embeddings" ? { model: "chat", input: id } : { model: "chat", messages: [{ role: "user", content: id }] } });

interface Batch {
  id: string;
  status: string;
  request_counts: { total: number; completed: number; failed: number };
}

async function submit(gw: TestGateway, lines: string[], metadata?: Record<string, string>): Promise<string> {
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([lines.join("\n") + "\n"]), "requests.jsonl");
  const file = (await (await fetch(`${gw.v1}/files`, { method: "POST", body: form })).json()) as { id: string };
  const res = await fetch(`${gw.v1}/batches`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as Batch).id;
}

const batch = async (gw: TestGateway, id: string): Promise<Batch> => (await (await fetch(`${gw.v1}/batches/${id}`)).json()) as Batch;

describe("dashboard batches page", () => {
  let browser: TestBrowser;
  let upstream: FakeOpenAI;
  let gw: TestGateway;
  beforeAll(async () => {
    browser = await launchBrowser();
    upstream = await startFakeOpenAI({ name: "lab" });
    gw = await startGateway(config(upstream.v1));
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await upstream?.close();
  });

  it("says what to do while the queue is empty", async () => {
    const { page, errors, context } = await browser.open(`${gw.url}/ui/#/batches`);
    await page.getByText("No batches yet.").waitFor();
    await page.getByText("labgate batch submit requests.jsonl").waitFor();
    expect(errors).toEqual([]);
    await context.close();
  });

  it("shows batches submitted through the API with status and progress, follows a running one, and cancels it from the page", async () => {
    // One that completed, one that failed validation, and a slow one still running.
    const done = await submit(gw, ["a", "b", "c"].map((id) => line(id)));
    await expect.poll(async () => (await batch(gw, done)).status, { timeout: 10_000 }).toBe("completed");
    const broken = await submit(gw, [line("x"), line("y", "/v1/embeddings")]);
    await expect.poll(async () => (await batch(gw, broken)).status, { timeout: 10_000 }).toBe("failed");
    // ~60 s of work one at a time: still running whatever the machine's load, until cancelled.
    upstream.options.firstByteDelayMs = 300;
    const slow = await submit(
      gw,
      Array.from({ length: 200 }, (_, i) => line(`slow-${i + 1}`)),
      { profile: "nightly" },
    );

    const { page, errors, context } = await browser.open(`${gw.url}/ui/`);
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Batches" }).click();
    await page.locator('main[data-page="batches"]').waitFor();

    const doneRow = page.getByTestId(`batch-row-${done}`);
    await expect.poll(() => doneRow.getAttribute("data-status"), { timeout: 10_000 }).toBe("completed");
    expect(await doneRow.getByRole("progressbar").getAttribute("aria-valuenow")).toBe("3");
    expect(await doneRow.innerText()).toContain("3 / 3 · 100%");
    const brokenRow = page.getByTestId(`batch-row-${broken}`);
    expect(await brokenRow.getAttribute("data-status")).toBe("failed");
    expect(await brokenRow.innerText()).toMatch(/Line 2: url \/v1\/embeddings is not the batch's endpoint/);
    expect(await brokenRow.innerText()).toContain("no request ran");

    // The running batch's progress moves on the page without a reload.
    const slowRow = page.getByTestId(`batch-row-${slow}`);
    const bar = slowRow.getByRole("progressbar", { name: `Progress of ${slow}` });
    await expect.poll(async () => Number(await bar.getAttribute("aria-valuenow")), { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    const first = Number(await bar.getAttribute("aria-valuenow"));
    await expect.poll(async () => Number(await bar.getAttribute("aria-valuenow")), { timeout: 15_000 }).toBeGreaterThan(first);
    expect(await slowRow.getAttribute("data-status")).toBe("in_progress");
    expect(await slowRow.innerText()).toContain("nightly");
    expect(await slowRow.innerText()).toMatch(/in 1 h 59 min|in 2 h 0 min/);
    expect(await page.getByTestId("batches-summary").innerText()).toBe("1 running · 0 validating · 2 ended");

    await browser.screenshot(page, "batches-light");
    const dark = await browser.open(`${gw.url}/ui/#/batches`, { colorScheme: "dark" });
    await dark.page.getByTestId(`batch-row-${slow}`).waitFor();
    await browser.screenshot(dark.page, "batches-dark");
    expect(dark.errors).toEqual([]);
    await dark.context.close();

    // Cancel from the page: asked first; Escape says no.
    await slowRow.getByRole("button", { name: `Cancel ${slow}` }).click();
    const dialog = page.getByRole("dialog", { name: "Cancel this batch?" });
    await dialog.waitFor();
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    expect((await batch(gw, slow)).status).toBe("in_progress");
    await slowRow.getByRole("button", { name: `Cancel ${slow}` }).click();
    await dialog.getByRole("button", { name: "Cancel batch" }).click();
    await page.getByRole("status").getByText(new RegExp(`${slow} is (cancelling|cancelled)`)).waitFor();
    await expect.poll(() => slowRow.getAttribute("data-status"), { timeout: 15_000 }).toBe("cancelled");
    const ended = await batch(gw, slow);
    expect(ended.status).toBe("cancelled");
    expect(ended.request_counts.total).toBe(200);
    expect(ended.request_counts.completed).toBeLessThan(200);
    expect(await slowRow.getByRole("button", { name: `Cancel ${slow}` }).count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
    upstream.options.firstByteDelayMs = 0;
  }, 120_000);
});
