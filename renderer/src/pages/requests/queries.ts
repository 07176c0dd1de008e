// The Requests page's reads: one page of the log (filters and cursor on the server) and one request's details.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useServices } from "../../context.tsx";
import type { PagePosition, RangePreset, RequestFilters, RequestRow, RequestsPage } from "./types.ts";

export const PAGE_SIZE = 50;
/** How often the first page is read again while Live is on. */
export const LIVE_INTERVAL_MS = 2000;

const PRESET_MS: Record<Exclude<RangePreset, "all" | "custom">, number> = {
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "24h": 24 * 3_600_000,
  "7d": 7 * 24 * 3_600_000,
};

/** The query string of a page: presets count back from the moment of the read, so Live keeps the window moving. */
export function requestsQuery(f: RequestFilters, position: PagePosition, now: number = Date.now()): string {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (f.model) q.set("model", f.model);
  if (f.provider) q.set("provider", f.provider);
  if (f.status) q.set("status", f.status);
  if (f.range === "custom") {
    const from = f.customFrom ? new Date(f.customFrom).getTime() : NaN;
    const to = f.customTo ? new Date(f.customTo).getTime() : NaN;
    if (Number.isFinite(from)) q.set("from", String(from));
    if (Number.isFinite(to)) q.set("to", String(to));
  } else if (f.range !== "all") {
    q.set("from", String(now - PRESET_MS[f.range]));
  }
  if (position.kind === "before") q.set("before", position.cursor);
  if (position.kind === "after") q.set("after", position.cursor);
  return q.toString();
}

export function useRequestsPage(filters: RequestFilters, position: PagePosition, live: boolean) {
  const { client } = useServices();
  return useQuery({
    queryKey: ["requests", "page", filters, position],
    queryFn: ({ signal }) => client.json<RequestsPage>(`/admin/requests?${requestsQuery(filters, position)}`, { signal }),
    // The rows stay while the next page loads (no flash of an empty table).
    placeholderData: keepPreviousData,
    refetchInterval: live && position.kind === "first" ? LIVE_INTERVAL_MS : false,
    // An older page does not change by itself: read it once.
    staleTime: position.kind === "first" ? 1000 : Infinity,
  });
}

export function useRequestDetails(id: string | null) {
  const { client } = useServices();
  return useQuery({
    queryKey: ["requests", "one", id],
    queryFn: ({ signal }) => client.json<RequestRow>(`/admin/requests/${encodeURIComponent(id!)}`, { signal }),
    enabled: id !== null,
    staleTime: Infinity,
    refetchInterval: false,
  });
}
