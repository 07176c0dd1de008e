// Requests (issue 13 item 5): the request log as a table, filtered and paged on the server
// (GET /admin/requests with keyset cursors), refreshed every 2 s while Live is on; a row
// opens its details and attempts.
import { useState } from "react";
import { HttpError } from "../api.ts";
import { Filters } from "./requests/Filters.tsx";
import { LIVE_INTERVAL_MS, PAGE_SIZE, useRequestsPage } from "./requests/queries.ts";
import { RequestDialog } from "./requests/RequestDialog.tsx";
import { RequestsTable } from "./requests/RequestsTable.tsx";
import type { PagePosition, RequestFilters, RequestRow } from "./requests/types.ts";
import "./requests.css";

const FIRST: PagePosition = { kind: "first" };
const DEFAULT_FILTERS: RequestFilters = { model: "", provider: "", status: "", range: "24h", customFrom: "", customTo: "" };

export function RequestsPage() {
  const [filters, setFilters] = useState<RequestFilters>(DEFAULT_FILTERS);
  const [position, setPosition] = useState<PagePosition>(FIRST);
  /** Pages below the newest one (for "page N"). */
  const [depth, setDepth] = useState(0);
  const [live, setLive] = useState(true);
  const [open, setOpen] = useState<RequestRow | null>(null);
  const page = useRequestsPage(filters, position, live);

  const rows = page.data?.data ?? [];
  const onFirst = position.kind === "first";
  // has_more looks older from the first page and Older pages, newer from a Newer one.
  const olderExists = position.kind === "after" ? rows.length > 0 : page.data?.has_more === true;
  const toFirst = () => {
    setPosition(FIRST);
    setDepth(0);
  };
  const older = () => {
    if (!page.data?.next_before) return;
    setLive(false);
    setPosition({ kind: "before", cursor: page.data.next_before });
    setDepth((d) => d + 1);
  };
  const newer = () => {
    // One page below the newest, or the newest rows beyond this page: the first page (Live can go on there).
    if (depth <= 1 || (position.kind === "after" && page.data?.has_more === false) || !page.data?.next_after) return toFirst();
    setPosition({ kind: "after", cursor: page.data.next_after });
    setDepth((d) => d - 1);
  };
  const changeFilters = (f: RequestFilters) => {
    setFilters(f);
    toFirst();
  };
  const toggleLive = () => {
    if (!live) toFirst();
    setLive(!live);
  };

  const error = page.error instanceof HttpError ? page.error.message : page.error ? "The request log could not be read." : null;

  return (
    <section className="req-page" aria-labelledby="req-title">
      <div className="row req-head">
        <h1 id="req-title">Requests</h1>
        <label className="req-live">
          <input type="checkbox" role="switch" checked={live} onChange={toggleLive} aria-describedby="req-live-help" />
          Live
        </label>
        <span id="req-live-help" className="muted">
          {live ? `The newest ${PAGE_SIZE} are read again every ${LIVE_INTERVAL_MS / 1000} s.` : "Paused: turn Live on to follow new requests."}
        </span>
      </div>
      <Filters value={filters} onChange={changeFilters} />
      {error && (
        <p className="panel bad" role="alert">
          {error}
        </p>
      )}
      {page.isPending ? (
        <p className="muted">Loading the request log…</p>
      ) : rows.length === 0 ? (
        <div className="panel req-empty">
          <p>
            <strong>No requests match.</strong>
          </p>
          <p className="muted">
            {filters.model || filters.provider || filters.status || filters.range !== "all"
              ? "Widen the time range or clear a filter."
              : "Nothing has been logged yet: send a request through the gateway (POST /v1/chat/completions) and it shows here."}
          </p>
        </div>
      ) : (
        <RequestsTable rows={rows} onOpen={setOpen} />
      )}
      <nav className="row req-pager" aria-label="Pages of requests">
        <button type="button" onClick={newer} disabled={onFirst}>
          ← Newer
        </button>
        <span className="muted" data-testid="requests-page-label">
          {onFirst ? "Newest" : `Page ${depth + 1}`} · {rows.length} row{rows.length === 1 ? "" : "s"}
          {page.isFetching && !page.isPending ? " · updating…" : ""}
        </span>
        <button type="button" onClick={older} disabled={!olderExists || !page.data?.next_before}>
          Older →
        </button>
        {!onFirst && (
          <button type="button" onClick={toFirst}>
            Newest
          </button>
        )}
      </nav>
      <RequestDialog row={open} onClose={() => setOpen(null)} />
    </section>
  );
}
