// The Lab page's reads. The keys are the shared ones (queries.ts), so live events
// (`gpu`, `servers`, `process`, `model`, `models`) refresh what this page shows.
import { useQuery } from "@tanstack/react-query";
import { useServices } from "../context.tsx";
import { keys } from "../queries.ts";
import type { FoundServerView, GpusResponse, ListResponse, LoadedModelsResponse, ProcessView } from "./lab-types.ts";

export function useGpus() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.gpus, queryFn: () => client.json<GpusResponse>("/admin/lab/gpus") });
}

export function useServers() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.servers, queryFn: () => client.json<ListResponse<FoundServerView>>("/admin/lab/servers") });
}

export function useProcesses() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.processes, queryFn: () => client.json<ListResponse<ProcessView>>("/admin/lab/processes") });
}

export function useLoadedModels() {
  const { client } = useServices();
  return useQuery({ queryKey: keys.models, queryFn: () => client.json<LoadedModelsResponse>("/admin/lab/models") });
}
