// The dashboard's Lab page in a real Chromium against a real gateway: two fake
// OpenAI-compatible upstreams in one model group (priority: A first, B when A is
// off), a supervised fake llama-server, a fake Ollama with loaded models and a fake
// nvidia-smi. What an operator does there has the effect they expect: a provider
// switched off gets no more requests, a breaker reset closes the breaker, a process
// stops and starts, its log follows live, an unload reaches Ollama; every action
// asks first and says how it went.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NVIDIA_SMI_ARGS } from "../../gateway/lab/gpus.ts";
import { launchBrowser, type TestBrowser } from "../fixtures/browser.ts";
import { replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const FAKE_LLAMA = new URL("../fixtures/fake-llama-server.ts", import.meta.url).pathname;
// Generous: the machine running these tests may be busy with others.
const WAIT = { timeout: 30_000 };

/** Two GPUs as nvidia-smi prints them for labgate's query (one busy and warm, one idle). */
const GPU_ROWS = [
  "0, GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60, NVIDIA GeForce RTX 3090, 00000000:01:00.0, 550.54.14, 24576, 19660, 87, 71, 312.4",
  "1, GPU-9c0e7f42-61ab-4d3e-b5c8-0a2d4f6e8b13, NVIDIA GeForce RTX 3060, 00000000:02:00.0, 550.54.14, 12288, 512, 0, 38, [N/A]",
];

/** Ollama's /api/ps entries: one model all in VRAM, one partly offloaded to the CPU, both kept for 5 more minutes. */
function loadedModels(): Record<string, unknown>[] {
  const expires = new Date(Date.now() + 5 * 60_000).toISOString();
  return [
    { name: "mistral:latest", model: "mistral:latest", size: 5137025024, size_vram: 5137025024, expires_at: expires, context_length: 4096 },
    { name: "qwen3:14b", model: "qwen3:14b", size: 10_485_760_000, size_vram: 7_340_032_000, expires_at: expires, context_length: 8192 },
  ];
}

interface Setup {
  /** A supervised fake llama-server on this port. */
  llamaPort?: number;
  ollama?: boolean;
  /** Probe these loopback ports for servers. */
  discoveryPorts?: number[];
  breaker?: Record<string, unknown>;
}

describe("dashboard: Lab page", { timeout: 120_000 }, () => {
  let browser: TestBrowser;
  let fakeA: FakeOpenAI;
  let fakeB: FakeOpenAI;
  let ollama: FakeOllama;
  let smiDir: string;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    browser = await launchBrowser();
    fakeA = await startFakeOpenAI({ name: "A" });
    fakeB = await startFakeOpenAI({ name: "B" });
    ollama = await startFakeOllama();
    // A fake nvidia-smi that answers labgate's exact query with GPU_ROWS.
    smiDir = mkdtempSync(join(tmpdir(), "labgate-lab-smi-"));
    writeFileSync(
      join(smiDir, "nvidia-smi"),
      `#!/bin/sh
if [ "$1" != "${NVIDIA_SMI_ARGS[0]}" ] || [ "$2" != "${NVIDIA_SMI_ARGS[1]}" ]; then echo "unexpected arguments: $*" >&2; exit 2; fi
printf '%s\\n' ${GPU_ROWS.map((r) => `'${r}'`).join(" ")}
`,
    );
    chmodSync(join(smiDir, "nvidia-smi"), 0o755);
  });
  afterAll(async () => {
    await browser?.close();
    await fakeA?.close();
    await fakeB?.close();
    await ollama?.close();
    if (smiDir) rmSync(smiDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function config(s: Setup): string {
    const providers: Record<string, unknown> = {
      "lab-a": { type: "openai-compatible", base_url: fakeA.v1 },
      "lab-b": { type: "openai-compatible", base_url: fakeB.v1 },
    };
    const models: Record<string, unknown> = {
      chat: { strategy: "priority", deployments: [{ provider: "lab-a", model: "tiny-a" }, { provider: "lab-b", model: "tiny-b" }] },
    };
    if (s.llamaPort !== undefined) {
      providers["lab-llama"] = {
        type: "llamacpp",
        base_url: `http://127.0.0.1:${s.llamaPort}`,
        launch: { command: process.execPath, args: [FAKE_LLAMA, "--port", String(s.llamaPort)], startup_timeout_s: 20, stop_timeout_s: 2, max_restarts: 2 },
      };
      models.llama = { deployments: [{ provider: "lab-llama", model: "fake-model.gguf" }] };
    }
    if (s.ollama) providers.ollama = { type: "ollama", base_url: ollama.url };
    return JSON.stringify({
      providers,
      models,
      router: { retries: 0, ...(s.breaker ? { circuit_breaker: s.breaker } : {}) },
      lab: { discovery: { enabled: (s.discoveryPorts ?? []).length > 0, interval_s: 1, hosts: ["127.0.0.1"], ports: s.discoveryPorts ?? [1] } },
    });
  }

  /** gpus: "fake" reads GPU_ROWS from the fake nvidia-smi, "no-smi" runs the monitor with an nvidia-smi that does not exist. */
  async function gateway(s: Setup, opts: { gpus?: "fake" | "no-smi" } = {}): Promise<TestGateway> {
    const gw = await startGateway(config(s), {
      serverDiscovery: (s.discoveryPorts ?? []).length > 0,
      gpu: opts.gpus ? { nvidiaSmi: join(smiDir, opts.gpus === "fake" ? "nvidia-smi" : "no-such-nvidia-smi"), intervalMs: 1000, inventoryIntervalMs: 0 } : false,
    });
    cleanups.push(() => gw.close());
    return gw;
  }

  async function openLab(gw: TestGateway, colorScheme: "light" | "dark" = "light") {
    const opened = await browser.open(`${gw.url}/ui/#/lab`, { colorScheme });
    cleanups.push(() => opened.context.close());
    await opened.page.locator('main[data-page="lab"]').waitFor();
    await opened.page.getByRole("switch", { name: "lab-a enabled" }).waitFor(WAIT);
    return opened;
  }

  /**
   * Answers the confirmation dialog with its button `name` (clicked, or by keyboard:
   * Enter on the button that has the focus), then waits for the result in the status line.
   */
  async function confirmAndWait(page: Page, name: string, how: "click" | "keyboard" = "click"): Promise<string> {
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    const button = dialog.getByRole("button", { name, exact: true });
    if (how === "click") await button.click();
    else {
      expect(await button.evaluate((b) => b === document.activeElement)).toBe(true);
      await page.keyboard.press("Enter");
    }
    await dialog.waitFor({ state: "hidden" });
    const status = page.getByTestId("lab-status");
    await expect.poll(() => status.locator("..").getAttribute("data-kind"), WAIT).not.toBe("pending");
    return (await status.textContent()) ?? "";
  }

  async function chat(gw: TestGateway, model: string): Promise<void> {
    const res = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  async function chats(gw: TestGateway, n: number): Promise<{ a: number; b: number }> {
    const a0 = fakeA.hits("/v1/chat/completions");
    const b0 = fakeB.hits("/v1/chat/completions");
    for (let i = 0; i < n; i++) await chat(gw, "chat");
    return { a: fakeA.hits("/v1/chat/completions") - a0, b: fakeB.hits("/v1/chat/completions") - b0 };
  }

  it("shows GPUs, servers found, processes, loaded models and providers, without console errors, in light and dark", async () => {
    const llamaPort = await freePort();
    ollama.reset();
    ollama.loaded = loadedModels();
    const gw = await gateway({ llamaPort, ollama: true, discoveryPorts: [ollama.port, llamaPort] }, { gpus: "fake" });
    for (const scheme of ["light", "dark"] as const) {
      const { page, errors } = await openLab(gw, scheme);
      // GPUs: both cards with their bars and figures.
      const gpu0 = page.getByTestId("gpu-0");
      await gpu0.waitFor(WAIT);
      expect(await gpu0.getByRole("meter", { name: "VRAM" }).getAttribute("aria-valuenow")).toBe("80");
      expect(await gpu0.getByRole("meter", { name: "Utilisation" }).getAttribute("aria-valuenow")).toBe("87");
      expect(await gpu0.textContent()).toContain("71 °C");
      expect(await page.getByTestId("gpu-1").textContent()).toContain("NVIDIA GeForce RTX 3060");
      // The supervised server runs; Ollama is found by discovery and is the configured provider's.
      await expect.poll(() => page.getByTestId("process-state-lab-llama").getAttribute("data-state"), WAIT).toBe("running");
      const found = page.getByTestId(`server-127.0.0.1:${ollama.port}`);
      await found.waitFor(WAIT);
      expect(await found.textContent()).toMatch(/Ollama.*answering.*ollama \(from the config\)/);
      await page.getByTestId("model-ollama-qwen3:14b").waitFor(WAIT);
      expect(await page.getByTestId("model-ollama-qwen3:14b").textContent()).toContain("9.8 GiB");
      expect(await page.getByRole("switch", { name: "lab-b enabled" }).getAttribute("aria-checked")).toBe("true");
      await page.getByTestId(`server-127.0.0.1:${llamaPort}`).waitFor(WAIT);
      await browser.screenshot(page, `lab-${scheme}`);
      expect(errors).toEqual([]);
    }
    // A laptop-narrow window: wide tables scroll inside their panel, the page does not.
    const { page } = await browser.open(`${gw.url}/ui/#/lab`, { width: 820 });
    await page.getByTestId("process-state-lab-llama").waitFor(WAIT);
    await page.getByTestId("gpu-1").waitFor(WAIT);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(820);
    await browser.screenshot(page, "lab-narrow-light");
    await page.context().close();
  });

  it("says why no GPU is listed and what to do when nothing is supervised or loaded", async () => {
    const gw = await gateway({}, { gpus: "no-smi" });
    const { page, errors } = await openLab(gw);
    const noGpu = page.getByTestId("gpus-empty");
    await expect.poll(() => noGpu.textContent(), WAIT).toContain("No GPUs found: nvidia-smi is not on the gateway's PATH, and the hardware inventory lists no GPU.");
    await page.getByText("labgate supervises no processes.").waitFor();
    await page.getByText("No inference servers found.").waitFor();
    await page.getByText("No models are loaded right now.").waitFor();
    expect(errors).toEqual([]);
  });

  it("a provider switched off in the page gets no more requests, and takes them again when switched on", async () => {
    const gw = await gateway({});
    const { page, errors } = await openLab(gw);
    expect(await chats(gw, 3)).toEqual({ a: 3, b: 0 }); // priority: A while it is on

    // Asked first; Escape says no and nothing changes.
    const toggle = page.getByRole("switch", { name: "lab-a enabled" });
    await toggle.click();
    const dialog = page.getByRole("dialog", { name: "Disable lab-a?" });
    await dialog.waitFor();
    expect(await page.evaluate(() => document.activeElement?.closest("dialog") !== null)).toBe(true);
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toBe("lab-a enabled");
    expect(await toggle.getAttribute("aria-checked")).toBe("true");
    expect(await chats(gw, 1)).toEqual({ a: 1, b: 0 });

    await toggle.click();
    await dialog.waitFor();
    await browser.screenshot(page, "lab-confirm-light");
    expect(await confirmAndWait(page, "Disable")).toContain("lab-a is disabled");
    await expect.poll(() => toggle.getAttribute("aria-checked")).toBe("false");
    await browser.screenshot(page, "lab-result-light");
    expect(await chats(gw, 4)).toEqual({ a: 0, b: 4 });

    // By keyboard alone: Space on the switch, Enter in the dialog.
    await toggle.focus();
    await page.keyboard.press("Space");
    expect(await confirmAndWait(page, "Enable", "keyboard")).toContain("lab-a is enabled");
    await expect.poll(() => toggle.getAttribute("aria-checked")).toBe("true");
    expect(await chats(gw, 2)).toEqual({ a: 2, b: 0 });
    expect(errors).toEqual([]);
  });

  it("a breaker reset in the page closes an open breaker and says how many it reset", async () => {
    const gw = await gateway({ breaker: { consecutive_failures: 2, cooldown_s: 600 } });
    const { page, errors } = await openLab(gw);
    fakeA.faultNext({ kind: "status", status: 500, message: "boom" }, 2);
    expect(await chats(gw, 2)).toEqual({ a: 2, b: 2 }); // A failed, B answered
    const badge = page.getByTestId("breaker-chat#0");
    await expect.poll(() => badge.textContent(), WAIT).toBe("breaker open");
    expect(await chats(gw, 1)).toEqual({ a: 0, b: 1 });

    await page.getByTestId("deployment-chat#0").getByRole("button", { name: /Reset the breaker/ }).click();
    await page.getByRole("dialog", { name: "Reset the breaker of chat → tiny-a?" }).waitFor();
    expect(await confirmAndWait(page, "Reset")).toContain("Reset 1 circuit breaker.");
    await expect.poll(() => badge.textContent(), WAIT).toBe("breaker closed");
    expect(await chats(gw, 1)).toEqual({ a: 1, b: 0 });

    await page.getByRole("button", { name: "Reset all breakers" }).click();
    expect(await confirmAndWait(page, "Reset")).toContain("Reset 2 circuit breakers.");
    expect(errors).toEqual([]);
  });

  it("stops, starts and restarts a supervised process from the page; its log follows live until closed", async () => {
    const llamaPort = await freePort();
    const gw = await gateway({ llamaPort });
    const { page, errors } = await openLab(gw);
    const state = page.getByTestId("process-state-lab-llama");
    await expect.poll(() => state.getAttribute("data-state"), WAIT).toBe("running");

    // The log: what it printed at start, then each new line as it comes.
    await page.getByRole("button", { name: "Log of lab-llama" }).click();
    const log = page.getByTestId("process-log-lab-llama");
    await log.getByText(`main: server is listening on http://127.0.0.1:${llamaPort}`).waitFor(WAIT);
    await expect.poll(() => log.getAttribute("data-following")).toBe("yes");
    await chat(gw, "llama");
    await log.getByText("request: POST /v1/chat/completions").waitFor(WAIT);
    await browser.screenshot(page, "lab-log-light");

    await page.getByRole("button", { name: "Stop lab-llama", exact: true }).click();
    expect(await confirmAndWait(page, "Stop")).toBe("✓lab-llama is stopped.");
    await expect.poll(() => state.getAttribute("data-state"), WAIT).toBe("stopped");
    await log.getByText("main: SIGTERM, shutting down").waitFor(WAIT);
    const stop = page.getByRole("button", { name: "Stop lab-llama", exact: true });
    expect(await stop.getAttribute("aria-disabled")).toBe("true");
    // The focus stays on the button that was used, for a keyboard user to carry on from.
    expect(await stop.evaluate((b) => b === document.activeElement)).toBe(true);

    await page.getByRole("button", { name: "Start lab-llama", exact: true }).click();
    const started = await confirmAndWait(page, "Start");
    expect(started).toMatch(/^✓lab-llama is running \(pid \d+\)\.$/);
    await expect.poll(() => state.getAttribute("data-state"), WAIT).toBe("running");
    await chat(gw, "llama");

    // Restart: another process, and the restart counted.
    await page.getByRole("button", { name: "Restart lab-llama", exact: true }).click();
    const restarted = await confirmAndWait(page, "Restart");
    expect(restarted).toMatch(/^✓lab-llama is running \(pid \d+\)\.$/);
    expect(restarted).not.toBe(started);
    const row = page.getByTestId("process-lab-llama");
    await expect.poll(async () => Number(await row.locator("td").nth(2).textContent()), WAIT).toBe(2);
    await chat(gw, "llama");

    // Closing the log ends its stream.
    const ended = page.waitForEvent("requestfailed", { predicate: (r) => r.url().includes("/admin/lab/processes/lab-llama/logs"), ...WAIT });
    await log.getByRole("button", { name: "Close the log of lab-llama" }).click();
    await ended;
    await log.waitFor({ state: "detached" });
    expect(errors).toEqual([]);
  });

  it("a process that cannot start says why, in its row and in the status line", async () => {
    // Another program holds the port the supervised server should listen on.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => squatter.close(r)));
    const port = (squatter.address() as AddressInfo).port;
    const gw = await gateway({ llamaPort: port });
    const { page, errors } = await openLab(gw);
    const state = page.getByTestId("process-state-lab-llama");
    await expect.poll(() => state.getAttribute("data-state"), WAIT).toBe("failed");
    expect(await page.getByTestId("process-lab-llama").textContent()).toContain(`port ${port} on 127.0.0.1 is already in use by another program`);

    await page.getByRole("button", { name: "Start lab-llama", exact: true }).click();
    const text = await confirmAndWait(page, "Start");
    expect(text).toMatch(/^✕Could not start lab-llama: lab-llama did not start: /);
    expect(text).toContain(`port ${port} on 127.0.0.1 is already in use by another program`);
    expect(await state.getAttribute("data-state")).toBe("failed");
    await browser.screenshot(page, "lab-error-light");
    // The refused start's 409, which Chromium logs, is the only error.
    expect(errors).toEqual(["console: Failed to load resource: the server responded with a status of 409 (Conflict)"]);
  });

  it("unloads a model from Ollama from the page, and shows the reason when Ollama refuses", async () => {
    ollama.reset();
    ollama.loaded = loadedModels();
    const gw = await gateway({ ollama: true });
    const { page, errors } = await openLab(gw);
    await page.getByTestId("model-ollama-mistral:latest").waitFor(WAIT);

    await page.getByRole("button", { name: "Unload mistral:latest from ollama" }).click();
    expect(await confirmAndWait(page, "Unload")).toContain("mistral:latest unloaded from ollama.");
    expect(ollama.bodies("generate")).toContainEqual(expect.objectContaining({ model: "mistral:latest", keep_alive: 0 }));
    await page.getByTestId("model-ollama-mistral:latest").waitFor({ state: "detached", ...WAIT });

    // Ollama refuses: its reason is shown as the gateway gives it, and the model stays listed.
    ollama.setReply("generate", replies.error(500, "llama runner is busy"));
    await page.getByRole("button", { name: "Unload qwen3:14b from ollama" }).click();
    const text = await confirmAndWait(page, "Unload");
    expect(text).toBe("✕Could not unload qwen3:14b from ollama: Unloading `qwen3:14b` failed on ollama: Ollama answered 500: llama runner is busy");
    expect(await page.getByTestId("model-ollama-qwen3:14b").isVisible()).toBe(true);
    expect(await page.getByTestId("lab-status").locator("..").getAttribute("data-kind")).toBe("error");
    // The refused call's 502, which Chromium logs, is the only error.
    expect(errors).toEqual(["console: Failed to load resource: the server responded with a status of 502 (Bad Gateway)"]);
  });
});
