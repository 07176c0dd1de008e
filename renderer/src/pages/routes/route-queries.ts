// The Routes page's own query, over the last hour: how many requests fell back per (first
// provider -> provider that answered) (GET /admin/analytics/fallbacks), and which provider
// answered each group's requests (GET /admin/analytics/spend by provider and model), which
// places cross-group fallbacks on the right arrows even where groups share providers.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef } from "react";
import { useLiveEvent, useServices } from "../../context.tsx";
import type { LiveEvent } from "../../live.ts";
import type { AnsweredCount, FallbackCount } from "./route-graph.ts";

export interface FallbacksAnswer {
  object: "analytics.fallbacks";
  /** The counted range, rounded out to whole hours by the request log's hourly rollups (ms since epoch). */
  from: number;
  to: number;
  data: (FallbackCount & { success: number; failure: number; success_rate: number })[];
}

interface SpendAnswer {
  object: "analytics.spend";
  series: { key: { provider?: string | null; model?: string | null }; total: { requests: number } }[];
}

export interface RouteTraffic {
  /** The start of the counted range: the hour the last hour began in (hourly rollups). */
  from: number;
  pairs: FallbackCount[];
  answered: AnsweredCount[];
}

const HOUR_MS = 3_600_000;
/** Soonest refresh after traffic (the analytics query runs in a worker; cheap, but not free). */
const REFRESH_MS = 2_000;
export const trafficKey = ["routes", "traffic"] as const;

export function useRouteTraffic() {
  const { client } = useServices();
  const queries = useQueryClient();
  const query = useQuery({
    queryKey: trafficKey,
    queryFn: async ({ signal }): Promise<RouteTraffic> => {
      const from = Date.now() - HOUR_MS;
      const [fallbacks, spend] = await Promise.all([
        client.json<FallbacksAnswer>(`/admin/analytics/fallbacks?from=${from}&limit=1000`, { signal }),
        client.json<SpendAnswer>(`/admin/analytics/spend?from=${from}&group_by=provider,model&limit=1000`, { signal }),
      ]);
      const answered = spend.series.flatMap((s) => (s.key.model ? [{ group: s.key.model, provider: s.key.provider ?? null, requests: s.total.requests }] : []));
      return { from: fallbacks.from, pairs: fallbacks.data, answered };
    },
    refetchInterval: 15_000,
  });
  // Requests are flowing (the summary each second says so): count again, at most every
  // 2 s, and once more after the last burst so its tail is not left out.
  const trailing = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(trailing.current), []);
  const onSummary = useCallback(
    (e: LiveEvent) => {
      if (((e.data as { requests?: number }).requests ?? 0) === 0 || trailing.current) return;
      const since = Date.now() - (queries.getQueryState(trafficKey)?.dataUpdatedAt ?? 0);
      trailing.current = setTimeout(
        () => {
          trailing.current = undefined;
          void queries.invalidateQueries({ queryKey: trafficKey });
        },
        Math.max(0, REFRESH_MS - since),
      );
    },
    [queries],
  );
  useLiveEvent("summary", onSummary);
  return query;
}
