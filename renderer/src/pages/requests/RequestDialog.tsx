// One request in a modal <dialog>: what it asked, what answered, and each attempt made on the way.
import { useEffect, useRef } from "react";
import { formatCount, formatFullTime, formatMs, formatUsd } from "../../format.ts";
import { useRequestDetails } from "./queries.ts";
import { StatusBadge } from "./RequestsTable.tsx";
import type { RequestRow } from "./types.ts";

export function RequestDialog(props: { row: RequestRow | null; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  // The list's row shows at once; the server's copy (GET /admin/requests/:id) replaces it when it arrives.
  const details = useRequestDetails(props.row?.id ?? null);
  const r = details.data ?? props.row;

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.row && !d.open) d.showModal();
    if (!props.row && d.open) d.close();
  }, [props.row]);

  return (
    <dialog ref={ref} className="req-dialog" aria-labelledby="req-dialog-title" onClose={props.onClose}>
      {r && (
        <>
          <h2 id="req-dialog-title">
            Request to {r.public_model} <StatusBadge status={r.status} />
          </h2>
          <dl className="req-facts">
            <dt>Id</dt>
            <dd className="mono">{r.id}</dd>
            <dt>Time</dt>
            <dd>{formatFullTime(r.ts)}</dd>
            <dt>Operation</dt>
            <dd>
              {r.operation}
              {r.stream ? " (stream)" : ""}
            </dd>
            <dt>Key</dt>
            <dd>{r.tenant ?? "—"}</dd>
            <dt>Answered by</dt>
            <dd>
              {r.provider ?? "nobody"}
              {r.upstream_model ? <span className="muted"> as {r.upstream_model}</span> : null}
              {r.tier ? <span className="muted"> · tier {r.tier}</span> : null}
              {r.is_overflow ? <span className="badge warn"> overflow</span> : null}
              {r.panic ? <span className="badge bad"> panic</span> : null}
            </dd>
            {r.error_class && (
              <>
                <dt>Error</dt>
                <dd className="bad">{r.error_class}</dd>
              </>
            )}
            <dt>Tokens</dt>
            <dd>
              {formatCount(r.prompt_tokens)} in · {formatCount(r.completion_tokens)} out
            </dd>
            <dt>Cost</dt>
            <dd>{formatUsd(r.cost_usd)}</dd>
            <dt>Timing</dt>
            <dd>
              TTFB {formatMs(r.ttfb_ms)} · total {formatMs(r.total_ms)} · labgate {formatMs(r.overhead_ms)}
            </dd>
          </dl>
          <h3>Attempts ({r.attempts.length})</h3>
          {r.attempts.length === 0 ? (
            <p className="muted">Nothing was tried: the request was refused before routing.</p>
          ) : (
            <table aria-label="Attempts">
              <thead>
                <tr>
                  <th scope="col" className="num">
                    #
                  </th>
                  <th scope="col">Provider</th>
                  <th scope="col">Deployment</th>
                  <th scope="col">Outcome</th>
                  <th scope="col" className="num">
                    Time
                  </th>
                </tr>
              </thead>
              <tbody>
                {r.attempts.map((a, i) => (
                  <tr key={`${a.attempt}-${i}`}>
                    <td className="num">{a.attempt}</td>
                    <td>{a.provider}</td>
                    <td className="mono">{a.deployment}</td>
                    <td>{a.error_class ? <span className="bad">{a.error_class}</span> : <span className="ok">answered</span>}</td>
                    <td className="num">{formatMs(a.ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {details.isError && <p className="warn">Could not read the latest copy of this request; showing the table's.</p>}
          <div className="actions">
            <button type="button" className="primary" onClick={() => ref.current?.close()} autoFocus>
              Close
            </button>
          </div>
        </>
      )}
    </dialog>
  );
}
