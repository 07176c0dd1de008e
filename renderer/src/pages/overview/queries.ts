// The Overview page's data: the last hour per provider (GET /admin/traffic, refetched
// every 2 s so the charts move), today's totals (the request log's rollups), and the
// live summaries of the last seconds (the `summary` event, once a second).
import { useQuery } from "@tanstack/react-query";
import { useCallback, useState } from "react";
import { useLiveEvent, useServices } from "../../context.tsx";
import type { LiveEvent } from "../../live.ts";
import { keys } from "../../queries.ts";
import type { ProvidersResponse, SummaryEvent, TrafficView } from "../../types.ts";
import type { ErrorsAnswer, FallbacksAnswer, SpendAnswer, TodayTotals, TrafficSnapshot } from "../overview-types.ts";

export const overviewKeys = {
  traffic: ["overview", "traffic"] as const,
  today: ["overview", "today"] as const,
};

/**
 * The shared providers query, refetched every 2 s while the overview is open: live events
 * refresh it on every change of state, but in-flight counts change without an event.
 */
export function useProvidersEvery2s() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.providers, queryFn: () => client.json<ProvidersResponse>("/admin/providers"), refetchInterval: 2_000 });
}

export function useTraffic() {
  const { client } = useServices();
  return useQuery({ queryKey: overviewKeys.traffic, queryFn: () => client.json<TrafficSnapshot>("/admin/traffic"), refetchInterval: 2_000 });
}

function localMidnight(now: number): number {
  const d = new Date(now);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** Requests, errors, fallbacks and spend since local midnight (the rollups are hourly, so "today" starts at the hour of midnight). */
export function useTodayTotals() {
  const { client } = useServices();
  return useQuery({
    queryKey: overviewKeys.today,
    queryFn: async (): Promise<TodayTotals> => {
      const now = Date.now();
      const range = `from=${localMidnight(now)}&to=${now}&limit=1000`;
      const [spend, errors, fallbacks] = await Promise.all([
        client.json<SpendAnswer>(`/admin/analytics/spend?${range}&group_by=provider`),
        client.json<ErrorsAnswer>(`/admin/analytics/errors?${range}`),
        client.json<FallbacksAnswer>(`/admin/analytics/fallbacks?${range}`),
      ]);
      return {
        requests: spend.series.reduce((n, s) => n + s.total.requests, 0),
        spendUsd: spend.series.reduce((n, s) => n + s.total.cost_usd, 0),
        errors: errors.series.reduce((n, s) => n + s.total.errors, 0),
        fallbacks: fallbacks.data.reduce((n, f) => n + f.count, 0),
        fallbacksOk: fallbacks.data.reduce((n, f) => n + f.success, 0),
      };
    },
    refetchInterval: 5_000,
  });
}

/** Seconds of live summaries kept: requests/s is averaged over the last RATE_S, recent errors looked for over all of them. */
const KEEP_S = 10;
const RATE_S = 5;

export interface LiveTraffic {
  /** Requests a second over the last few seconds, and errors over the last KEEP_S seconds; per provider and for the lab. */
  providers: Map<string, { requestsPerS: number; errors: number }>;
  /** The lab's: requests/s and the newest p50 TTFB over the last rateWindowS seconds, errors over errorWindowS. */
  total: { requestsPerS: number; errors: number; ttfbP50Ms: number | null };
  /** Seconds of summaries behind these figures (0 until the first arrives). */
  seconds: number;
  rateWindowS: number;
  errorWindowS: number;
}

function aggregate(summaries: SummaryEvent[]): LiveTraffic {
  const rate = summaries.slice(-RATE_S);
  const rateS = rate.reduce((n, s) => n + s.period_ms / 1000, 0);
  const names = new Set(summaries.flatMap((s) => Object.keys(s.providers)));
  const providers = new Map<string, { requestsPerS: number; errors: number }>();
  const sum = (list: SummaryEvent[], pick: (v: TrafficView) => number, name?: string) =>
    list.reduce((n, s) => n + pick(name === undefined ? s : (s.providers[name] ?? { requests: 0, errors: 0 } as TrafficView)), 0);
  for (const name of names) {
    providers.set(name, { requestsPerS: rateS > 0 ? sum(rate, (v) => v.requests, name) / rateS : 0, errors: sum(summaries, (v) => v.errors, name) });
  }
  const last = rate.findLast((s) => s.ttfb_p50_ms !== null);
  return {
    providers,
    total: { requestsPerS: rateS > 0 ? sum(rate, (v) => v.requests) / rateS : 0, errors: sum(summaries, (v) => v.errors), ttfbP50Ms: last?.ttfb_p50_ms ?? null },
    seconds: summaries.length,
    rateWindowS: RATE_S,
    errorWindowS: KEEP_S,
  };
}

/** The last KEEP_S summary events, aggregated; updates once a second while the live stream is open. */
export function useLiveTraffic(): LiveTraffic {
  const [summaries, setSummaries] = useState<SummaryEvent[]>([]);
  const onSummary = useCallback((e: LiveEvent) => {
    setSummaries((prev) => [...prev.slice(-(KEEP_S - 1)), e.data as unknown as SummaryEvent]);
  }, []);
  useLiveEvent("summary", onSummary);
  return aggregate(summaries);
}
