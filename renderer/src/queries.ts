// Shared queries: one key per admin resource, so a live event can refresh every view of it.
import { useQuery, type QueryClient } from "@tanstack/react-query";
import { useServices } from "./context.tsx";
import type { LiveEvents } from "./live.ts";
import type { ProvidersResponse } from "./types.ts";

export const keys = {
  providers: ["providers"] as const,
  servers: ["lab", "servers"] as const,
  processes: ["lab", "processes"] as const,
  models: ["lab", "models"] as const,
  gpus: ["lab", "gpus"] as const,
  budgets: ["budgets"] as const,
};

export function useProviders() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.providers, queryFn: () => client.json<ProvidersResponse>("/admin/providers") });
}

/**
 * Live events refresh the queries they make stale. Changes arrive in bursts (a
 * dead upstream fails its breaker, its health and its group's panic at once), so
 * invalidations are coalesced: at most one refetch per resource per 250 ms.
 */
export function wireLiveInvalidation(live: LiveEvents, queries: QueryClient): () => void {
  const pending = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const invalidate = (...queryKeys: (readonly string[])[]) => {
    for (const k of queryKeys) pending.add(JSON.stringify(k));
    timer ??= setTimeout(() => {
      timer = undefined;
      for (const k of pending) void queries.invalidateQueries({ queryKey: JSON.parse(k) as string[] });
      pending.clear();
    }, 250);
  };
  const offs = [
    live.on("snapshot", (e) => {
      const d = e.data as Record<string, unknown>;
      queries.setQueryData(keys.providers, { object: "list", router: d.router, data: d.data, groups: d.groups });
      invalidate(keys.servers, keys.processes, keys.models, keys.gpus, keys.budgets);
    }),
    live.on("provider", () => invalidate(keys.providers, keys.models)),
    live.on("breaker", () => invalidate(keys.providers)),
    live.on("panic", () => invalidate(keys.providers)),
    live.on("models", () => invalidate(keys.providers, keys.models)),
    live.on("model", () => invalidate(keys.models)),
    live.on("process", () => invalidate(keys.processes, keys.providers)),
    live.on("servers", () => invalidate(keys.servers)),
    live.on("budget", () => invalidate(keys.budgets)),
    // The new list, keeping the answer's other fields (nvidia_smi: why the list may be empty).
    live.on("gpu", (e) => queries.setQueryData(keys.gpus, (old: object | undefined) => ({ ...old, object: "list", data: (e.data as { gpus: unknown }).gpus }))),
  ];
  return () => {
    for (const off of offs) off();
    if (timer) clearTimeout(timer);
  };
}
