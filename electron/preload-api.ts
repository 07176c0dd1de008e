// What the dashboard page may ask of the desktop app: a few named functions and nothing
// else (no ipcRenderer, no Node, no channel chosen by the page). preload.ts exposes them
// with Electron's contextBridge; tests expose them on a stub to see exactly what a page gets.

/** The IPC channels behind the functions; main.ts answers exactly these. */
export const DESKTOP_CHANNELS = {
  info: "labgate:info",
  copyApiBaseUrl: "labgate:copy-api-base-url",
  openInBrowser: "labgate:open-in-browser",
} as const;

export interface DesktopInfo {
  version: string;
  platform: string;
  apiBase: string;
  /** Whether the app started this gateway (false: it attached to one already running). */
  ownsGateway: boolean;
}

export interface DesktopApi {
  /** The app's version, platform and the API base URL. */
  info(): Promise<DesktopInfo>;
  /** Copies the OpenAI base URL to the clipboard; resolves with it. */
  copyApiBaseUrl(): Promise<string>;
  /** Opens the dashboard in the user's browser. */
  openInBrowser(): Promise<void>;
}

export type Invoke = (channel: string) => Promise<unknown>;

/** The name under which the page finds the API: window.labgateDesktop. */
export const EXPOSED_AS = "labgateDesktop";

export function desktopApi(invoke: Invoke): DesktopApi {
  // Each function takes no argument from the page: nothing it sends reaches the main process.
  return Object.freeze({
    info: () => invoke(DESKTOP_CHANNELS.info) as Promise<DesktopInfo>,
    copyApiBaseUrl: () => invoke(DESKTOP_CHANNELS.copyApiBaseUrl) as Promise<string>,
    openInBrowser: async () => void (await invoke(DESKTOP_CHANNELS.openInBrowser)),
  });
}

export function exposeDesktopApi(bridge: { exposeInMainWorld(key: string, api: unknown): void }, invoke: Invoke): void {
  bridge.exposeInMainWorld(EXPOSED_AS, desktopApi(invoke));
}
