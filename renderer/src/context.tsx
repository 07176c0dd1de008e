// What every page reads: the admin client and the live event stream, built once in main.tsx.
import { createContext, useContext, useEffect, useState } from "react";
import type { AdminClient } from "./api.ts";
import type { LiveEvent, LiveEvents, LiveStatus } from "./live.ts";

export interface Services {
  client: AdminClient;
  live: LiveEvents;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error("ServicesContext is missing");
  return s;
}

/** Calls fn for each live event of this type while the component is mounted. */
export function useLiveEvent(type: string, fn: (e: LiveEvent) => void): void {
  const { live } = useServices();
  useEffect(() => live.on(type, fn), [live, type, fn]);
}

export function useLiveStatus(): LiveStatus {
  const { live } = useServices();
  const [status, setStatus] = useState<LiveStatus>(live.status);
  useEffect(() => live.onStatus(setStatus), [live]);
  return status;
}
