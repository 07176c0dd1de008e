// The built main process (main.js as electron/build.ts makes it for `npm run app`) with a stand-in
// for the `electron` module, since this machine has no Electron binary: it records what
// main.ts asks of Electron (tray, menus, windows, dialogs) and lets the test click menu
// items and quit. Everything else is real: the port probe, the gateway it starts under
// `node` (or the one it attaches to), the admin calls, the quit sequence. This checks the
// wiring; it is not a substitute for running the app in a real Electron (see README).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { accepts } from "../../electron/port-decision.ts";
import { startFakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
/** This file's own build (another test file may be building dist/electron at the same time), at the same depth. */
const OUT = join("dist", `electron-test-main-${process.pid}`);

type Handler = (...args: any[]) => unknown;
interface MenuTemplateItem {
  id?: string;
  label?: string;
  type?: string;
  checked?: boolean;
  enabled?: boolean;
  click?: () => void;
  submenu?: MenuTemplateItem[];
}

/** A stand-in for the parts of Electron main.ts uses, recording what it is asked. */
function fakeElectron(userData: string, opts: { gotLock: boolean; dialogResponse?: number }) {
  const appHandlers = new Map<string, Handler[]>();
  const rec = {
    quitCalls: 0,
    exited: undefined as number | undefined,
    quitDone: false,
    dialogs: [] as { message: string; detail?: string; buttons: string[] }[],
    errors: [] as string[],
    windows: [] as FakeWindow[],
    trays: [] as FakeTray[],
    notifications: [] as { title: string; body: string }[],
    clipboard: [] as string[],
    ipc: new Map<string, Handler>(),
    webPreferences: [] as Record<string, unknown>[],
  };
  const emit = (name: string, ...args: unknown[]) => {
    for (const h of appHandlers.get(name) ?? []) h(...args);
  };
  class FakeWindow {
    handlers = new Map<string, Handler[]>();
    contentsHandlers = new Map<string, Handler[]>();
    url = "";
    visible = false;
    openHandler: Handler | undefined;
    options: Record<string, any>;
    constructor(options: Record<string, any>) {
      this.options = options;
      rec.windows.push(this);
      rec.webPreferences.push(options.webPreferences);
    }
    webContents = {
      on: (name: string, h: Handler) => this.contentsHandlers.set(name, [...(this.contentsHandlers.get(name) ?? []), h]),
      setWindowOpenHandler: (h: Handler) => void (this.openHandler = h),
    };
    on(name: string, h: Handler) {
      this.handlers.set(name, [...(this.handlers.get(name) ?? []), h]);
    }
    once(name: string, h: Handler) {
      this.on(name, h);
    }
    emit(name: string, ...args: unknown[]) {
      for (const h of this.handlers.get(name) ?? []) h(...args);
    }
    loadURL(url: string) {
      this.url = url;
      this.emit("ready-to-show");
      return Promise.resolve();
    }
    isDestroyed = () => false;
    isMinimized = () => false;
    restore() {}
    show() {
      this.visible = true;
    }
    hide() {
      this.visible = false;
    }
    focus() {}
    maximize() {}
    isMaximized = () => false;
    getNormalBounds = () => ({ x: 10, y: 20, width: 1000, height: 700 });
  }
  class FakeTray {
    menu: { template: MenuTemplateItem[] } | undefined;
    tooltip = "";
    images: string[] = [];
    destroyed = false;
    constructor(image: { path: string }) {
      this.images.push(image.path);
      rec.trays.push(this);
    }
    setContextMenu(m: { template: MenuTemplateItem[] }) {
      this.menu = m;
    }
    setToolTip(t: string) {
      this.tooltip = t;
    }
    setImage(i: { path: string }) {
      this.images.push(i.path);
    }
    on() {}
    isDestroyed = () => this.destroyed;
    destroy() {
      this.destroyed = true;
    }
  }
  const app = {
    isPackaged: false,
    requestSingleInstanceLock: () => opts.gotLock,
    on: (name: string, h: Handler) => void appHandlers.set(name, [...(appHandlers.get(name) ?? []), h]),
    whenReady: () => Promise.resolve(),
    getPath: (name: string) => join(userData, name),
    getAppPath: () => ROOT,
    getVersion: () => "0.1.0",
    getLoginItemSettings: () => ({ openAtLogin: false, wasOpenedAtLogin: false }),
    setLoginItemSettings: () => {},
    quit: () => {
      rec.quitCalls++;
      let prevented = false;
      emit("before-quit", { preventDefault: () => (prevented = true) });
      if (!prevented) rec.quitDone = true;
    },
    exit: (code: number) => void (rec.exited = code),
  };
  const electron = {
    app,
    BrowserWindow: FakeWindow,
    Tray: FakeTray,
    Menu: { buildFromTemplate: (template: MenuTemplateItem[]) => ({ template, on: () => {} }) },
    nativeImage: { createFromPath: (path: string) => ({ path, setTemplateImage: () => {} }) },
    Notification: class {
      static isSupported = () => true;
      private readonly n: { title: string; body: string };
      constructor(n: { title: string; body: string }) {
        this.n = n;
      }
      show() {
        rec.notifications.push({ title: this.n.title, body: this.n.body });
      }
    },
    dialog: {
      showMessageBox: async (o: { message: string; detail?: string; buttons: string[] }) => {
        rec.dialogs.push(o);
        return { response: opts.dialogResponse ?? 0 };
      },
      showErrorBox: (_t: string, m: string) => void rec.errors.push(m),
    },
    ipcMain: { handle: (channel: string, h: Handler) => void rec.ipc.set(channel, h) },
    session: { defaultSession: { setPermissionRequestHandler() {}, setPermissionCheckHandler() {}, webRequest: { onHeadersReceived() {} } } },
    screen: { getAllDisplays: () => [{ workArea: { x: 0, y: 0, width: 1920, height: 1080 } }] },
    shell: { openExternal: async () => {} },
    clipboard: { writeText: (t: string) => void rec.clipboard.push(t) },
    utilityProcess: { fork: () => { throw new Error("development runs the gateway under node"); } },
  };
  return { electron, rec, emit };
}

async function until<T>(get: () => T | undefined | false, what: string, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = get();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

function find(items: MenuTemplateItem[] | undefined, id: string): MenuTemplateItem | undefined {
  for (const i of items ?? []) {
    if (i.id === id) return i;
    const inner = find(i.submenu, id);
    if (inner) return inner;
  }
  return undefined;
}

const cleanup: (() => Promise<void> | void)[] = [];
const savedEnv = { ...process.env };
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  process.env = { ...savedEnv };
  vi.doUnmock("electron");
  vi.resetModules();
});

afterAll(() => rmSync(join(ROOT, OUT), { recursive: true, force: true }));
beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, "electron/build.ts"), OUT], { cwd: ROOT, stdio: "pipe" });
}, 60_000);

async function runMain(opts: { gotLock: boolean; dialogResponse?: number }) {
  const userData = mkdtempSync(join(tmpdir(), "labgate-app-"));
  cleanup.push(() => rmSync(userData, { recursive: true, force: true }));
  const fake = fakeElectron(userData, opts);
  vi.resetModules();
  vi.doMock("electron", () => fake.electron);
  await import(/* @vite-ignore */ `${join(ROOT, OUT, "main.js")}?t=${Date.now()}`);
  return fake;
}

describe("the main process, with Electron stood in for", () => {
  it("a second copy hands over to the first and quits without starting anything", async () => {
    const { rec } = await runMain({ gotLock: false });
    expect(rec.quitCalls).toBe(1);
    expect(rec.trays).toHaveLength(0);
  });

  it("attaches to a labgate already on the port: tray with its providers, the dashboard window, menu clicks drive it, Quit leaves it running", async () => {
    const local = await startFakeOpenAI({ name: "local" });
    cleanup.push(() => local.close());
    const gw = await startGateway(JSON.stringify({ providers: { box: { type: "openai-compatible", base_url: local.v1 } }, models: { m: { deployments: [{ provider: "box", model: "x" }] } } }));
    cleanup.push(() => gw.close());
    const port = Number(new URL(gw.url).port);
    process.env.LABGATE_PORT = String(port);
    const { rec, emit } = await runMain({ gotLock: true });

    const tray = await until(() => rec.trays[0]?.menu && find(rec.trays[0].menu.template, "provider:box") && rec.trays[0], "the tray's provider menu");
    expect(tray.tooltip).toBe("labgate: healthy · 1 provider · 0.0 req/s");
    const win = await until(() => rec.windows[0], "the window");
    expect(win.url).toBe(`http://127.0.0.1:${port}/ui/`);
    expect(rec.webPreferences[0]).toMatchObject({ contextIsolation: true, nodeIntegration: false, sandbox: true });
    expect(String(rec.webPreferences[0]!.preload)).toBe(join(ROOT, OUT, "preload.cjs"));
    expect([...rec.ipc.keys()].sort()).toEqual(["labgate:copy-api-base-url", "labgate:info", "labgate:open-in-browser"]);

    // Closing the window hides it to the tray; a second launch shows it again.
    let prevented = false;
    win.emit("close", { preventDefault: () => (prevented = true) });
    expect([prevented, win.visible]).toEqual([true, false]);
    emit("second-instance");
    expect(win.visible).toBe(true);

    // A click on Enabled turns the provider off in the gateway, and the menu follows.
    find(tray.menu!.template, "provider:box:enabled")!.click!();
    await until(() => find(rec.trays[0]!.menu!.template, "provider:box:enabled")?.checked === false, "the menu after the click");
    const view = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { enabled: boolean }[] };
    expect(view.data[0]!.enabled).toBe(false);
    find(tray.menu!.template, "copy-api-base")!.click!();
    expect(rec.clipboard).toEqual([`http://127.0.0.1:${port}/v1`]);

    // Quit: the app exits; a gateway it did not start keeps running.
    find(rec.trays[0]!.menu!.template, "quit")!.click!();
    await until(() => rec.quitDone, "the quit");
    expect(await accepts("127.0.0.1", port)).toBe(true);
    expect(rec.trays[0]!.destroyed).toBe(true);
  });

  it("port taken by another program: offers the next free port, starts its own gateway there, and stops it on Quit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labgate-app-gw-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const local = await startFakeOpenAI({ name: "local" });
    cleanup.push(() => local.close());
    writeFileSync(join(dir, "labgate.yaml"), JSON.stringify({ providers: { box: { type: "openai-compatible", base_url: local.v1 } }, lab: { discovery: { enabled: false } } }));
    const port = await freePort();
    const other = createServer((_q, r) => r.end("not labgate"));
    await new Promise<void>((r) => other.listen(port, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => other.close(() => r())));
    Object.assign(process.env, { LABGATE_PORT: String(port), LABGATE_NODE: process.execPath, LABGATE_CONFIG: join(dir, "labgate.yaml"), LABGATE_DATA_DIR: join(dir, "data"), LABGATE_LOG_LEVEL: "warn" });
    const { rec, electron } = await runMain({ gotLock: true, dialogResponse: 0 });
    // Should an assertion fail first: quit anyway, so that the gateway the app started does not outlive the test.
    cleanup.push(async () => {
      if (rec.quitDone) return;
      electron.app.quit();
      await until(() => rec.quitDone, "the quit at cleanup", 800).catch(() => {});
    });

    const dialog = await until(() => rec.dialogs[0], "the port dialog");
    expect(dialog.message).toBe(`Port ${port} is taken`);
    const next = Number(/Use port (\d+)/.exec(dialog.buttons[0]!)?.[1]);
    expect(next).toBeGreaterThan(port);
    const tray = await until(() => rec.trays[0]?.menu && find(rec.trays[0].menu.template, "provider:box") && rec.trays[0], "the tray from the app's own gateway", 600);
    expect(find(tray.menu!.template, "copy-api-base")!.label).toBe(`Copy API base URL (http://127.0.0.1:${next}/v1)`);
    expect(await accepts("127.0.0.1", next)).toBe(true);

    find(tray.menu!.template, "quit")!.click!();
    await until(() => rec.quitDone, "the quit", 800);
    expect(await accepts("127.0.0.1", next)).toBe(false); // the app's gateway stopped with it
  }, 60_000);
});
