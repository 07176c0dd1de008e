// Costs (issue 13 item 6): spend per hour (24 h) or per day (30 d) by provider, model, tier
// or key, tokens in and out, each tier's cost per 1k tokens against its budgets, and the
// readiness gate. Sums come from the request log's rollups (GET /admin/analytics/spend).
import { useState } from "react";
import { HttpError } from "../api.ts";
import { BreakdownTable } from "./costs/BreakdownTable.tsx";
import { TierBudgets } from "./costs/Budgets.tsx";
import { GatePanel } from "./costs/GatePanel.tsx";
import { breakdown, per1k, PERIODS, totalOf, useBudgets, useSpend, type Period } from "./costs/queries.ts";
import { SpendChart } from "./costs/SpendChart.tsx";
import type { SpendDimension } from "./costs/types.ts";
import { formatCount, formatTokens, formatUsd } from "../format.ts";
import "./costs.css";

const DIMENSIONS: { value: SpendDimension; label: string }[] = [
  { value: "provider", label: "Provider" },
  { value: "model", label: "Model" },
  { value: "tier", label: "Tier" },
  { value: "tenant", label: "Key" },
];

function Stat(props: { label: string; value: string; testId: string; raw: number }) {
  return (
    <div className="panel cost-stat">
      <div className="muted">{props.label}</div>
      <div className="cost-stat-value" data-testid={props.testId} data-value={props.raw}>
        {props.value}
      </div>
    </div>
  );
}

export function CostsPage() {
  const [period, setPeriod] = useState<Period>("24h");
  const [dim, setDim] = useState<SpendDimension>("provider");
  const spend = useSpend(period);
  const budgets = useBudgets();
  const answer = spend.data;
  const total = answer ? totalOf(answer) : undefined;
  const rows = answer ? breakdown(answer, dim) : [];
  const dimLabel = DIMENSIONS.find((d) => d.value === dim)!.label;
  const periodLabel = PERIODS[period].label;

  return (
    <section className="cost-page" aria-labelledby="cost-title">
      <div className="row cost-head">
        <h1 id="cost-title">Costs</h1>
        <fieldset className="cost-toggle">
          <legend className="visually-hidden">Period</legend>
          {(Object.keys(PERIODS) as Period[]).map((p) => (
            <label key={p} className={period === p ? "on" : undefined}>
              <input type="radio" name="cost-period" value={p} checked={period === p} onChange={() => setPeriod(p)} />
              {p === "24h" ? "24 hours" : "30 days"}
            </label>
          ))}
        </fieldset>
        <span className="muted">{periodLabel}</span>
      </div>

      {spend.error && (
        <p className="panel bad" role="alert">
          {spend.error instanceof HttpError ? spend.error.message : "Spend could not be read."}
        </p>
      )}
      <div className="cost-stats" aria-live="polite">
        <Stat label="Spend" value={total ? formatUsd(total.cost_usd) : "…"} raw={total?.cost_usd ?? 0} testId="costs-total-usd" />
        <Stat label="Requests" value={total ? formatCount(total.requests) : "…"} raw={total?.requests ?? 0} testId="costs-total-requests" />
        <Stat label="Tokens in" value={total ? formatTokens(total.prompt_tokens) : "…"} raw={total?.prompt_tokens ?? 0} testId="costs-total-tokens-in" />
        <Stat label="Tokens out" value={total ? formatTokens(total.completion_tokens) : "…"} raw={total?.completion_tokens ?? 0} testId="costs-total-tokens-out" />
        <Stat
          label="$ / 1k tokens"
          value={total ? formatUsd(per1k(total)) : "…"}
          raw={total ? (per1k(total) ?? 0) : 0}
          testId="costs-per-1k"
        />
      </div>

      <section className="panel" aria-labelledby="spend-title">
        <div className="row cost-section-head">
          <h2 id="spend-title">Spend by {dimLabel.toLowerCase()}</h2>
          <fieldset className="cost-toggle">
            <legend className="visually-hidden">Split spend by</legend>
            {DIMENSIONS.map((d) => (
              <label key={d.value} className={dim === d.value ? "on" : undefined}>
                <input type="radio" name="cost-dimension" value={d.value} checked={dim === d.value} onChange={() => setDim(d.value)} />
                {d.label}
              </label>
            ))}
          </fieldset>
        </div>
        {!answer ? (
          <p className="muted">Loading spend…</p>
        ) : total && total.requests === 0 ? (
          <p className="muted">No requests in this period: traffic through the gateway shows here within seconds.</p>
        ) : (
          <>
            <SpendChart buckets={answer.buckets} bucket={answer.bucket} rows={rows} dimensionLabel={dimLabel} />
            <BreakdownTable rows={rows} dimensionLabel={dimLabel} totalUsd={total?.cost_usd ?? 0} />
            {answer.truncated > 0 && <p className="warn">{answer.truncated} of the smallest series were left out: the sums above miss their share.</p>}
          </>
        )}
      </section>

      <section className="panel" aria-labelledby="tiers-title">
        <h2 id="tiers-title">Cost per 1k tokens by tier</h2>
        {answer && <TierBudgets tiers={breakdown(answer, "tier")} budgets={budgets.data?.data} periodLabel={periodLabel} />}
        {budgets.error && <p className="warn">Budgets could not be read: {budgets.error.message}</p>}
      </section>

      <GatePanel />
    </section>
  );
}
