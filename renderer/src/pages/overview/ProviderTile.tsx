// One provider on the overview: health (colour and word), whether it is enabled, its
// breakers and panic, live requests/s, the last minute's error rate and TTFB, what is
// in flight now, and its TTFB over the last hour.
import { useId } from "react";
import { TtfbChart } from "../../components/TtfbChart.tsx";
import type { GroupView, ProviderView } from "../../types.ts";
import type { ProviderTraffic, TileHealth } from "../overview-types.ts";
import { formatMs, formatPercent, formatRate } from "../../format.ts";
import { breakerSummary, providerHealth } from "./health.ts";

const BADGE: Record<TileHealth, string> = { ok: "ok bg-ok", degraded: "warn bg-warn", down: "bad bg-bad", off: "off" };

export interface ProviderTileProps {
  provider: ProviderView;
  groups: GroupView[];
  /** Live: requests/s over the last seconds and failed requests in the last errorWindowS seconds. */
  live: { requestsPerS: number; errors: number } | undefined;
  errorWindowS: number;
  traffic: ProviderTraffic | undefined;
  span: { from: number; to: number; bucketMs: number; recentMs: number; label: string } | undefined;
}

export function ProviderTile({ provider: p, groups, live, errorWindowS: liveErrorWindowS, traffic, span }: ProviderTileProps) {
  // Failed requests lately: the live summaries' (since the page opened) or the history's last two buckets (also before).
  const historyErrors = span ? (traffic?.points ?? []).filter((x) => x.t >= span.to - 2 * span.bucketMs).reduce((n, x) => n + x.errors, 0) : 0;
  const errorWindowS = span ? Math.max(liveErrorWindowS, (2 * span.bucketMs) / 1000) : liveErrorWindowS;
  const verdict = providerHealth(p, groups, { errors: Math.max(live?.errors ?? 0, historyErrors), windowS: errorWindowS });
  const recent = traffic?.recent;
  const panicGroups = groups.filter((g) => g.panic && p.deployments.some((d) => d.model_group === g.name)).map((g) => g.name);
  const recentLabel = span ? `${Math.round(span.recentMs / 60_000)} min` : "1 min";
  // Provider names may hold spaces, which an id reference cannot.
  const headingId = useId();
  return (
    <article className={`panel provider-tile health-${verdict.health}`} data-testid={`provider-tile-${p.name}`} data-health={verdict.health} aria-labelledby={headingId}>
      <header className="provider-tile-head">
        <h3 id={headingId} className="provider-tile-name">
          {p.name}
        </h3>
        <span className={`badge ${BADGE[verdict.health]}`} data-testid="provider-health">
          {verdict.label}
        </span>
      </header>
      <p className="provider-tile-meta muted">
        {p.type}
        {p.source ? ` · ${p.source}` : ""} · {p.enabled ? "enabled" : "disabled"}
      </p>
      {verdict.reasons.length > 0 && (
        <ul className={`provider-tile-reasons ${verdict.health === "off" ? "muted" : verdict.health === "down" ? "bad" : "warn"}`}>
          {verdict.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      <dl className="provider-tile-stats">
        <div>
          <dt title="Requests a second over the last 5 s">Req/s</dt>
          <dd className="num" data-testid="provider-rps">
            {formatRate(live?.requestsPerS ?? 0)}
          </dd>
        </div>
        <div>
          <dt title={`Share of requests that failed in the last ${recentLabel}`}>Errors</dt>
          <dd className="num">
            {recent && recent.requests > 0 ? formatPercent(recent.errors, recent.requests) : "—"}
          </dd>
        </div>
        <div>
          <dt title={`Median time to first byte in the last ${recentLabel}`}>p50 TTFB</dt>
          <dd className="num">{formatMs(recent?.ttfb_p50_ms)}</dd>
        </div>
        <div>
          <dt title={`95th percentile of the time to first byte in the last ${recentLabel}`}>p95 TTFB</dt>
          <dd className="num">{formatMs(recent?.ttfb_p95_ms)}</dd>
        </div>
        <div>
          <dt title="Requests being answered now">In flight</dt>
          <dd className="num">{p.in_flight}</dd>
        </div>
      </dl>
      <p className="provider-tile-foot muted">
        <span data-testid="provider-requests">
          {recent?.requests ?? 0} request{recent?.requests === 1 ? "" : "s"} in the last {recentLabel}
        </span>
        {" · "}breakers: {breakerSummary(p)}
        {" · "}
        {panicGroups.length > 0 ? <span className="warn">panic: {panicGroups.join(", ")}</span> : "no panic"}
      </p>
      {span && <TtfbChart name={p.name} points={traffic?.points ?? []} from={span.from} to={span.to} bucketMs={span.bucketMs} rangeLabel={span.label} />}
    </article>
  );
}
