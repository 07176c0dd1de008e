// The app's own settings file (electron/settings.ts): the window comes back at its size
// and place, but never off-screen (a monitor unplugged since) nor too small; a damaged
// file does not stop the app; the paused providers survive a restart.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_WINDOW, loadSettings, restoreBounds, saveSettings } from "../../electron/settings.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const file = (): string => {
  const d = mkdtempSync(join(tmpdir(), "labgate-settings-"));
  dirs.push(d);
  return join(d, "nested", "desktop.json");
};

const LAPTOP = { x: 0, y: 0, width: 1440, height: 900 };
const MONITOR = { x: 1440, y: 0, width: 2560, height: 1440 };

describe("desktop settings", () => {
  it("keep the window's bounds and the paused providers across a restart", () => {
    const f = file();
    saveSettings(f, { window: { x: 1500, y: 40, width: 1280, height: 860, maximized: false }, cloudPaused: ["openai", "azure"] });
    expect(loadSettings(f)).toEqual({ window: { x: 1500, y: 40, width: 1280, height: 860, maximized: false }, cloudPaused: ["openai", "azure"] });
  });

  it("a missing or damaged file gives the defaults instead of an error", () => {
    const f = file();
    expect(loadSettings(f)).toEqual({ cloudPaused: [] });
    saveSettings(f, { cloudPaused: [] });
    writeFileSync(f, '{"window": {"width": "wide"}, "cloudPaused": [1, "openai"]');
    expect(loadSettings(f)).toEqual({ cloudPaused: [] });
    writeFileSync(f, '{"window": {"width": "wide"}, "cloudPaused": [1, "openai"]}');
    expect(loadSettings(f)).toEqual({ window: undefined, cloudPaused: ["openai"] });
  });

  it("the window opens where it was when that place is on a display", () => {
    expect(restoreBounds({ x: 1500, y: 40, width: 1280, height: 860 }, [LAPTOP, MONITOR])).toEqual({ x: 1500, y: 40, width: 1280, height: 860, maximized: false });
  });

  it("a window last seen on a monitor that is gone opens at its size, placed by the OS", () => {
    expect(restoreBounds({ x: 1500, y: 40, width: 1280, height: 860 }, [LAPTOP])).toEqual({ width: 1280, height: 860, maximized: false });
  });

  it("a window too small to use comes back at a usable size; no saved bounds: the default", () => {
    expect(restoreBounds({ x: 10, y: 10, width: 50, height: 20 }, [LAPTOP])).toMatchObject({ width: 480, height: 360 });
    expect(restoreBounds(undefined, [LAPTOP])).toEqual(DEFAULT_WINDOW);
  });
});
