// Routing strategies: each orders a group's eligible deployments, best first.
// The router tries them in that order, so the order is also the failover order.
import type { StrategyName } from "../config/schema.ts";
import type { DeploymentRuntime } from "./runtime.ts";

export type Random = () => number;

export function orderByStrategy(strategy: StrategyName, candidates: DeploymentRuntime[], random: Random): DeploymentRuntime[] {
  if (candidates.length <= 1) return candidates;
  switch (strategy) {
    case "weighted":
      return weightedShuffle(candidates, random);
    case "priority":
      return candidates; // listed order
    case "least-busy":
      return stableSortBy(candidates, (d) => d.inFlight, random);
    case "latency":
      // Unmeasured deployments go first so every one gets measured.
      return stableSortBy(candidates, (d) => d.ewmaTtfbMs ?? -1, random);
    case "usage":
      return stableSortBy(candidates, (d) => -Math.min(d.limiter.headroom(), d.provider.limiter.headroom()), random);
    case "cost":
      return stableSortBy(candidates, (d) => d.unitCost, random);
  }
}

/** Weighted random order without replacement: the first pick follows the weights exactly. */
export function weightedShuffle(items: DeploymentRuntime[], random: Random): DeploymentRuntime[] {
  const pool = items.slice();
  const out: DeploymentRuntime[] = [];
  while (pool.length > 0) {
    let total = 0;
    for (const d of pool) total += d.weight;
    let idx = 0;
    if (total <= 0) idx = Math.floor(random() * pool.length);
    else {
      let r = random() * total;
      for (idx = 0; idx < pool.length - 1; idx++) {
        r -= pool[idx]!.weight;
        if (r < 0) break;
      }
    }
    out.push(pool[idx]!);
    pool.splice(idx, 1);
  }
  return out;
}

/** Sort ascending by key; ties broken randomly so equal deployments share load. */
function stableSortBy(items: DeploymentRuntime[], key: (d: DeploymentRuntime) => number, random: Random): DeploymentRuntime[] {
  return items
    .map((d) => ({ d, k: key(d), t: random() }))
    .sort((a, b) => a.k - b.k || a.t - b.t)
    .map((x) => x.d);
}
