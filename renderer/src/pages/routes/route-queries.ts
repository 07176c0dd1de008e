// The Routes page's own query: how many requests fell back, per (first provider ->
// provider that answered), over the last hour (GET /admin/analytics/fallbacks).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef } from "react";
import { useLiveEvent, useServices } from "../../context.tsx";
import type { LiveEvent } from "../../live.ts";
import type { FallbackCount } from "./route-graph.ts";

export interface FallbacksAnswer {
  object: "analytics.fallbacks";
  /** The counted range, rounded out to whole hours by the request log's hourly rollups (ms since epoch). */
  from: number;
  to: number;
  data: (FallbackCount & { success: number; failure: number; success_rate: number })[];
}

const HOUR_MS = 3_600_000;
/** Soonest refresh after traffic (the analytics query runs in a worker; cheap, but not free). */
const REFRESH_MS = 2_000;
export const fallbacksKey = ["routes", "fallbacks"] as const;

export function useFallbackCounts() {
  const { client } = useServices();
  const queries = useQueryClient();
  const query = useQuery({
    queryKey: fallbacksKey,
    queryFn: ({ signal }) => client.json<FallbacksAnswer>(`/admin/analytics/fallbacks?from=${Date.now() - HOUR_MS}`, { signal }),
    refetchInterval: 15_000,
  });
  // Requests are flowing (the summary each second says so): count again, at most every
  // 2 s, and once more after the last burst so its tail is not left out.
  const trailing = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(trailing.current), []);
  const onSummary = useCallback(
    (e: LiveEvent) => {
      if (((e.data as { requests?: number }).requests ?? 0) === 0 || trailing.current) return;
      const since = Date.now() - (queries.getQueryState(fallbacksKey)?.dataUpdatedAt ?? 0);
      trailing.current = setTimeout(
        () => {
          trailing.current = undefined;
          void queries.invalidateQueries({ queryKey: fallbacksKey });
        },
        Math.max(0, REFRESH_MS - since),
      );
    },
    [queries],
  );
  useLiveEvent("summary", onSummary);
  return query;
}
