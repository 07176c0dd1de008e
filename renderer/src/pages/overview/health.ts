// A provider tile's health: one colour and one word, and the reasons behind them.
//   off       the operator disabled it
//   down      it cannot be used: no adapter (a secret missing...) or its health probe failed
//   degraded  it answers, but a breaker is open or half-open, a group it serves is in panic, or it failed requests in the last seconds
//   ok        none of those
import { breakerWord } from "../../format.ts";
import type { GroupView, ProviderView } from "../../types.ts";
import type { TileHealth } from "../overview-types.ts";

export interface HealthVerdict {
  health: TileHealth;
  label: string;
  reasons: string[];
}

export const HEALTH_LABEL: Record<TileHealth, string> = { ok: "Healthy", degraded: "Degraded", down: "Down", off: "Disabled" };

export function providerHealth(p: ProviderView, groups: GroupView[], recent: { errors: number; windowS: number }): HealthVerdict {
  const verdict = (health: TileHealth, reasons: string[]): HealthVerdict => ({ health, label: HEALTH_LABEL[health], reasons });
  if (!p.enabled) return verdict("off", ["Disabled by an operator: it gets no traffic."]);
  if (!p.available) return verdict("down", [p.unavailable_reason ?? "Unavailable."]);
  if (p.health && !p.health.healthy) return verdict("down", [`Health check failed${p.health.detail ? `: ${p.health.detail}` : "."}`]);
  const reasons: string[] = [];
  for (const d of p.deployments) {
    if (d.breaker_state === "open" || d.breaker_state === "half_open") reasons.push(`Breaker ${breakerWord(d.breaker_state)} for ${d.model_group} (${d.model}).`);
  }
  const mine = new Set(p.deployments.map((d) => d.model_group));
  for (const g of groups) if (g.panic && mine.has(g.name)) reasons.push(`Group ${g.name} is in panic: open breakers are ignored.`);
  if (recent.errors > 0) reasons.push(`${recent.errors} failed request${recent.errors === 1 ? "" : "s"} in the last ${recent.windowS} s.`);
  return verdict(reasons.length > 0 ? "degraded" : "ok", reasons);
}

/** Deployments per breaker state, as "2 closed · 1 open". */
export function breakerSummary(p: ProviderView): string {
  if (p.deployments.length === 0) return "no deployments";
  const counts = new Map<string, number>();
  for (const d of p.deployments) counts.set(breakerWord(d.breaker_state), (counts.get(breakerWord(d.breaker_state)) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(" · ");
}
