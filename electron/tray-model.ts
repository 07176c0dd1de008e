// The tray as a pure function of the lab's state: which icon (healthy / degraded / down),
// a one-line tooltip and the menu as plain objects. main.ts turns the objects into
// Electron MenuItems and each item's `action` into an admin API call; tests and the
// README's picture read the same objects.
import { isCloudOverflow, providerKind, type LabState, type ProcessState, type ProviderState } from "./lab-state.ts";

export type LabHealth = "healthy" | "degraded" | "down";

export type TrayAction =
  | { kind: "set-provider-enabled"; provider: string; enabled: boolean }
  | { kind: "process"; name: string; op: "start" | "stop" | "restart" }
  | { kind: "unload"; provider: string; model: string }
  | { kind: "reset-breakers"; deployments: string[] }
  | { kind: "pause-cloud"; pause: boolean }
  | { kind: "open-dashboard" }
  | { kind: "copy-api-base" }
  | { kind: "start-at-login"; enable: boolean }
  | { kind: "restart-gateway" }
  | { kind: "quit" };

export interface TrayMenuItem {
  /** Stable across rebuilds (Electron's Menu.getMenuItemById, tests). */
  id: string;
  label: string;
  type: "normal" | "separator" | "checkbox" | "submenu";
  enabled: boolean;
  checked?: boolean;
  submenu?: TrayMenuItem[];
  action?: TrayAction;
}

export interface TrayModel {
  icon: LabHealth;
  tooltip: string;
  menu: TrayMenuItem[];
}

export interface TrayOptions {
  /** The OpenAI base URL clients use (http://127.0.0.1:4000/v1). */
  apiBase: string;
  /** Cloud providers are turned off by the app's "Pause cloud overflow". */
  cloudPaused: boolean;
  startAtLogin: boolean;
  /** Linux has no login item API in Electron: the item is shown disabled there. */
  startAtLoginSupported: boolean;
  /** The app's own gateway crashed too often and is no longer restarted by itself: offer to start it again. */
  gatewayGaveUp?: boolean;
}

/** Windows cuts tray tooltips at 127 characters. */
export const TOOLTIP_MAX = 127;

const isOpen = (breaker: string): boolean => breaker === "open";

/** A provider that counts as down: enabled, and unavailable or failing its health check. */
function providerDown(p: ProviderState): boolean {
  return p.enabled && (!p.available || p.healthy === false);
}

/** A provider that could answer a request now. */
function canServe(p: ProviderState): boolean {
  return p.enabled && p.available && p.healthy !== false && (p.deployments.length === 0 || p.deployments.some((d) => !isOpen(d.breaker)));
}

/** The lab's health and, when it is not healthy, why (most important first). */
export function assess(state: LabState): { health: LabHealth; problems: string[] } {
  if (!state.connected) return { health: "down", problems: [state.connectionNote ?? "gateway not reachable"] };
  if (!state.providers.some(canServe)) {
    return { health: "down", problems: [state.providers.length === 0 ? "no providers configured" : "no provider can serve"] };
  }
  const problems: string[] = [];
  for (const p of state.providers) if (providerDown(p)) problems.push(`${p.name} down`);
  for (const x of state.processes) {
    if (x.state === "failed") problems.push(`${x.name} failed`);
    else if (x.state === "backoff") problems.push(`${x.name} crashed, restarting`);
  }
  for (const p of state.providers) {
    const open = p.deployments.filter((d) => isOpen(d.breaker));
    if (p.enabled && open.length > 0) problems.push(`breaker open on ${p.name}`);
  }
  for (const g of state.groups) if (g.panic) problems.push(`panic in ${g.name}`);
  for (const b of state.budgets) if (b.exceeded) problems.push(`budget ${b.name} crossed`);
  return { health: problems.length > 0 ? "degraded" : "healthy", problems: [...new Set(problems)] };
}

const rate = (perS: number): string => `${perS >= 10 ? perS.toFixed(0) : perS.toFixed(1)} req/s`;
const ms = (v: number | null): string => (v === null ? "–" : `${Math.round(v)} ms`);
const clip = (s: string, n: number): string => (s.length <= n ? s : s.slice(0, n - 1) + "…");

export function tooltip(state: LabState, health: LabHealth, problems: string[]): string {
  let line: string;
  if (health === "healthy") {
    const n = state.providers.filter((p) => p.enabled).length;
    line = `labgate: healthy · ${n} provider${n === 1 ? "" : "s"} · ${rate(state.requestsPerS)}`;
  } else {
    const shown = problems.slice(0, 2).join(", ");
    line = `labgate: ${health}: ${shown}${problems.length > 2 ? ` (+${problems.length - 2} more)` : ""}`;
  }
  return clip(line, TOOLTIP_MAX);
}

/** A provider's one-line state: health, p95 TTFB, requests/s. */
export function statusLine(p: ProviderState, process: ProcessState | undefined): string {
  let health: string;
  if (!p.enabled) health = "disabled";
  else if (!p.available) health = `unavailable: ${p.unavailableReason ?? "?"}`;
  else if (process && process.state !== "running") health = process.state === "failed" ? "failed" : process.state;
  else if (p.healthy === false) health = `down${p.healthDetail ? `: ${p.healthDetail}` : ""}`;
  else if (p.deployments.some((d) => isOpen(d.breaker))) health = "breaker open";
  else if (p.healthy === null) health = "not checked yet";
  else health = "healthy";
  return `${clip(health, 48)} · p95 TTFB ${ms(p.ttfbP95Ms)} · ${rate(p.requestsPerS)}`;
}

/** The mark before a provider's name: ✓ healthy, ⚠ degraded, ✕ down, – off. */
function mark(p: ProviderState, process: ProcessState | undefined): string {
  if (!p.enabled) return "–";
  if (providerDown(p) || process?.state === "failed") return "✕";
  if (p.healthy === null || (process && process.state !== "running") || p.deployments.some((d) => isOpen(d.breaker))) return "⚠";
  return "✓";
}

const separator = (id: string): TrayMenuItem => ({ id, label: "", type: "separator", enabled: true });
const info = (id: string, label: string): TrayMenuItem => ({ id, label, type: "normal", enabled: false });

function providerSubmenu(p: ProviderState, state: LabState): TrayMenuItem {
  const id = `provider:${p.name}`;
  const kind = providerKind(p, state);
  const process = state.processes.find((x) => x.provider === p.name);
  const items: TrayMenuItem[] = [info(`${id}:status`, statusLine(p, process))];
  if (p.enabled && p.healthy === false && p.healthDetail) items.push(info(`${id}:detail`, clip(p.healthDetail, 72)));
  items.push({
    id: `${id}:enabled`,
    label: "Enabled",
    type: "checkbox",
    enabled: true,
    checked: p.enabled,
    action: { kind: "set-provider-enabled", provider: p.name, enabled: !p.enabled },
  });
  const open = p.deployments.filter((d) => isOpen(d.breaker)).map((d) => d.id);
  if (open.length > 0) {
    items.push({ id: `${id}:reset`, label: `Reset circuit breaker${open.length > 1 ? "s" : ""}`, type: "normal", enabled: true, action: { kind: "reset-breakers", deployments: open } });
  }
  if (process) {
    const s = process.state;
    items.push(separator(`${id}:sep-process`));
    items.push(info(`${id}:process`, `Server: ${s}${process.pid !== null && s === "running" ? ` (pid ${process.pid})` : ""}${s === "failed" && process.failure ? `: ${clip(process.failure, 48)}` : ""}`));
    const op = (o: "start" | "stop" | "restart", label: string, enabled: boolean): TrayMenuItem => ({
      id: `${id}:${o}`,
      label,
      type: "normal",
      enabled,
      action: { kind: "process", name: process.name, op: o },
    });
    items.push(op("start", "Start", s === "stopped" || s === "failed"));
    items.push(op("stop", "Stop", s === "running" || s === "starting" || s === "backoff"));
    items.push(op("restart", "Restart", s === "running" || s === "failed" || s === "backoff"));
  }
  const loaded = state.loaded.filter((m) => m.provider === p.name);
  if (loaded.length > 0) {
    items.push(separator(`${id}:sep-models`));
    for (const m of loaded) {
      items.push(
        m.canUnload
          ? { id: `${id}:unload:${m.model}`, label: `Unload ${m.model}`, type: "normal", enabled: true, action: { kind: "unload", provider: p.name, model: m.model } }
          : info(`${id}:loaded:${m.model}`, `${m.model} (loaded; stop the server to free it)`),
      );
    }
  } else if (kind === "ollama" || kind === "embedded") {
    items.push(separator(`${id}:sep-models`));
    items.push(info(`${id}:no-models`, "No model loaded"));
  }
  return { id, label: `${mark(p, process)} ${p.name} (${p.type})`, type: "submenu", enabled: true, submenu: items };
}

export function trayModel(state: LabState, opts: TrayOptions): TrayModel {
  const { health, problems } = assess(state);
  const menu: TrayMenuItem[] = [];
  const headline = health === "healthy" ? "labgate: all healthy" : `labgate: ${health}${problems[0] ? ` (${clip(problems[0], 48)})` : ""}`;
  menu.push(info("headline", headline));
  if (opts.gatewayGaveUp) menu.push({ id: "restart-gateway", label: "Start the gateway again", type: "normal", enabled: true, action: { kind: "restart-gateway" } });
  if (state.connected) {
    menu.push(separator("sep-providers"));
    if (state.providers.length === 0) menu.push(info("no-providers", "No providers"));
    for (const p of state.providers) menu.push(providerSubmenu(p, state));
  }
  menu.push(separator("sep-actions"));
  const hasCloud = state.providers.some(isCloudOverflow);
  menu.push({
    id: "pause-cloud",
    label: "Pause cloud overflow",
    type: "checkbox",
    // Un-pausing stays possible whatever the lab shows; pausing needs a cloud provider to pause.
    enabled: state.connected && (opts.cloudPaused || hasCloud),
    checked: opts.cloudPaused,
    action: { kind: "pause-cloud", pause: !opts.cloudPaused },
  });
  menu.push({ id: "open-dashboard", label: "Open dashboard", type: "normal", enabled: true, action: { kind: "open-dashboard" } });
  menu.push({ id: "copy-api-base", label: `Copy API base URL (${opts.apiBase})`, type: "normal", enabled: true, action: { kind: "copy-api-base" } });
  menu.push({
    id: "start-at-login",
    label: "Start at login",
    type: "checkbox",
    enabled: opts.startAtLoginSupported,
    checked: opts.startAtLogin,
    action: { kind: "start-at-login", enable: !opts.startAtLogin },
  });
  menu.push(separator("sep-quit"));
  menu.push({ id: "quit", label: "Quit labgate", type: "normal", enabled: true, action: { kind: "quit" } });
  return { icon: health, tooltip: tooltip(state, health, problems), menu };
}

/** Equal models need no rebuild (menus rebuilt while open close on some platforms). */
export function sameModel(a: TrayModel | undefined, b: TrayModel): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
