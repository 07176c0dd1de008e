// The Costs page's reads, and the sums it makes of them.
import { useQuery } from "@tanstack/react-query";
import { useServices } from "../../context.tsx";
import { keys } from "../../queries.ts";
import type { Breakdown, BudgetsAnswer, GateReport, SpendAnswer, SpendDimension, SpendFigures } from "./types.ts";

export type Period = "24h" | "30d";

export const PERIODS: Record<Period, { label: string; bucket: "hour" | "day"; ms: number }> = {
  "24h": { label: "Last 24 hours, by hour", bucket: "hour", ms: 24 * 3_600_000 },
  "30d": { label: "Last 30 days, by day (UTC)", bucket: "day", ms: 30 * 86_400_000 },
};

/** Enough series that a lab's every provider x model x key x tier is there (the answer says when some were left out). */
const SERIES_LIMIT = 1000;

/** Spend split by all four dimensions at once: one read gives every breakdown of the page. */
export function useSpend(period: Period) {
  const { client } = useServices();
  const p = PERIODS[period];
  return useQuery({
    queryKey: ["costs", "spend", period],
    queryFn: ({ signal }) => {
      const q = new URLSearchParams({ bucket: p.bucket, from: String(Date.now() - p.ms), group_by: "provider,model,tenant,tier", limit: String(SERIES_LIMIT) });
      return client.json<SpendAnswer>(`/admin/analytics/spend?${q}`, { signal });
    },
  });
}

export function useBudgets() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.budgets, queryFn: ({ signal }) => client.json<BudgetsAnswer>("/admin/budgets", { signal }) });
}

export function useGate(window: string) {
  const { client } = useServices();
  return useQuery({
    queryKey: ["costs", "gate", window],
    queryFn: ({ signal }) => client.json<GateReport>(`/admin/gate?window=${encodeURIComponent(window)}`, { signal }),
    // The gate reads the whole window in a worker: every 30 s is plenty.
    refetchInterval: 30_000,
  });
}

const zero = (): SpendFigures => ({ cost_usd: 0, requests: 0, prompt_tokens: 0, completion_tokens: 0 });

function addTo(a: SpendFigures, b: SpendFigures): void {
  a.cost_usd += b.cost_usd;
  a.requests += b.requests;
  a.prompt_tokens += b.prompt_tokens;
  a.completion_tokens += b.completion_tokens;
}

/** What an empty key is called in a breakdown. */
const UNKNOWN: Record<SpendDimension, string> = { provider: "(none tried)", model: "(none)", tenant: "(no key)", tier: "(no tier)" };

/** The series summed by one dimension, the largest spend first (then the most requests). */
export function breakdown(answer: SpendAnswer, dim: SpendDimension): Breakdown[] {
  const by = new Map<string, Breakdown>();
  for (const s of answer.series) {
    const name = s.key[dim] ?? UNKNOWN[dim];
    let b = by.get(name);
    if (!b) by.set(name, (b = { name, ...zero(), points: answer.buckets.map(zero) }));
    addTo(b, s.total);
    s.points.forEach((p, i) => addTo(b.points[i]!, p));
  }
  return [...by.values()].sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests || a.name.localeCompare(b.name));
}

export function totalOf(answer: SpendAnswer): SpendFigures {
  const t = zero();
  for (const s of answer.series) addTo(t, s.total);
  return t;
}

/** USD per 1,000 tokens (in and out together, as the budgets count them); null without tokens. */
export function per1k(f: SpendFigures): number | null {
  const tokens = f.prompt_tokens + f.completion_tokens;
  return tokens > 0 ? (f.cost_usd / tokens) * 1000 : null;
}
