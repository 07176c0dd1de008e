// The desktop app's state, in one object built by main() and handed to the wiring modules
// (main.ts: tray, gateway, quit; window.ts; ipc.ts), instead of module-level variables.
import { app, type BrowserWindow, type Tray } from "electron";
import { join } from "node:path";
import type { AdminClient, LabFollower } from "./admin-client.ts";
import type { Coalescer } from "./coalesce.ts";
import type { GatewaySupervisor } from "./gateway-process.ts";
import type { NoticeLimiter } from "./notifications.ts";
import type { DesktopSettings } from "./settings.ts";
import type { TrayModel } from "./tray-model.ts";

export interface DesktopContext {
  /** The folder of the built main.js (dist/electron): preload.cjs is beside it. */
  readonly here: string;
  settingsFile: string;
  settings: DesktopSettings;
  /** The gateway's origin, once the port is decided ("" before). */
  origin: string;
  /** Whether the app started the gateway (false: attached to a running one). */
  ownsGateway: boolean;
  client: AdminClient | undefined;
  follower: LabFollower | undefined;
  supervisor: GatewaySupervisor | undefined;
  tray: Tray | undefined;
  window: BrowserWindow | undefined;
  lastModel: TrayModel | undefined;
  quitting: boolean;
  quitDone: boolean;
  /** Why the app's own gateway is not running (null when it is). */
  gatewayNote: string | null;
  readonly limiter: NoticeLimiter;
  readonly coalescer: Coalescer;
}

/** The app's root: two folders up from dist/electron in development, the asar packaged. */
export function appRoot(ctx: DesktopContext): string {
  return app.isPackaged ? app.getAppPath() : join(ctx.here, "..", "..");
}

export function iconPath(ctx: DesktopContext, ...parts: string[]): string {
  // Packaged: resources/icons is an extra resource beside app.asar; in development, in the repository.
  return app.isPackaged ? join(process.resourcesPath, "icons", ...parts) : join(appRoot(ctx), "resources", "icons", ...parts);
}

export function apiBase(ctx: DesktopContext): string {
  return `${ctx.origin}/v1`;
}
