// What operators see of providers and model groups: /admin/providers, the live
// event stream's snapshot, the dashboard and the tray all show this one view.
import type { RouterConfig } from "../config/schema.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { Router } from "../router/router.ts";

export function providersView(registry: ProviderRegistry, router: Router, routerConfig: Pick<RouterConfig, "max_fallback_depth" | "retries">) {
  const deployments = router.allDeployments();
  return {
    // The router's settings that shape a request's path: the dashboard draws fallback plans
    // (how many steps from the group asked for) and retries from these, not from defaults.
    router: { max_fallback_depth: routerConfig.max_fallback_depth, retries: routerConfig.retries },
    data: registry.list().map((p) => {
      const mine = deployments.filter((d) => d.provider === p);
      const last = registry.lastHealth(p.name);
      return {
        name: p.name,
        type: p.type,
        source: registry.sourceOf(p.name) ?? null,
        enabled: p.enabled,
        available: !p.unavailableReason,
        unavailable_reason: p.unavailableReason ?? null,
        health: last ? { healthy: last.ok, detail: last.detail, checked_at: new Date(last.at).toISOString(), latency_ms: last.latencyMs } : null,
        in_flight: p.inFlight,
        requests: mine.reduce((n, d) => n + d.requests, 0),
        failures: mine.reduce((n, d) => n + d.failures, 0),
        deployments: mine.map((d) => ({
          id: d.id,
          model_group: d.group,
          model: d.upstreamModel,
          tier: d.tier ?? null,
          overflow: d.overflow,
          weight: d.weight,
          breaker_state: d.breaker.state,
          error_rate: d.breaker.errorRate(),
          in_flight: d.inFlight,
          ewma_ttfb_ms: d.ewmaTtfbMs ?? null,
          requests: d.requests,
          failures: d.failures,
        })),
      };
    }),
    // Per model group: a group in panic ignores its open breakers (router.circuit_breaker.panic_threshold).
    groups: router.listGroups().map((g) => {
      const h = router.groupHealth(g);
      return {
        name: g.name,
        strategy: g.strategy,
        discovered: g.discovered,
        fallbacks: g.fallbacks,
        panic: h.panic,
        enabled_deployments: h.enabled,
        breaker_not_open: h.eligible,
        deployments: g.deployments.length,
      };
    }),
  };
}
