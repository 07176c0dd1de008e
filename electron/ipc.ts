// The three functions a page gets as window.labgateDesktop (preload-api.ts), answered only
// for pages of the gateway's own origin (security.ts ipcSenderAllowed).
import { app, clipboard, ipcMain, shell } from "electron";
import { apiBase, type DesktopContext } from "./desktop-context.ts";
import { DESKTOP_CHANNELS, type DesktopInfo } from "./preload-api.ts";
import { ipcSenderAllowed } from "./security.ts";

export function installIpc(ctx: DesktopContext): void {
  const allowed = (e: Electron.IpcMainInvokeEvent): boolean => ipcSenderAllowed(e.senderFrame?.url, ctx.origin);
  ipcMain.handle(DESKTOP_CHANNELS.info, (e): DesktopInfo => {
    if (!allowed(e)) throw new Error("not allowed");
    return { version: app.getVersion(), platform: process.platform, apiBase: apiBase(ctx), ownsGateway: ctx.ownsGateway };
  });
  ipcMain.handle(DESKTOP_CHANNELS.copyApiBaseUrl, (e) => {
    if (!allowed(e)) throw new Error("not allowed");
    clipboard.writeText(apiBase(ctx));
    return apiBase(ctx);
  });
  ipcMain.handle(DESKTOP_CHANNELS.openInBrowser, async (e) => {
    if (!allowed(e)) throw new Error("not allowed");
    await shell.openExternal(`${ctx.origin}/ui/`);
  });
}
