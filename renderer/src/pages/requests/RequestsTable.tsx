// One page of the request log as a table; a row's time is a button that opens its details.
import { formatCount, formatFullTime, formatMs, formatTime, formatUsd } from "../../format.ts";
import { statusTone } from "./status-tone.ts";
import type { RequestRow } from "./types.ts";

export function StatusBadge(props: { status: number }) {
  const tone = statusTone(props.status);
  return <span className={`badge ${tone} bg-${tone}`}>{props.status}</span>;
}

export function RequestsTable(props: { rows: RequestRow[]; onOpen: (row: RequestRow) => void }) {
  const now = Date.now();
  return (
    <div className="req-table-wrap">
      <table className="req-table" aria-label="Requests">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Model</th>
            <th scope="col">Provider</th>
            <th scope="col">Status</th>
            <th scope="col" className="num" title="Fallbacks taken before the answer (0: the first choice answered)">
              Fallback
            </th>
            <th scope="col" className="num">
              Tokens in
            </th>
            <th scope="col" className="num">
              Tokens out
            </th>
            <th scope="col" className="num">
              Cost
            </th>
            <th scope="col" className="num" title="Time to first byte">
              TTFB
            </th>
            <th scope="col" className="num">
              Total
            </th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr key={r.id} data-request-id={r.id} onClick={() => props.onOpen(r)}>
              <td>
                <button type="button" className="req-open" title={formatFullTime(r.ts)} aria-label={`Details of the request at ${formatFullTime(r.ts)}`}>
                  {formatTime(r.ts, now)}
                </button>
              </td>
              <td className="req-model">{r.public_model}</td>
              <td>{r.provider ?? <span className="muted">none</span>}</td>
              <td>
                <StatusBadge status={r.status} />
                {r.error_class && <span className="muted req-error"> {r.error_class}</span>}
              </td>
              <td className={`num${r.fallback_depth > 0 ? " warn" : ""}`}>{r.fallback_depth}</td>
              <td className="num">{formatCount(r.prompt_tokens)}</td>
              <td className="num">{formatCount(r.completion_tokens)}</td>
              <td className="num">{formatUsd(r.cost_usd)}</td>
              <td className="num">{formatMs(r.ttfb_ms)}</td>
              <td className="num">{formatMs(r.total_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
