// The desktop app's main process: wiring only. Every decision it takes is made by a pure
// module beside it (port-decision, gateway-process, lab-state, tray-model, coalesce,
// notifications, cloud-pause, quit, security, settings), which the unit tests run without
// Electron; the window (window.ts) and the page's IPC (ipc.ts) are wired in their own
// modules. The app's state is one object (desktop-context.ts) built in main(). Not run
// against a real Electron binary in this repository's CI (see README).
import { app, clipboard, dialog, Menu, nativeImage, Notification, Tray, utilityProcess, type NativeImage } from "electron";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdminClient, LabFollower } from "./admin-client.ts";
import { applyCloudPause, pausePlan, resumePlan } from "./cloud-pause.ts";
import { Coalescer } from "./coalesce.ts";
import { apiBase, appRoot, iconPath, type DesktopContext } from "./desktop-context.ts";
import { pipeToLogFile } from "./gateway-log.ts";
import { gatewayLaunch, GatewaySupervisor, spawnNodeGateway, type GatewayChild, type GatewayLaunch } from "./gateway-process.ts";
import { installIpc } from "./ipc.ts";
import { disconnected, type LabState } from "./lab-state.ts";
import { toMenuTemplate } from "./menu-template.ts";
import { NoticeLimiter, noticeFor, type LabNotice } from "./notifications.ts";
import { decidePort, isLabgateHealth, singleInstanceDecision } from "./port-decision.ts";
import { leftoverServers, quitPlan, recordedLaunches, runQuitSequence } from "./quit.ts";
import { loadSettings, saveSettings } from "./settings.ts";
import { sameModel, trayModel, type TrayAction, type TrayModel } from "./tray-model.ts";
import { installSessionSecurity, showWindow } from "./window.ts";

const HOST = "127.0.0.1";
/** The tray shows a change within this long (the issue: 2 s). */
const MENU_WINDOW_MS = 750;

function main(): void {
  // Single instance: a second launch focuses the first and exits.
  if (singleInstanceDecision(app.requestSingleInstanceLock()) === "quit-and-focus-first") {
    app.quit();
    return;
  }
  const ctx: DesktopContext = {
    here: dirname(fileURLToPath(import.meta.url)), // dist/electron (built) -> the app root is two up
    settingsFile: "",
    settings: { cloudPaused: [] },
    origin: "",
    ownsGateway: false,
    client: undefined,
    follower: undefined,
    supervisor: undefined,
    tray: undefined,
    window: undefined,
    lastModel: undefined,
    quitting: false,
    quitDone: false,
    gatewayNote: null,
    limiter: new NoticeLimiter(),
    coalescer: new Coalescer({ windowMs: MENU_WINDOW_MS, flush: () => renderTray(ctx) }),
  };
  app.on("second-instance", () => showWindow(ctx));
  app.on("window-all-closed", () => {
    // Stay in the tray (windows are hidden rather than closed; this covers the rest).
  });
  app.on("activate", () => showWindow(ctx));
  app.on("before-quit", (e) => {
    if (ctx.quitDone) return;
    e.preventDefault();
    if (ctx.quitting) return;
    ctx.quitting = true;
    void shutdown(ctx).finally(() => {
      ctx.quitDone = true;
      app.quit();
    });
  });
  void app.whenReady().then(
    () => start(ctx),
    (err: unknown) => fatal(err),
  );
}

function trayImage(ctx: DesktopContext, state: TrayModel["icon"]): NativeImage {
  // macOS: a template image tinted by the menu bar, the state in its shape; elsewhere the coloured one.
  const file = process.platform === "darwin" ? `${state}Template.png` : `${state}.png`;
  const img = nativeImage.createFromPath(iconPath(ctx, "tray", file));
  if (process.platform === "darwin") img.setTemplateImage(true);
  return img;
}

async function start(ctx: DesktopContext): Promise<void> {
  ctx.settingsFile = join(app.getPath("userData"), "desktop.json");
  ctx.settings = loadSettings(ctx.settingsFile);
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
  ctx.origin = `http://${HOST}:${port}`;
  const client = new AdminClient(ctx.origin, process.env.LABGATE_ADMIN_KEY);
  ctx.client = client;
  installSessionSecurity(ctx);
  installIpc(ctx);

  const tray = new Tray(trayImage(ctx, "down"));
  ctx.tray = tray;
  tray.setToolTip("labgate: starting");
  tray.on("click", () => {
    if (process.platform === "win32") showWindow(ctx); // Windows: left click opens the window, right click the menu
  });
  const follower = new LabFollower({
    client,
    onState: (_state, e) => {
      const notice = noticeFor(e.before, e.type, e.data);
      if (notice) notify(ctx, notice);
      ctx.coalescer.changed();
    },
  });
  ctx.follower = follower;

  if (attach) {
    ctx.ownsGateway = false; // someone else's labgate: use it, leave it running on Quit
  } else {
    ctx.ownsGateway = true;
    startGateway(ctx, port);
  }
  follower.start();
  ctx.coalescer.changed();
  const hidden = process.argv.includes("--hidden") || app.getLoginItemSettings().wasOpenedAtLogin;
  if (await waitForGateway(ctx, 60_000)) {
    if (!hidden) showWindow(ctx);
  } else if (!hidden) {
    notify(ctx, { key: "gateway-slow", title: "labgate has not started yet", body: "The dashboard opens from the tray once the gateway answers." });
  }
}

function startGateway(ctx: DesktopContext, port: number): void {
  const launch = gatewayLaunch({ packaged: app.isPackaged, appRoot: appRoot(ctx), host: HOST, port, env: process.env, resourcesPath: process.resourcesPath });
  ctx.supervisor = new GatewaySupervisor({
    spawn: () => (launch.kind === "node" ? spawnNodeGateway(launch) : spawnUtilityGateway(launch)),
    onState: (state, detail) => {
      ctx.gatewayNote = state === "running" ? null : detail;
      if (state === "gave-up" || state === "restarting") {
        notify(ctx, { key: `gateway-${state}`, title: state === "gave-up" ? "labgate's gateway stopped" : "labgate's gateway crashed", body: detail });
      }
      ctx.coalescer.changed();
    },
  });
  ctx.supervisor.start();
}

/** Packaged: Electron's utility process (a Node child with Electron's ABI for the rebuilt native modules). */
function spawnUtilityGateway(l: Extract<GatewayLaunch, { kind: "utility" }>): GatewayChild {
  const child = utilityProcess.fork(l.modulePath, l.args, { cwd: l.cwd, env: l.env, execArgv: l.execArgv, stdio: "pipe", serviceName: "labgate gateway" });
  // Its output is kept for a bug report; closed when it exits (each restart opens it again).
  const log = pipeToLogFile(app.getPath("logs"), [child.stdout, child.stderr], (err) => console.error(`labgate: cannot write gateway.log: ${err.message}`));
  let exit: { code: number } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      exit = { code };
      log.close();
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
      if (child.pid !== undefined && exit === undefined) process.kill(child.pid, "SIGKILL");
    },
    exited: () => exited,
    onExit: (cb) => void exited.then(() => cb(exit?.code ?? null, null)),
  };
}

async function waitForGateway(ctx: DesktopContext, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until && !ctx.quitting) {
    try {
      const res = await fetch(`${ctx.origin}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && isLabgateHealth(await res.json())) return true;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function currentState(ctx: DesktopContext, follower: LabFollower): LabState {
  const s = follower.state;
  return ctx.gatewayNote && !s.connected ? disconnected(s, ctx.gatewayNote) : s;
}

function renderTray(ctx: DesktopContext): void {
  const { tray, follower, lastModel } = ctx;
  if (!tray || tray.isDestroyed() || !follower) return;
  const model = trayModel(currentState(ctx, follower), {
    apiBase: apiBase(ctx),
    cloudPaused: ctx.settings.cloudPaused.length > 0,
    startAtLogin: app.getLoginItemSettings().openAtLogin,
    startAtLoginSupported: process.platform === "darwin" || process.platform === "win32",
    gatewayGaveUp: ctx.supervisor?.state === "gave-up",
  });
  if (sameModel(lastModel, model)) return;
  if (lastModel?.icon !== model.icon) tray.setImage(trayImage(ctx, model.icon));
  if (lastModel?.tooltip !== model.tooltip) tray.setToolTip(model.tooltip);
  if (JSON.stringify(lastModel?.menu) !== JSON.stringify(model.menu)) {
    const menu = Menu.buildFromTemplate(toMenuTemplate(model.menu, (a) => void dispatch(ctx, a)));
    // No rebuild while the menu is open (it would close it); what changed meanwhile shows when it closes.
    menu.on("menu-will-show", () => ctx.coalescer.hold());
    menu.on("menu-will-close", () => ctx.coalescer.release());
    tray.setContextMenu(menu);
  }
  ctx.lastModel = model;
}

async function dispatch(ctx: DesktopContext, a: TrayAction): Promise<void> {
  const c = ctx.client!;
  const f = ctx.follower!;
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
        const names = a.pause ? pausePlan(f.state) : resumePlan(ctx.settings.cloudPaused, f.state);
        try {
          // Each provider turned off is saved at once: a later failure still leaves Resume offered.
          await applyCloudPause(a.pause, names, ctx.settings.cloudPaused, {
            setEnabled: async (name, enabled) => {
              await c.setProviderEnabled(name, enabled);
              f.update("provider", { change: "enabled", provider: name, enabled });
            },
            save: (paused) => {
              ctx.settings = { ...ctx.settings, cloudPaused: paused };
              saveSettings(ctx.settingsFile, ctx.settings);
            },
          });
        } finally {
          ctx.coalescer.changed();
        }
        return;
      }
      case "open-dashboard":
        showWindow(ctx);
        return;
      case "copy-api-base":
        clipboard.writeText(apiBase(ctx));
        return;
      case "start-at-login":
        app.setLoginItemSettings({ openAtLogin: a.enable, args: ["--hidden"] });
        ctx.coalescer.changed();
        return;
      case "restart-gateway":
        ctx.supervisor?.start();
        return;
      case "quit":
        app.quit();
        return;
    }
  } catch (err) {
    notify(ctx, { key: `failed:${a.kind}`, title: "labgate could not do that", body: (err as Error).message });
  }
}

function notify(ctx: DesktopContext, n: LabNotice): void {
  if (!Notification.isSupported() || !ctx.limiter.allow(n)) return;
  new Notification({ title: n.title, body: n.body, icon: iconPath(ctx, "png", "256x256.png") }).show();
}

// --- quitting ---------------------------------------------------------------------------

async function shutdown(ctx: DesktopContext): Promise<void> {
  ctx.coalescer.stop();
  if (ctx.window && !ctx.window.isDestroyed()) saveSettings(ctx.settingsFile, ctx.settings);
  ctx.tray?.setToolTip("labgate: quitting");
  const state = ctx.follower?.state;
  const running = (state?.processes ?? []).filter((p) => p.pid !== null && p.state !== "stopped" && p.state !== "failed");
  // Their start times, as the gateway recorded them, read before it stops (and forgets) them.
  const leftovers = leftoverServers(running.map((p) => ({ name: p.name, pid: p.pid! })), ctx.ownsGateway ? recordedLaunches(process.env, homedir()) : []);
  await ctx.follower?.stop();
  const c = ctx.client;
  const steps = quitPlan({
    ownsGateway: ctx.ownsGateway,
    stopServersViaGateway: c
      ? async () => {
          const results = await Promise.allSettled(running.map((p) => c.processAction(p.name, "stop")));
          return `${results.filter((r) => r.status === "fulfilled").length}/${running.length} stopped`;
        }
      : undefined,
    gateway: ctx.supervisor?.detach(),
    serverPids: leftovers,
    timeouts: { serversViaGatewayMs: 20_000, gateway: { graceMs: 30_000, killMs: 5_000 }, leftovers: { graceMs: 5_000, killMs: 2_000 } },
  });
  await runQuitSequence(steps, (l) => console.log(`labgate quit: ${l.step}: ${l.outcome}`));
  ctx.tray?.destroy();
}

function fatal(err: unknown): void {
  dialog.showErrorBox("labgate could not start", err instanceof Error ? err.message : String(err));
  app.exit(1);
}

main();
