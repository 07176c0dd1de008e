// Renders labgate's icons from their SVG sources with headless Chromium (playwright-core,
// /usr/bin/chromium): the app icon at every size the platforms ask for, and the tray
// icons per state at 16 px, @1.5x and @2x, plus macOS template variants.
//   node resources/icons/render.ts
// electron-builder makes the .ico (Windows) and .icns (macOS) from icon.png (1024 px);
// Linux takes png/<size>x<size>.png.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { traySvg, trayTemplateSvg, type TrayState } from "./tray.svg.ts";

const here = dirname(fileURLToPath(import.meta.url));
export const APP_ICON_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024];
const STATES: TrayState[] = ["healthy", "degraded", "down"];
const SCALES: [string, number][] = [["", 16], ["@1.5x", 24], ["@2x", 32]];

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
const page = await browser.newPage({ deviceScaleFactor: 1 });

async function render(svg: string, size: number, file: string): Promise<void> {
  const src = `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`;
  await page.setViewportSize({ width: size, height: size });
  await page.setContent(`<html><body style="margin:0;background:transparent"><img src="${src}" width="${size}" height="${size}" style="display:block"></body></html>`);
  await page.waitForFunction(() => document.images[0]?.complete);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, await page.screenshot({ omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } }));
}

const appSvg = readFileSync(join(here, "icon.svg"), "utf8");
for (const size of APP_ICON_SIZES) await render(appSvg, size, join(here, "png", `${size}x${size}.png`));
await render(appSvg, 1024, join(here, "icon.png"));
for (const state of STATES) {
  for (const [suffix, size] of SCALES) {
    await render(traySvg(state), size, join(here, "tray", `${state}${suffix}.png`));
    await render(trayTemplateSvg(state), size, join(here, "tray", `${state}Template${suffix}.png`));
  }
}
await browser.close();
console.log(`icons written under ${here}`);
