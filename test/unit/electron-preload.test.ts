// What a page in the app's window gets (electron/preload-api.ts, and the built preload
// bundle run the way a sandboxed preload runs: its own scope, `require` giving only
// `electron`), and Electron's security checklist as the app applies it (electron/security.ts).
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { beforeAll, describe, expect, it } from "vitest";
import { UI_CSP } from "../../gateway/api/ui.ts";
import { DESKTOP_CHANNELS, desktopApi, EXPOSED_AS, exposeDesktopApi } from "../../electron/preload-api.ts";
import { DESKTOP_CSP, ipcSenderAllowed, navigationAllowed, newWindowDecision, permissionAllowed, SECURE_WEB_PREFERENCES, withCsp } from "../../electron/security.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const GATEWAY = "http://127.0.0.1:4000";
/** This file's own build (another test file may be building at the same time). */
const OUT = join("dist", `electron-test-preload-${process.pid}`);

/** A contextBridge stand-in that keeps what was exposed. */
function stubBridge() {
  const exposed = new Map<string, unknown>();
  return { exposed, bridge: { exposeInMainWorld: (key: string, api: unknown) => void exposed.set(key, api) } };
}

describe("the preload's API", () => {
  it("exposes exactly three functions under window.labgateDesktop, each invoking its own channel", async () => {
    const { exposed, bridge } = stubBridge();
    const calls: string[] = [];
    exposeDesktopApi(bridge, async (channel) => {
      calls.push(channel);
      return channel === DESKTOP_CHANNELS.copyApiBaseUrl ? `${GATEWAY}/v1` : { version: "0.1.0" };
    });
    expect([...exposed.keys()]).toEqual([EXPOSED_AS]);
    const api = exposed.get("labgateDesktop") as Record<string, unknown>;
    expect(Object.keys(api).sort()).toEqual(["copyApiBaseUrl", "info", "openInBrowser"]);
    expect(Object.values(api).every((v) => typeof v === "function")).toBe(true);
    expect(Object.isFrozen(api)).toBe(true);
    const a = api as unknown as ReturnType<typeof desktopApi>;
    expect(await a.copyApiBaseUrl()).toBe(`${GATEWAY}/v1`);
    await a.info();
    expect(await a.openInBrowser()).toBeUndefined();
    expect(calls).toEqual(["labgate:copy-api-base-url", "labgate:info", "labgate:open-in-browser"]);
  });

  it("passes nothing the page gives to the main process", async () => {
    const seen: unknown[][] = [];
    const api = desktopApi(async (...args: unknown[]) => void seen.push(args)) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    await api.info!("../../etc/passwd", { evil: true });
    await api.copyApiBaseUrl!("labgate:other-channel");
    expect(seen).toEqual([["labgate:info"], ["labgate:copy-api-base-url"]]);
  });

  describe("the built preload bundle, run as a sandboxed preload", () => {
    let bundle = "";
    beforeAll(() => {
      execFileSync(process.execPath, [join(ROOT, "electron/build.ts"), OUT], { cwd: ROOT, stdio: "pipe" });
      bundle = readFileSync(join(ROOT, OUT, "preload.cjs"), "utf8");
      rmSync(join(ROOT, OUT), { recursive: true, force: true });
    }, 60_000);

    it("requires nothing but electron, and exposes the same three functions over ipcRenderer.invoke", async () => {
      const required: string[] = [];
      const invoked: string[] = [];
      const { exposed, bridge } = stubBridge();
      const electron = { contextBridge: bridge, ipcRenderer: { invoke: async (channel: string) => void invoked.push(channel) } };
      const module = { exports: {} };
      runInNewContext(bundle, {
        require: (name: string) => {
          required.push(name);
          if (name !== "electron") throw new Error(`a sandboxed preload cannot require ${name}`);
          return electron;
        },
        module,
        exports: module.exports,
      });
      expect(required).toEqual(["electron"]);
      const api = exposed.get("labgateDesktop") as Record<string, () => Promise<unknown>>;
      expect(Object.keys(api).sort()).toEqual(["copyApiBaseUrl", "info", "openInBrowser"]);
      await api.info!();
      await api.openInBrowser!();
      expect(invoked).toEqual(["labgate:info", "labgate:open-in-browser"]);
    });
  });
});

describe("Electron's security checklist", () => {
  it("isolates the page: context isolation, no Node, the sandbox, web security, no webview", () => {
    expect(SECURE_WEB_PREFERENCES).toMatchObject({
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      sandbox: true,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
  });

  it("the window navigates only within the gateway's origin", () => {
    expect(navigationAllowed(`${GATEWAY}/ui/#/providers`, GATEWAY)).toBe(true);
    expect(navigationAllowed("http://127.0.0.1:4001/ui/", GATEWAY)).toBe(false);
    expect(navigationAllowed("http://localhost:4000/ui/", GATEWAY)).toBe(false);
    expect(navigationAllowed("https://evil.example/", GATEWAY)).toBe(false);
    expect(navigationAllowed("file:///etc/passwd", GATEWAY)).toBe(false);
    expect(navigationAllowed("javascript:alert(1)", GATEWAY)).toBe(false);
  });

  it("new windows are never opened; web links go to the browser, other schemes nowhere", () => {
    expect(newWindowDecision("https://docs.example.org/x", GATEWAY)).toEqual({ action: "deny", openExternally: true });
    expect(newWindowDecision(`${GATEWAY}/ui/`, GATEWAY)).toEqual({ action: "deny", openExternally: false });
    expect(newWindowDecision("file:///etc/passwd", GATEWAY)).toEqual({ action: "deny", openExternally: false });
    expect(newWindowDecision("smb://host/share", GATEWAY)).toEqual({ action: "deny", openExternally: false });
  });

  it("only the gateway's pages may call the preload's functions", () => {
    expect(ipcSenderAllowed(`${GATEWAY}/ui/`, GATEWAY)).toBe(true);
    expect(ipcSenderAllowed("https://evil.example/", GATEWAY)).toBe(false);
    expect(ipcSenderAllowed(undefined, GATEWAY)).toBe(false);
  });

  it("every page has the dashboard's Content-Security-Policy: added when missing, kept when sent", () => {
    expect(DESKTOP_CSP).toBe(UI_CSP);
    expect(withCsp({ "content-type": ["application/json"] })["Content-Security-Policy"]).toEqual([UI_CSP]);
    const own = { "content-security-policy": ["default-src 'none'"] };
    expect(withCsp(own)).toEqual(own);
  });

  it("grants the page no permission but writing to the clipboard", () => {
    for (const p of ["media", "geolocation", "notifications", "clipboard-read", "openExternal", "hid", "serial"]) expect(permissionAllowed(p)).toBe(false);
    expect(permissionAllowed("clipboard-sanitized-write")).toBe(true);
  });
});
