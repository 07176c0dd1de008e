// The desktop app's main process: wiring only. Every decision it takes is made by a pure
// module beside it (port-decision, gateway-process, lab-state, tray-model, coalesce,
// notifications, cloud-pause, quit, security, settings), which the unit tests run without
// Electron. Not run against a real Electron binary in this repository's CI (see README).
import {
  app,
  BrowserWindow,
  clipboard,
  dialog,
  ipcMain,
  Menu,
  nativeImage,
  Notification,
  screen,
  session,
  shell,
  Tray,
  utilityProcess,
  type NativeImage,
} from "electron";
import { createWriteStream } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdminClient, LabFollower } from "./admin-client.ts";
import { pausePlan, resumePlan } from "./cloud-pause.ts";
import { Coalescer } from "./coalesce.ts";
import { gatewayLaunch, GatewaySupervisor, spawnNodeGateway, type GatewayChild, type GatewayLaunch } from "./gateway-process.ts";
import { disconnected, type LabState } from "./lab-state.ts";
import { toMenuTemplate } from "./menu-template.ts";
import { NoticeLimiter, noticeFor, type LabNotice } from "./notifications.ts";
import { decidePort, isLabgateHealth, singleInstanceDecision } from "./port-decision.ts";
import { DESKTOP_CHANNELS, type DesktopInfo } from "./preload-api.ts";
import { leftoverServers, quitPlan, recordedLaunches, runQuitSequence } from "./quit.ts";
import { ipcSenderAllowed, navigationAllowed, newWindowDecision, permissionAllowed, SECURE_WEB_PREFERENCES, withCsp } from "./security.ts";
import { loadSettings, restoreBounds, saveSettings, type DesktopSettings } from "./settings.ts";
import { sameModel, trayModel, type TrayAction, type TrayModel } from "./tray-model.ts";

const here = dirname(fileURLToPath(import.meta.url)); // dist/electron (built) -> the app root is two up
const HOST = "127.0.0.1";
/** The tray shows a change within this long (the issue: 2 s). */
const MENU_WINDOW_MS = 750;

// --- single instance: a second launch focuses the first and exits -----------------------
if (singleInstanceDecision(app.requestSingleInstanceLock()) === "quit-and-focus-first") {
  app.quit();
} else {
  app.on("second-instance", () => showWindow());
  void app.whenReady().then(start, (err: unknown) => fatal(err));
}

let settingsFile = "";
let settings: DesktopSettings = { cloudPaused: [] };
let origin = "";
let ownsGateway = false;
let client: AdminClient | undefined;
let follower: LabFollower | undefined;
let supervisor: GatewaySupervisor | undefined;
let tray: Tray | undefined;
let window: BrowserWindow | undefined;
let lastModel: TrayModel | undefined;
let quitting = false;
let quitDone = false;
let gatewayNote: string | null = null;
const limiter = new NoticeLimiter();
const coalescer = new Coalescer({ windowMs: MENU_WINDOW_MS, flush: () => renderTray() });

function appRoot(): string {
  return app.isPackaged ? app.getAppPath() : join(here, "..", "..");
}

function iconPath(...parts: string[]): string {
  // Packaged: resources/icons is an extra resource beside app.asar; in development, in the repository.
  return app.isPackaged ? join(process.resourcesPath, "icons", ...parts) : join(appRoot(), "resources", "icons", ...parts);
}

function trayImage(state: TrayModel["icon"]): NativeImage {
  // macOS: a template image tinted by the menu bar, the state in its shape; elsewhere the coloured one.
  const file = process.platform === "darwin" ? `${state}Template.png` : `${state}.png`;
  const img = nativeImage.createFromPath(iconPath("tray", file));
  if (process.platform === "darwin") img.setTemplateImage(true);
  return img;
}

function apiBase(): string {
  return `${origin}/v1`;
}

async function start(): Promise<void> {
  settingsFile = join(app.getPath("userData"), "desktop.json");
  settings = loadSettings(settingsFile);
  const wanted = Number(process.env.LABGATE_PORT) || 4000;
  const decision = await decidePort(HOST, wanted);
  let port = wanted;
  let attach = decision.action === "attach";
  if (decision.action === "ask-attach") {
    // A labgate whose owner could not be checked: it gets the admin key only if the user says so.
    const buttons = ["Attach to it", ...(decision.nextFree !== null ? [`Use port ${decision.nextFree}`] : []), "Quit"];
    const { response } = await dialog.showMessageBox({ type: "warning", title: "labgate", message: `A labgate is already running on port ${wanted}`, detail: decision.message, buttons, defaultId: buttons.length - 1, cancelId: buttons.length - 1 });
    if (response === 0) attach = true;
    else if (decision.nextFree !== null && response === 1) port = decision.nextFree;
    else {
      app.exit(1);
      return;
    }
  }
  if (decision.action === "offer-next") {
    const buttons = decision.nextFree !== null ? [`Use port ${decision.nextFree}`, "Quit"] : ["Quit"];
    const { response } = await dialog.showMessageBox({ type: "warning", title: "labgate", message: `Port ${wanted} is taken`, detail: decision.message, buttons, defaultId: 0, cancelId: buttons.length - 1 });
    if (decision.nextFree === null || response !== 0) {
      app.exit(1);
      return;
    }
    port = decision.nextFree;
  }
  origin = `http://${HOST}:${port}`;
  client = new AdminClient(origin, process.env.LABGATE_ADMIN_KEY);
  installSecurity();
  installIpc();

  tray = new Tray(trayImage("down"));
  tray.setToolTip("labgate: starting");
  tray.on("click", () => {
    if (process.platform === "win32") showWindow(); // Windows: left click opens the window, right click the menu
  });
  follower = new LabFollower({
    client,
    onState: (_state, e) => {
      const notice = noticeFor(e.before, e.type, e.data);
      if (notice) notify(notice);
      coalescer.changed();
    },
  });

  if (attach) {
    ownsGateway = false; // someone else's labgate: use it, leave it running on Quit
  } else {
    ownsGateway = true;
    startGateway(port);
  }
  follower.start();
  coalescer.changed();
  const hidden = process.argv.includes("--hidden") || app.getLoginItemSettings().wasOpenedAtLogin;
  if (await waitForGateway(60_000)) {
    if (!hidden) showWindow();
  } else if (!hidden) {
    notify({ key: "gateway-slow", title: "labgate has not started yet", body: "The dashboard opens from the tray once the gateway answers." });
  }
}

function startGateway(port: number): void {
  const launch = gatewayLaunch({ packaged: app.isPackaged, appRoot: appRoot(), host: HOST, port, env: process.env, resourcesPath: process.resourcesPath });
  supervisor = new GatewaySupervisor({
    spawn: () => (launch.kind === "node" ? spawnNodeGateway(launch) : spawnUtilityGateway(launch)),
    onState: (state, detail) => {
      gatewayNote = state === "running" ? null : detail;
      if (state === "gave-up" || state === "restarting") {
        notify({ key: `gateway-${state}`, title: state === "gave-up" ? "labgate's gateway stopped" : "labgate's gateway crashed", body: detail });
      }
      coalescer.changed();
    },
  });
  supervisor.start();
}

/** Packaged: Electron's utility process (a Node child with Electron's ABI for the rebuilt native modules). */
function spawnUtilityGateway(l: Extract<GatewayLaunch, { kind: "utility" }>): GatewayChild {
  const child = utilityProcess.fork(l.modulePath, l.args, { cwd: l.cwd, env: l.env, execArgv: l.execArgv, stdio: "pipe", serviceName: "labgate gateway" });
  const log = createWriteStream(join(app.getPath("logs"), "gateway.log"), { flags: "a" });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  let exit: { code: number } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      exit = { code };
      resolve();
    }),
  );
  return {
    name: "gateway",
    get pid() {
      return child.pid;
    },
    alive: () => exit === undefined,
    terminate: () => void child.kill(), // SIGTERM on POSIX
    kill: () => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    },
    exited: () => exited,
    onExit: (cb) => void exited.then(() => cb(exit?.code ?? null, null)),
  };
}

async function waitForGateway(ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until && !quitting) {
    try {
      const res = await fetch(`${origin}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && isLabgateHealth(await res.json())) return true;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function currentState(): LabState {
  const s = follower!.state;
  return gatewayNote && !s.connected ? disconnected(s, gatewayNote) : s;
}

function renderTray(): void {
  if (!tray || tray.isDestroyed() || !follower) return;
  const model = trayModel(currentState(), {
    apiBase: apiBase(),
    cloudPaused: settings.cloudPaused.length > 0,
    startAtLogin: app.getLoginItemSettings().openAtLogin,
    startAtLoginSupported: process.platform === "darwin" || process.platform === "win32",
    gatewayGaveUp: supervisor?.state === "gave-up",
  });
  if (sameModel(lastModel, model)) return;
  if (lastModel?.icon !== model.icon) tray.setImage(trayImage(model.icon));
  if (lastModel?.tooltip !== model.tooltip) tray.setToolTip(model.tooltip);
  if (JSON.stringify(lastModel?.menu) !== JSON.stringify(model.menu)) {
    const menu = Menu.buildFromTemplate(toMenuTemplate(model.menu, (a) => void dispatch(a)));
    // No rebuild while the menu is open (it would close it); what changed meanwhile shows when it closes.
    menu.on("menu-will-show", () => coalescer.hold());
    menu.on("menu-will-close", () => coalescer.release());
    tray.setContextMenu(menu);
  }
  lastModel = model;
}

async function dispatch(a: TrayAction): Promise<void> {
  const c = client!;
  const f = follower!;
  try {
    switch (a.kind) {
      case "set-provider-enabled":
        await c.setProviderEnabled(a.provider, a.enabled);
        f.update("provider", { change: "enabled", provider: a.provider, enabled: a.enabled });
        return;
      case "process":
        await c.processAction(a.name, a.op);
        return;
      case "unload":
        await c.unload(a.provider, a.model);
        f.update("model", { change: "unloaded", provider: a.provider, model: a.model });
        return;
      case "reset-breakers":
        for (const d of a.deployments) await c.resetBreaker(d);
        await f.refetch("providers");
        return;
      case "pause-cloud": {
        const names = a.pause ? pausePlan(f.state) : resumePlan(settings.cloudPaused, f.state);
        for (const name of names) {
          await c.setProviderEnabled(name, !a.pause);
          f.update("provider", { change: "enabled", provider: name, enabled: !a.pause });
        }
        settings = { ...settings, cloudPaused: a.pause ? names : [] };
        saveSettings(settingsFile, settings);
        coalescer.changed();
        return;
      }
      case "open-dashboard":
        showWindow();
        return;
      case "copy-api-base":
        clipboard.writeText(apiBase());
        return;
      case "start-at-login":
        app.setLoginItemSettings({ openAtLogin: a.enable, args: ["--hidden"] });
        coalescer.changed();
        return;
      case "restart-gateway":
        supervisor?.start();
        return;
      case "quit":
        app.quit();
        return;
    }
  } catch (err) {
    notify({ key: `failed:${a.kind}`, title: "labgate could not do that", body: (err as Error).message });
  }
}

function notify(n: LabNotice): void {
  if (!Notification.isSupported() || !limiter.allow(n)) return;
  new Notification({ title: n.title, body: n.body, icon: iconPath("png", "256x256.png") }).show();
}

// --- the window -------------------------------------------------------------------------

function showWindow(): void {
  if (!origin) return; // still deciding the port
  if (window && !window.isDestroyed()) {
    if (window.isMinimized()) window.restore();
    window.show();
    window.focus();
    return;
  }
  const bounds = restoreBounds(settings.window, screen.getAllDisplays().map((d) => d.workArea));
  const win = new BrowserWindow({
    ...(bounds.x !== undefined && bounds.y !== undefined ? { x: bounds.x, y: bounds.y } : {}),
    width: bounds.width,
    height: bounds.height,
    show: false,
    title: "labgate",
    icon: iconPath("png", "512x512.png"),
    webPreferences: { ...SECURE_WEB_PREFERENCES, preload: join(here, "preload.cjs") },
  });
  window = win;
  if (bounds.maximized) win.maximize();
  win.once("ready-to-show", () => win.show());
  const remember = (): void => {
    if (win.isDestroyed()) return;
    const b = win.getNormalBounds();
    settings = { ...settings, window: { ...b, maximized: win.isMaximized() } };
  };
  win.on("resize", remember);
  win.on("move", remember);
  // Closing the window hides it to the tray; Quit is in the tray's menu.
  win.on("close", (e) => {
    remember();
    saveSettings(settingsFile, settings);
    if (!quitting) {
      e.preventDefault();
      win.hide();
    }
  });
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

function installSecurity(): void {
  const s = session.defaultSession;
  s.setPermissionRequestHandler((_wc, permission, cb) => cb(permissionAllowed(permission)));
  s.setPermissionCheckHandler((_wc, permission) => permissionAllowed(permission));
  s.webRequest.onHeadersReceived({ urls: [`${origin}/*`] }, (details, cb) => cb({ responseHeaders: withCsp(details.responseHeaders ?? {}) }));
}

function installIpc(): void {
  const allowed = (e: Electron.IpcMainInvokeEvent): boolean => ipcSenderAllowed(e.senderFrame?.url, origin);
  ipcMain.handle(DESKTOP_CHANNELS.info, (e): DesktopInfo => {
    if (!allowed(e)) throw new Error("not allowed");
    return { version: app.getVersion(), platform: process.platform, apiBase: apiBase(), ownsGateway };
  });
  ipcMain.handle(DESKTOP_CHANNELS.copyApiBaseUrl, (e) => {
    if (!allowed(e)) throw new Error("not allowed");
    clipboard.writeText(apiBase());
    return apiBase();
  });
  ipcMain.handle(DESKTOP_CHANNELS.openInBrowser, async (e) => {
    if (!allowed(e)) throw new Error("not allowed");
    await shell.openExternal(`${origin}/ui/`);
  });
}

// --- quitting ---------------------------------------------------------------------------

app.on("window-all-closed", () => {
  // Stay in the tray (windows are hidden rather than closed; this covers the rest).
});
app.on("activate", () => showWindow());
app.on("before-quit", (e) => {
  if (quitDone) return;
  e.preventDefault();
  if (quitting) return;
  quitting = true;
  void shutdown().finally(() => {
    quitDone = true;
    app.quit();
  });
});

async function shutdown(): Promise<void> {
  coalescer.stop();
  if (window && !window.isDestroyed()) saveSettings(settingsFile, settings);
  tray?.setToolTip("labgate: quitting");
  const state = follower?.state;
  const running = (state?.processes ?? []).filter((p) => p.pid !== null && p.state !== "stopped" && p.state !== "failed");
  // Their start times, as the gateway recorded them, read before it stops (and forgets) them.
  const leftovers = leftoverServers(running.map((p) => ({ name: p.name, pid: p.pid! })), ownsGateway ? recordedLaunches(process.env, homedir()) : []);
  await follower?.stop();
  const c = client;
  const steps = quitPlan({
    ownsGateway,
    stopServersViaGateway: c
      ? async () => {
          const results = await Promise.allSettled(running.map((p) => c.processAction(p.name, "stop")));
          return `${results.filter((r) => r.status === "fulfilled").length}/${running.length} stopped`;
        }
      : undefined,
    gateway: supervisor?.detach(),
    serverPids: leftovers,
    timeouts: { serversViaGatewayMs: 20_000, gateway: { graceMs: 30_000, killMs: 5_000 }, leftovers: { graceMs: 5_000, killMs: 2_000 } },
  });
  await runQuitSequence(steps, (l) => console.log(`labgate quit: ${l.step}: ${l.outcome}`));
  tray?.destroy();
}

function fatal(err: unknown): void {
  dialog.showErrorBox("labgate could not start", err instanceof Error ? err.message : String(err));
  app.exit(1);
}
