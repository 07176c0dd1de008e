// Each tier's cost per 1k tokens and spend against its budgets, and each provider's daily
// budget. The period's figures come from the spend rollups; the budgets' own figures are
// today's (the budget book counts per local day).
import { formatCount, formatTokens, formatUsd } from "../../format.ts";
import { per1k } from "./queries.ts";
import type { Breakdown, BudgetStatus } from "./types.ts";

function Meter(props: { status: BudgetStatus | undefined; label: string }) {
  const s = props.status;
  if (!s) return <span className="muted">no budget</span>;
  const ratio = s.value === null ? 0 : Math.min(1, s.value / s.limit);
  const tone = s.exceeded ? "bad" : ratio >= 0.8 ? "warn" : "ok";
  return (
    <div className="cost-meter">
      <span>
        {formatUsd(s.value)} <span className="muted">of {formatUsd(s.limit)}</span>{" "}
        <span className={`badge ${tone} bg-${tone}`}>{s.exceeded ? "over" : s.value === null ? "no data" : "within"}</span>
      </span>
      <div className={`bar cost-meter-bar meter-${tone}`} role="meter" aria-label={props.label} aria-valuemin={0} aria-valuemax={s.limit} aria-valuenow={s.value ?? 0}>
        <span style={{ width: `${ratio * 100}%` }} />
      </div>
    </div>
  );
}

export function TierBudgets(props: { tiers: Breakdown[]; budgets: BudgetStatus[] | undefined; periodLabel: string }) {
  const budgets = props.budgets ?? [];
  const find = (kind: BudgetStatus["kind"], name: string, measure: BudgetStatus["measure"]) => budgets.find((b) => b.kind === kind && b.name === name && b.measure === measure);
  const names = new Set(props.tiers.map((t) => t.name));
  for (const b of budgets) if (b.kind === "tier") names.add(b.name);
  const rows = [...names].map((name) => props.tiers.find((t) => t.name === name) ?? { name, cost_usd: 0, requests: 0, prompt_tokens: 0, completion_tokens: 0, points: [] });
  const providers = budgets.filter((b) => b.kind === "provider");
  return (
    <>
      {rows.length === 0 ? (
        <p className="muted">No tiers yet: give deployments a `tier` in the config to see their cost per 1k tokens here.</p>
      ) : (
        <table aria-label="Cost per 1k tokens by tier" className="cost-table">
          <thead>
            <tr>
              <th scope="col">Tier</th>
              <th scope="col" className="num">
                Requests
              </th>
              <th scope="col" className="num">
                Tokens in
              </th>
              <th scope="col" className="num">
                Tokens out
              </th>
              <th scope="col" className="num">
                Spend
              </th>
              <th scope="col" className="num">
                $ / 1k tokens
              </th>
              <th scope="col">$ / 1k tokens today vs budget</th>
              <th scope="col">Spend today vs daily budget</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.name} data-testid={`tier-${t.name}`}>
                <th scope="row">{t.name}</th>
                <td className="num">{formatCount(t.requests)}</td>
                <td className="num">{formatTokens(t.prompt_tokens)}</td>
                <td className="num">{formatTokens(t.completion_tokens)}</td>
                <td className="num">{formatUsd(t.cost_usd)}</td>
                <td className="num">{formatUsd(per1k(t))}</td>
                <td>
                  <Meter status={find("tier", t.name, "usd_per_1k_tokens")} label={`Tier ${t.name}: cost per 1k tokens today against its budget`} />
                </td>
                <td>
                  <Meter status={find("tier", t.name, "daily_usd")} label={`Tier ${t.name}: spend today against its daily budget`} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted cost-note">Tokens, spend and $ / 1k over the period ({props.periodLabel}); budgets: today so far, as the gateway counts them.</p>
      {providers.length > 0 && (
        <table aria-label="Provider budgets" className="cost-table cost-provider-budgets">
          <thead>
            <tr>
              <th scope="col">Provider</th>
              <th scope="col">Spend today vs daily budget</th>
            </tr>
          </thead>
          <tbody>
            {providers.map((b) => (
              <tr key={b.name}>
                <th scope="row">{b.name}</th>
                <td>
                  <Meter status={b} label={`Provider ${b.name}: spend today against its daily budget`} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
