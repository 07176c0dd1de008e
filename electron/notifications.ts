// Desktop notifications for what an operator must know without looking: a provider went
// down, a supervised server is crash-looping, a budget was crossed. A flapping provider
// must not bury the desktop in notices: each subject speaks at most once per `perKeyMs`,
// and all of them together at most `burst` times per `windowMs`.
import type { LabState } from "./lab-state.ts";

export interface LabNotice {
  /** What it is about (one rate limit each): "provider-down:openai", "crash-loop:llama", "budget:tier/cloud/daily_usd". */
  key: string;
  title: string;
  body: string;
}

type Json = Record<string, unknown>;

/** Crashes within the supervisor's window from which a restarting server counts as crash-looping. */
export const CRASH_LOOP_CRASHES = 2;

/** The notice an event deserves, judged against the state before it; undefined for most. */
export function noticeFor(before: LabState, type: string, data: Json): LabNotice | undefined {
  if (type === "provider" && data.change === "health" && data.healthy === false) {
    const name = String(data.provider);
    const p = before.providers.find((x) => x.name === name);
    // Only a change: a provider already known to be down, or one turned off, says nothing new.
    if (!p || !p.enabled || p.healthy === false) return undefined;
    return { key: `provider-down:${name}`, title: `${name} is down`, body: typeof data.detail === "string" && data.detail ? data.detail : "Its health check failed." };
  }
  if (type === "process") {
    const name = String(data.name);
    const p = before.processes.find((x) => x.name === name);
    const reason = typeof data.reason === "string" ? data.reason : "";
    if (data.to === "failed" && p?.state !== "failed") {
      return { key: `crash-loop:${name}`, title: `${name} stopped restarting`, body: reason || "It crashed too often; start it again from the tray." };
    }
    if (data.to === "backoff" && (p?.recentCrashes ?? 0) + 1 >= CRASH_LOOP_CRASHES) {
      return { key: `crash-loop:${name}`, title: `${name} keeps crashing`, body: reason || "labgate is restarting it." };
    }
    return undefined;
  }
  if (type === "budget" && data.exceeded === true) {
    const measure = data.measure === "usd_per_1k_tokens" ? "$ per 1k tokens" : "daily spend";
    const value = typeof data.value === "number" ? data.value.toFixed(2) : "?";
    return {
      key: `budget:${String(data.kind)}/${String(data.name)}/${String(data.measure)}`,
      title: `Budget crossed: ${String(data.name)}`,
      body: `${measure} ${value} over the limit of ${String(data.limit)}`,
    };
  }
  return undefined;
}

export class NoticeLimiter {
  private readonly perKeyMs: number;
  private readonly windowMs: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly lastByKey = new Map<string, number>();
  private sent: number[] = [];

  constructor(opts: { perKeyMs?: number; windowMs?: number; burst?: number; now?: () => number } = {}) {
    this.perKeyMs = opts.perKeyMs ?? 10 * 60_000;
    this.windowMs = opts.windowMs ?? 60_000;
    this.burst = opts.burst ?? 3;
    this.now = opts.now ?? Date.now;
  }

  /** Whether this notice may be shown now (and, if so, counts it). */
  allow(n: LabNotice): boolean {
    const t = this.now();
    const last = this.lastByKey.get(n.key);
    if (last !== undefined && t - last < this.perKeyMs) return false;
    this.sent = this.sent.filter((at) => t - at < this.windowMs);
    if (this.sent.length >= this.burst) return false;
    this.sent.push(t);
    this.lastByKey.set(n.key, t);
    return true;
  }
}
