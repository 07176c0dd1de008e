// Electron's security checklist (https://www.electronjs.org/docs/latest/tutorial/security)
// as data and pure decisions, so that tests can hold the app to it: isolation, no Node in
// the page, the sandbox; the window only ever shows the gateway's own origin; other links
// open in the user's browser; a Content-Security-Policy on every page; nothing remote is run.
import { UI_CSP } from "../gateway/api/ui-csp.ts";

/** The window's webPreferences (the preload path is added by main.ts). */
export const SECURE_WEB_PREFERENCES = {
  contextIsolation: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  sandbox: true,
  webSecurity: true,
  allowRunningInsecureContent: false,
  experimentalFeatures: false,
  webviewTag: false,
  spellcheck: false,
} as const;

/**
 * The policy the gateway sends with /ui, from the one definition both use
 * (gateway/api/ui-csp.ts). The app adds it to any response of the gateway's origin that has none.
 */
export const DESKTOP_CSP = UI_CSP;

function originOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/** The window may navigate only within the gateway's origin (will-navigate, will-redirect). */
export function navigationAllowed(url: string, gatewayOrigin: string): boolean {
  return originOf(url) === new URL(gatewayOrigin).origin;
}

/**
 * window.open and target=_blank: never a new Electron window. A web link goes to the
 * user's browser; anything else (file:, javascript:, custom schemes) goes nowhere.
 */
export function newWindowDecision(url: string, gatewayOrigin: string): { action: "deny"; openExternally: boolean } {
  const origin = originOf(url);
  return { action: "deny", openExternally: origin !== undefined && origin !== new URL(gatewayOrigin).origin };
}

/** Only pages of the gateway's origin may call the preload's functions. */
export function ipcSenderAllowed(senderUrl: string | undefined, gatewayOrigin: string): boolean {
  return senderUrl !== undefined && navigationAllowed(senderUrl, gatewayOrigin);
}

/** Response headers with the CSP added when the response has none of its own. */
export function withCsp(headers: Record<string, string[] | string>): Record<string, string[] | string> {
  const has = Object.keys(headers).some((k) => k.toLowerCase() === "content-security-policy");
  return has ? headers : { ...headers, "Content-Security-Policy": [DESKTOP_CSP] };
}

/**
 * Permission requests from the page: none but writing to the clipboard (the dashboard's
 * copy buttons); no camera, microphone, location, notifications, clipboard reading...
 */
export function permissionAllowed(permission: string): boolean {
  return permission === "clipboard-sanitized-write";
}
