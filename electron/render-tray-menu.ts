// Draws the README's picture of the tray menu: the tray model (tray-model.ts) of a realistic
// lab, rendered as HTML in the style of a desktop menu and photographed with headless
// Chromium. No real tray can be shown on a machine without Electron's binary; this is the
// same model main.ts hands to Electron's Menu.buildFromTemplate.
//   node electron/render-tray-menu.ts [out.png]
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { applyEvent, applyLoadedModels, applySnapshot, emptyLabState, type LabState } from "./lab-state.ts";
import { trayModel, type TrayMenuItem, type TrayModel } from "./tray-model.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = process.argv[2] ?? join(root, "resources", "screenshots", "tray-menu.png");

const deployment = (provider: string, model: string, overflow = false, breaker = "closed") => ({ id: `${provider}/${model}`, model_group: "chat", model, overflow, breaker_state: breaker });
const provider = (name: string, type: string, deployments: unknown[]) => ({
  name,
  type,
  source: "config",
  enabled: true,
  available: true,
  unavailable_reason: null,
  health: { healthy: true, detail: "ok" },
  deployments,
});

/** An Ollama, a supervised llama-server, the embedded engine, and a cloud overflow that is failing. */
export function exampleLab(): LabState {
  let s = applySnapshot(emptyLabState(), {
    data: [
      provider("ollama", "ollama", [deployment("ollama", "qwen2.5:7b")]),
      provider("llama-server", "llamacpp", [deployment("llama-server", "llama-3.1-8b")]),
      provider("embedded", "embedded", [deployment("embedded", "stories260K")]),
      provider("openai", "openai", [deployment("openai", "gpt-4o-mini", true)]),
    ],
    groups: [{ name: "chat", panic: false }],
    processes: [{ name: "llama-server", provider: "llama-server", state: "running", pid: 31337, recentCrashes: 0, failure: null }],
    budgets: [{ kind: "tier", name: "cloud", measure: "daily_usd", limit: 5, value: 1.84, exceeded: false }],
  });
  s = applyLoadedModels(s, {
    data: [
      { provider: "ollama", model: "qwen2.5:7b", can_unload: true },
      { provider: "ollama", model: "nomic-embed-text", can_unload: true },
      { provider: "llama-server", model: "llama-3.1-8b-q4_k_m.gguf", can_unload: false },
    ],
  });
  s = applyEvent(s, "provider", { change: "health", provider: "openai", healthy: false, detail: "HTTP 503: upstream overloaded" });
  s = applyEvent(s, "breaker", { provider: "openai", deployment: "openai/gpt-4o-mini", from: "closed", to: "open" });
  return applyEvent(s, "summary", {
    requests_per_s: 5.5,
    ttfb_p95_ms: 210,
    providers: { ollama: { requests_per_s: 4.2, ttfb_p95_ms: 182 }, "llama-server": { requests_per_s: 1.3, ttfb_p95_ms: 95 }, openai: { requests_per_s: 0, ttfb_p95_ms: 640 } },
  });
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** `open`: the submenus shown, side by side in this order (a real menu opens one at a time). */
function menuHtml(items: TrayMenuItem[], open: string[], cls = "menu", style = ""): string {
  const rows = items.map((i) => {
    if (i.type === "separator") return `<div class="sep"></div>`;
    const check = i.type === "checkbox" ? (i.checked ? "✔" : "") : "";
    const arrow = i.type === "submenu" ? "▸" : "";
    const nth = open.indexOf(i.id);
    const sub = i.type === "submenu" && nth >= 0 ? menuHtml(i.submenu ?? [], open, "menu sub", `left: calc(100% + ${2 + nth * 330}px)`) : "";
    return `<div class="row${i.enabled ? "" : " off"}${sub ? " hot" : ""}"><span class="check">${check}</span><span class="label">${esc(i.label)}</span><span class="arrow">${arrow}</span>${sub}</div>`;
  });
  return `<div class="${cls}" style="${style}">${rows.join("")}</div>`;
}

export function pageHtml(model: TrayModel, open: string[], trayIconPng: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><style>
  body { margin: 0; padding: 0; background: #e9edf2; font: 13px/1.35 "DejaVu Sans", sans-serif; color: #1f2328; }
  .bar { height: 30px; background: #24292f; display: flex; justify-content: flex-end; align-items: center; padding: 0 14px; gap: 14px; color: #d0d7de; font-size: 12px; }
  .bar img { width: 16px; height: 16px; }
  .tip { position: absolute; top: 36px; right: 10px; background: #fffbe6; border: 1px solid #d4a72c; border-radius: 4px; padding: 3px 8px; font-size: 12px; }
  .stage { position: relative; padding: 70px 0 24px 24px; height: 370px; }
  .menu { position: relative; display: inline-block; min-width: 280px; background: #fff; border: 1px solid #c8ccd1; border-radius: 6px; box-shadow: 0 6px 18px rgba(0,0,0,.18); padding: 4px 0; }
  .menu.sub { position: absolute; top: -5px; min-width: 310px; z-index: 2; }
  .row { position: relative; display: flex; align-items: center; padding: 4px 12px 4px 6px; white-space: nowrap; }
  .row.hot { background: #dbe9ff; }
  .row.off { color: #6e7781; }
  .check { width: 20px; text-align: center; color: #0969da; }
  .label { flex: 1; padding-right: 24px; }
  .arrow { color: #57606a; }
  .sep { height: 1px; background: #d8dee4; margin: 4px 0; }
  </style></head><body>
  <div class="bar"><span>EN</span><span>Wi-Fi</span><img src="data:image/png;base64,${trayIconPng}" alt=""><span>13:05</span></div>
  <div class="tip">${esc(model.tooltip)}</div>
  <div class="stage">${menuHtml(model.menu, open)}</div>
  </body></html>`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const model = trayModel(exampleLab(), { apiBase: "http://127.0.0.1:4000/v1", cloudPaused: false, startAtLogin: true, startAtLoginSupported: true });
  const icon = readFileSync(join(root, "resources", "icons", "tray", `${model.icon}@2x.png`)).toString("base64");
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 470 }, deviceScaleFactor: 1 });
  await page.setContent(pageHtml(model, ["provider:ollama", "provider:llama-server"], icon));
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  await browser.close();
  console.log(`wrote ${out}`);
}
