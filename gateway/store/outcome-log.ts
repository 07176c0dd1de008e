// The request log subscribes to request outcomes: one row per outcome.
import type { RequestOutcome } from "../completion/outcome.ts";
import type { RequestLog } from "./request-log.ts";
import { attemptCount } from "./rollup.ts";

export function logOutcomes(log: RequestLog): (o: RequestOutcome) => void {
  return (o) =>
    log.append({
      id: o.id,
      ts: o.ts,
      tenant: o.tenant,
      operation: o.operation,
      public_model: o.model,
      provider: o.provider,
      upstream_model: o.upstreamModel,
      fallback_depth: o.fallbackDepth,
      is_overflow: o.isOverflow,
      panic: o.panic,
      stream: o.stream,
      status: o.status,
      error_class: o.errorClass,
      prompt_tokens: o.usage?.prompt_tokens ?? null,
      completion_tokens: o.usage?.completion_tokens ?? null,
      cost_usd: o.costUsd,
      ttfb_ms: o.ttfbMs,
      total_ms: o.totalMs,
      overhead_ms: o.overheadMs,
      attempts: o.attempts,
      tier: o.tier,
      attempt_count: attemptCount(o),
      first_provider: o.attempts[0]?.provider ?? null,
    });
}
