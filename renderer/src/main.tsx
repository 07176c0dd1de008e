// The composition root of the dashboard: the admin client, the live stream and the query cache.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { AdminClient, HttpError } from "./api.ts";
import { App } from "./App.tsx";
import { ServicesContext } from "./context.tsx";
import { LiveEvents } from "./live.ts";
import { wireLiveInvalidation } from "./queries.ts";
import "./theme.css";

const client = new AdminClient();
const live = new LiveEvents(client);
const queries = new QueryClient({
  defaultOptions: {
    queries: {
      // Live events refresh what changed; this is the floor when nothing says so.
      refetchInterval: 10_000,
      staleTime: 1_000,
      retry: (count, err) => !(err instanceof HttpError && err.status < 500) && count < 2,
      refetchOnWindowFocus: true,
    },
  },
});
wireLiveInvalidation(live, queries);
// The key was given (or the gateway came back): fetch everything again.
client.onKeyNeeded((needed) => {
  if (!needed) {
    void queries.invalidateQueries();
    live.restart();
  }
});
client.onReachable((reachable) => {
  if (reachable) void queries.invalidateQueries();
});
live.start();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queries}>
      <ServicesContext.Provider value={{ client, live }}>
        <App />
      </ServicesContext.Provider>
    </QueryClientProvider>
  </StrictMode>,
);
