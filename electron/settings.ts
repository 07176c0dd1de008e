// The app's own settings (not the gateway's config): the window's size and place, the
// providers "Pause cloud overflow" turned off, the port it last ran the gateway on.
// One small JSON file in Electron's userData folder, written atomically.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface WindowBounds {
  x?: number;
  y?: number;
  width: number;
  height: number;
  maximized?: boolean;
}

export interface DesktopSettings {
  window?: WindowBounds;
  /** Providers the app disabled to pause cloud overflow (empty: not paused). */
  cloudPaused: string[];
}

export const DEFAULT_WINDOW = { width: 1200, height: 800 } as const;
const MIN = { width: 480, height: 360 } as const;

export function loadSettings(file: string): DesktopSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return { cloudPaused: [] }; // none yet, or unreadable: start afresh rather than not start
  }
  const r = (raw && typeof raw === "object" ? raw : {}) as Record<string, unknown>;
  const w = r.window as Record<string, unknown> | undefined;
  const n = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? Math.round(v) : undefined);
  const window: WindowBounds | undefined =
    w && n(w.width) !== undefined && n(w.height) !== undefined
      ? { x: n(w.x), y: n(w.y), width: n(w.width)!, height: n(w.height)!, maximized: w.maximized === true }
      : undefined;
  return {
    window,
    cloudPaused: Array.isArray(r.cloudPaused) ? r.cloudPaused.filter((x): x is string => typeof x === "string") : [],
  };
}

export function saveSettings(file: string, s: DesktopSettings): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + "\n");
  renameSync(tmp, file);
}

export interface Area {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The bounds to open the window with: the saved ones, clamped to a sensible size, and
 * placed only if they overlap a display that is there now (a monitor unplugged since
 * would open it off-screen); else centred by the OS.
 */
export function restoreBounds(saved: WindowBounds | undefined, displays: Area[]): WindowBounds {
  if (!saved) return { ...DEFAULT_WINDOW };
  const width = Math.max(MIN.width, saved.width);
  const height = Math.max(MIN.height, saved.height);
  const out: WindowBounds = { width, height, maximized: saved.maximized === true };
  if (saved.x === undefined || saved.y === undefined) return out;
  const visible = displays.some((d) => saved.x! < d.x + d.width - 40 && saved.x! + width > d.x + 40 && saved.y! < d.y + d.height - 40 && saved.y! + height > d.y);
  return visible ? { ...out, x: saved.x, y: saved.y } : out;
}
