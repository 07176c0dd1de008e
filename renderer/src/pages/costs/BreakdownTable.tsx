// Spend, requests and tokens per provider, model, tier or key over the period.
import { formatCount, formatTokens, formatUsd } from "../../format.ts";
import { per1k } from "./queries.ts";
import type { Breakdown } from "./types.ts";

export function BreakdownTable(props: { rows: Breakdown[]; dimensionLabel: string; totalUsd: number }) {
  return (
    <table aria-label={`Spend by ${props.dimensionLabel.toLowerCase()}`} className="cost-table">
      <thead>
        <tr>
          <th scope="col">{props.dimensionLabel}</th>
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
          <th scope="col">Share of spend</th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={r.name}>
            <th scope="row">{r.name}</th>
            <td className="num">{formatCount(r.requests)}</td>
            <td className="num">{formatTokens(r.prompt_tokens)}</td>
            <td className="num">{formatTokens(r.completion_tokens)}</td>
            <td className="num">{formatUsd(r.cost_usd)}</td>
            <td className="num">{formatUsd(per1k(r))}</td>
            <td>
              <div className="bar cost-share" aria-hidden="true">
                <span style={{ width: `${props.totalUsd > 0 ? (r.cost_usd / props.totalUsd) * 100 : 0}%` }} />
              </div>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
