// The dashboard window: the gateway's /ui in a sandboxed BrowserWindow whose bounds are
// remembered; closing it hides it to the tray; it navigates only within the gateway's
// origin (other links open in the browser). And the session's rules for it (permissions,
// the CSP added to the gateway's responses). The decisions are security.ts's and settings.ts's.
import { BrowserWindow, screen, session, shell } from "electron";
import { join } from "node:path";
import { iconPath, type DesktopContext } from "./desktop-context.ts";
import { navigationAllowed, newWindowDecision, permissionAllowed, SECURE_WEB_PREFERENCES, withCsp } from "./security.ts";
import { restoreBounds, saveSettings } from "./settings.ts";

export function showWindow(ctx: DesktopContext): void {
  if (!ctx.origin) return; // still deciding the port
  const existing = ctx.window;
  if (existing && !existing.isDestroyed()) {
    if (existing.isMinimized()) existing.restore();
    existing.show();
    existing.focus();
    return;
  }
  const bounds = restoreBounds(ctx.settings.window, screen.getAllDisplays().map((d) => d.workArea));
  const win = new BrowserWindow({
    ...(bounds.x !== undefined && bounds.y !== undefined ? { x: bounds.x, y: bounds.y } : {}),
    width: bounds.width,
    height: bounds.height,
    show: false,
    title: "labgate",
    icon: iconPath(ctx, "png", "512x512.png"),
    webPreferences: { ...SECURE_WEB_PREFERENCES, preload: join(ctx.here, "preload.cjs") },
  });
  ctx.window = win;
  if (bounds.maximized) win.maximize();
  win.once("ready-to-show", () => win.show());
  const remember = (): void => {
    if (win.isDestroyed()) return;
    const b = win.getNormalBounds();
    ctx.settings = { ...ctx.settings, window: { ...b, maximized: win.isMaximized() } };
  };
  win.on("resize", remember);
  win.on("move", remember);
  // Closing the window hides it to the tray; Quit is in the tray's menu.
  win.on("close", (e) => {
    remember();
    saveSettings(ctx.settingsFile, ctx.settings);
    if (!ctx.quitting) {
      e.preventDefault();
      win.hide();
    }
  });
  const origin = ctx.origin;
  const guard = (e: { preventDefault(): void }, url: string): void => {
    if (navigationAllowed(url, origin)) return;
    e.preventDefault();
    if (newWindowDecision(url, origin).openExternally) void shell.openExternal(url);
  };
  win.webContents.on("will-navigate", (e, url) => guard(e, url));
  win.webContents.on("will-redirect", (e, url) => guard(e, url));
  win.webContents.on("will-attach-webview", (e) => e.preventDefault());
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (newWindowDecision(url, origin).openExternally) void shell.openExternal(url);
    return { action: "deny" };
  });
  void win.loadURL(`${origin}/ui/`);
}

/** Permissions (none but clipboard writes) and the CSP on every response of the gateway's origin. */
export function installSessionSecurity(ctx: DesktopContext): void {
  const s = session.defaultSession;
  s.setPermissionRequestHandler((_wc, permission, cb) => cb(permissionAllowed(permission)));
  s.setPermissionCheckHandler((_wc, permission) => permissionAllowed(permission));
  s.webRequest.onHeadersReceived({ urls: [`${ctx.origin}/*`] }, (details, cb) => cb({ responseHeaders: withCsp(details.responseHeaders ?? {}) }));
}
