// What the desktop app knows of the lab: the snapshot that /admin/events sends first,
// kept current by the events that follow (gateway/telemetry/events.ts, gateway/api/events.ts)
// and by the loaded models from GET /admin/lab/models. Pure functions of plain data: the
// tray's menu and icon (tray-model.ts) and the notifications (notifications.ts) read it,
// and tests build it without a gateway or Electron.

/** Provider types that are cloud APIs (the gateway's CLOUD_PROVIDER_TYPES; a test keeps the two equal). */
export const CLOUD_TYPES: ReadonlySet<string> = new Set(["openai", "azure", "anthropic"]);

export type BreakerState = "closed" | "open" | "half_open" | string;
export type ProcessStateName = "stopped" | "starting" | "running" | "stopping" | "backoff" | "failed";

export interface DeploymentState {
  id: string;
  group: string;
  model: string;
  overflow: boolean;
  breaker: BreakerState;
}

export interface ProviderState {
  name: string;
  type: string;
  source: string | null;
  enabled: boolean;
  available: boolean;
  unavailableReason: string | null;
  /** null: not probed yet. */
  healthy: boolean | null;
  healthDetail: string | null;
  deployments: DeploymentState[];
  /** From the last summary (null until traffic was seen). */
  requestsPerS: number;
  ttfbP95Ms: number | null;
}

export interface ProcessState {
  name: string;
  provider: string;
  state: ProcessStateName;
  pid: number | null;
  recentCrashes: number;
  failure: string | null;
  lastReason: string | null;
}

export interface LoadedModel {
  provider: string;
  model: string;
  canUnload: boolean;
}

export interface BudgetState {
  kind: string;
  name: string;
  measure: string;
  limit: number;
  value: number | null;
  exceeded: boolean;
}

export interface LabState {
  /** Whether the event stream is open (false: the gateway is not reachable, or not yet). */
  connected: boolean;
  /** Why it is not, for the tooltip ("starting", "connection refused"...). */
  connectionNote: string | null;
  providers: ProviderState[];
  groups: { name: string; panic: boolean }[];
  processes: ProcessState[];
  budgets: BudgetState[];
  loaded: LoadedModel[];
  requestsPerS: number;
  ttfbP95Ms: number | null;
}

export const emptyLabState = (note: string | null = "starting"): LabState => ({
  connected: false,
  connectionNote: note,
  providers: [],
  groups: [],
  processes: [],
  budgets: [],
  loaded: [],
  requestsPerS: 0,
  ttfbP95Ms: null,
});

type Json = Record<string, unknown>;
const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const list = (v: unknown): Json[] => (Array.isArray(v) ? (v.filter((x) => x && typeof x === "object") as Json[]) : []);

/** One provider as /admin/providers and the snapshot show it (gateway/api/provider-status.ts). */
export function providerFromView(p: Json, previous?: ProviderState): ProviderState {
  const health = p.health && typeof p.health === "object" ? (p.health as Json) : null;
  return {
    name: str(p.name),
    type: str(p.type, "unknown"),
    source: typeof p.source === "string" ? p.source : null,
    enabled: p.enabled !== false,
    available: p.available !== false,
    unavailableReason: typeof p.unavailable_reason === "string" ? p.unavailable_reason : null,
    healthy: health ? health.healthy === true : null,
    healthDetail: health && typeof health.detail === "string" ? health.detail : null,
    deployments: list(p.deployments).map((d) => ({
      id: str(d.id),
      group: str(d.model_group),
      model: str(d.model),
      overflow: d.overflow === true,
      breaker: str(d.breaker_state, "closed"),
    })),
    requestsPerS: previous?.requestsPerS ?? 0,
    ttfbP95Ms: previous?.ttfbP95Ms ?? null,
  };
}

function processFromView(p: Json): ProcessState {
  return {
    name: str(p.name),
    provider: str(p.provider, str(p.name)),
    state: str(p.state, "stopped") as ProcessStateName,
    pid: num(p.pid),
    recentCrashes: num(p.recentCrashes) ?? 0,
    failure: typeof p.failure === "string" ? p.failure : null,
    lastReason: typeof p.lastError === "string" ? p.lastError : null,
  };
}

function budgetFrom(b: Json): BudgetState {
  return { kind: str(b.kind), name: str(b.name), measure: str(b.measure), limit: num(b.limit) ?? 0, value: num(b.value), exceeded: b.exceeded === true };
}

/** The snapshot event: everything starts again from it (loaded models are kept until refetched). */
export function applySnapshot(state: LabState, data: Json): LabState {
  const before = new Map(state.providers.map((p) => [p.name, p]));
  return {
    ...state,
    connected: true,
    connectionNote: null,
    providers: list(data.data).map((p) => providerFromView(p, before.get(str(p.name)))),
    groups: list(data.groups).map((g) => ({ name: str(g.name), panic: g.panic === true })),
    processes: list(data.processes).map(processFromView),
    budgets: list(data.budgets).map(budgetFrom),
  };
}

/** GET /admin/providers (after a provider was added or replaced: the event does not carry its view). */
export function applyProviders(state: LabState, body: Json): LabState {
  const before = new Map(state.providers.map((p) => [p.name, p]));
  return {
    ...state,
    providers: list(body.data).map((p) => providerFromView(p, before.get(str(p.name)))),
    groups: body.groups === undefined ? state.groups : list(body.groups).map((g) => ({ name: str(g.name), panic: g.panic === true })),
  };
}

/** GET /admin/lab/models. */
export function applyLoadedModels(state: LabState, body: Json): LabState {
  return {
    ...state,
    loaded: list(body.data).map((m) => ({ provider: str(m.provider), model: str(m.model), canUnload: m.can_unload === true })),
  };
}

export function disconnected(state: LabState, note: string): LabState {
  return { ...state, connected: false, connectionNote: note };
}

const mapProvider = (state: LabState, name: string, fn: (p: ProviderState) => ProviderState): LabState => ({
  ...state,
  providers: state.providers.map((p) => (p.name === name ? fn(p) : p)),
});

/** One live event applied. Unknown events and malformed data leave the state as it was. */
export function applyEvent(state: LabState, type: string, data: Json): LabState {
  switch (type) {
    case "snapshot":
      return applySnapshot(state, data);
    case "provider": {
      const name = str(data.provider);
      switch (data.change) {
        case "removed":
          return { ...state, providers: state.providers.filter((p) => p.name !== name), loaded: state.loaded.filter((m) => m.provider !== name) };
        case "enabled":
          return mapProvider(state, name, (p) => ({ ...p, enabled: data.enabled === true }));
        case "health":
          return mapProvider(state, name, (p) => ({ ...p, healthy: data.healthy === true, healthDetail: typeof data.detail === "string" ? data.detail : null }));
        default:
          return state; // added / replaced: refetched (see refetchAfter)
      }
    }
    case "breaker":
      return mapProvider(state, str(data.provider), (p) => ({
        ...p,
        deployments: p.deployments.map((d) => (d.id === data.deployment ? { ...d, breaker: str(data.to, d.breaker) } : d)),
      }));
    case "panic":
      return { ...state, groups: state.groups.map((g) => (g.name === data.model ? { ...g, panic: data.panic === true } : g)) };
    case "model":
      if (data.change !== "unloaded") return state;
      return { ...state, loaded: state.loaded.filter((m) => !(m.provider === data.provider && m.model === data.model)) };
    case "process": {
      const name = str(data.name);
      const to = str(data.to) as ProcessStateName;
      return {
        ...state,
        processes: state.processes.map((p) =>
          p.name === name
            ? {
                ...p,
                state: to,
                // A crash puts it in backoff; the gateway's own count arrives with the next snapshot.
                recentCrashes: to === "backoff" ? p.recentCrashes + 1 : p.recentCrashes,
                failure: to === "failed" ? str(data.reason) : null,
                lastReason: typeof data.reason === "string" ? data.reason : p.lastReason,
                pid: to === "stopped" || to === "failed" || to === "backoff" ? null : p.pid,
              }
            : p,
        ),
      };
    }
    case "budget": {
      const b = budgetFrom(data);
      const same = (x: BudgetState) => x.kind === b.kind && x.name === b.name && x.measure === b.measure;
      return { ...state, budgets: state.budgets.some(same) ? state.budgets.map((x) => (same(x) ? b : x)) : [...state.budgets, b] };
    }
    case "summary": {
      const per = data.providers && typeof data.providers === "object" ? (data.providers as Record<string, Json>) : {};
      return {
        ...state,
        requestsPerS: num(data.requests_per_s) ?? 0,
        ttfbP95Ms: num(data.ttfb_p95_ms),
        // A provider without traffic in the last period is at 0 req/s; its p95 is the last one seen.
        providers: state.providers.map((p) => {
          const s = per[p.name];
          return { ...p, requestsPerS: num(s?.requests_per_s) ?? 0, ttfbP95Ms: num(s?.ttfb_p95_ms) ?? p.ttfbP95Ms };
        }),
      };
    }
    default:
      return state;
  }
}

/** What an event does not carry and must be fetched: a new provider's view, the loaded models. */
export function refetchAfter(type: string, data: Json): ("providers" | "models")[] {
  if (type === "snapshot") return ["models"];
  if (type === "provider" && (data.change === "added" || data.change === "replaced")) return ["providers", "models"];
  if (type === "models") return ["models"];
  if (type === "process" && (data.to === "running" || data.to === "stopped")) return ["models"];
  return [];
}

/** Providers the "Pause cloud overflow" switch turns off: cloud APIs and providers whose deployments are all overflow. */
export function isCloudOverflow(p: ProviderState): boolean {
  return CLOUD_TYPES.has(p.type) || (p.deployments.length > 0 && p.deployments.every((d) => d.overflow));
}

export type ProviderKind = "cloud" | "supervised" | "ollama" | "embedded" | "local";

export function providerKind(p: ProviderState, state: LabState): ProviderKind {
  if (state.processes.some((x) => x.provider === p.name)) return "supervised";
  if (CLOUD_TYPES.has(p.type)) return "cloud";
  if (p.type === "ollama") return "ollama";
  if (p.type === "embedded") return "embedded";
  return "local";
}
