// The Overview page: the lab's totals for today, then one tile per provider with its
// health, live traffic and TTFB over the last hour. Provider state comes from the shared
// providers query (refreshed by live events), requests/s from the live summaries,
// the last hour from /admin/traffic.
import { StatTile } from "../components/StatTile.tsx";
import { useLiveStatus } from "../context.tsx";
import "./overview.css";
import { formatCount, formatHourMinute, formatMs, formatPercent, formatRate, formatUsd } from "../format.ts";
import { ProviderTile } from "./overview/ProviderTile.tsx";
import { useLiveTraffic, useProvidersEvery2s, useTodayTotals, useTraffic, type LiveTraffic } from "./overview/queries.ts";
import type { TrafficSnapshot } from "./overview-types.ts";

function Totals({ live }: { live: LiveTraffic }) {
  const today = useTodayTotals();
  const t = today.data;
  return (
    <div className="overview-totals" role="group" aria-label="Today's totals">
      <StatTile label="Traffic now" value={`${formatRate(live.total.requestsPerS)} req/s`} detail={live.total.ttfbP50Ms !== null ? `p50 TTFB ${formatMs(live.total.ttfbP50Ms)}` : live.seconds === 0 ? "waiting for the live stream" : `no requests in the last ${live.rateWindowS} s`} testId="total-rate" />
      <StatTile label="Requests today" value={formatCount(t?.requests)} detail="since midnight" testId="total-requests" />
      <StatTile label="Errors today" value={formatCount(t?.errors)} detail={t && t.requests > 0 ? `${formatPercent(t.errors, t.requests)} of requests` : "no requests yet"} testId="total-errors" />
      <StatTile label="Fallbacks today" value={formatCount(t?.fallbacks)} detail={t && t.fallbacks > 0 ? `${formatPercent(t.fallbacksOk, t.fallbacks)} answered` : "none needed"} testId="total-fallbacks" />
      <StatTile label="Spend today" value={formatUsd(t?.spendUsd)} detail="priced deployments only" testId="total-spend" />
      {today.isError && <p className="overview-note bad" role="status">Today's totals could not be read: {today.error.message}</p>}
    </div>
  );
}

/** A chart shows at least this much time, even when the gateway started a moment ago. */
const MIN_CHART_MS = 2 * 60_000;

/**
 * The charts' time span: the last hour, or since the gateway started when that is
 * more recent (nothing before is known, and an hour of blank would hide the few points there are).
 */
function chartSpan(s: TrafficSnapshot) {
  const started = s.since - (s.since % s.bucket_ms);
  const from = Math.max(s.from, Math.min(started, s.to - MIN_CHART_MS));
  const label = from > s.from ? `since ${formatHourMinute(from)}` : "in the last hour";
  return { from, to: s.to, bucketMs: s.bucket_ms, recentMs: s.recent_ms, label };
}

function Providers({ live }: { live: LiveTraffic }) {
  const providers = useProvidersEvery2s();
  const traffic = useTraffic();
  if (providers.isPending) return <p className="muted">Loading providers…</p>;
  if (providers.isError) return <p className="bad">Providers could not be read: {providers.error.message}</p>;
  const { data, groups } = providers.data;
  if (data.length === 0) {
    return (
      <p className="panel muted">
        No providers yet. Add one under <code>providers:</code> in labgate.yaml, or start Ollama, llama.cpp or vLLM on their usual ports: labgate finds them by itself.
      </p>
    );
  }
  const snapshot = traffic.data;
  const span = snapshot ? chartSpan(snapshot) : undefined;
  const byName = new Map(snapshot?.providers.map((p) => [p.provider, p]));
  return (
    <>
      {traffic.isError && <p className="overview-note bad" role="status">The last hour's traffic could not be read ({traffic.error.message}): charts and per-minute figures are missing.</p>}
      <div className="overview-providers">
        {data.map((p) => (
          <ProviderTile key={p.name} provider={p} groups={groups} live={live.providers.get(p.name)} errorWindowS={live.errorWindowS} traffic={byName.get(p.name)} span={span} />
        ))}
      </div>
    </>
  );
}

export function Overview() {
  const status = useLiveStatus();
  const live = useLiveTraffic();
  return (
    <div className="overview">
      <div className="overview-title">
        <h1>Overview</h1>
        <span className={`overview-live ${status === "open" ? "ok" : "muted"}`} role="status">
          {status === "open" ? (
            <>
              <span aria-hidden="true">● </span>live
            </>
          ) : status === "connecting" ? (
            "connecting…"
          ) : (
            "live updates paused"
          )}
        </span>
      </div>
      <Totals live={live} />
      <h2>Providers</h2>
      <Providers live={live} />
    </div>
  );
}
