// Metrics subscribe to request outcomes: requests, duration, overhead, tokens, cost, panic.
import type { RequestOutcome } from "../completion/outcome.ts";
import type { GatewayMetrics } from "./metrics.ts";

export function countOutcomes(m: GatewayMetrics): (o: RequestOutcome) => void {
  return (o) => {
    // A model nobody serves is user input: keep it out of the metric labels.
    const model = o.unknownModel ? "(unknown)" : o.model;
    // Requests that reached no deployment have no provider and took no upstream time.
    if (o.overheadMs === null) {
      m.child.requests(model, "none", String(o.status)).inc();
      if (o.panic) m.panicRequests.inc({ model });
      return;
    }
    const provider = o.provider ?? "none";
    m.child.requests(model, provider, String(o.status)).inc();
    m.child.duration(model, provider).observe(o.totalMs / 1000);
    m.overhead.observe(Math.max(0, o.overheadMs) / 1000);
    if (o.usage) {
      m.child.tokens(provider, "prompt").inc(o.usage.prompt_tokens);
      m.child.tokens(provider, "completion").inc(o.usage.completion_tokens);
    }
    if (o.costUsd) m.child.cost(provider).inc(o.costUsd);
    if (o.panic) m.panicRequests.inc({ model });
  };
}
