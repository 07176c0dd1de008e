// Batches (issue 15 with issue 13): the local batch queue — every batch with its status,
// progress, request counts, profile, creation and deadline, and a Cancel button. Read from
// GET /admin/batches (the admin key, every tenant's batches, in the shapes of OpenAI's Batch
// API); refreshed by the `batch` live events (a batch changes status) and, while a batch
// runs, every second for its progress.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useState } from "react";
import { HttpError } from "../api.ts";
import { ConfirmDialog, type ConfirmRequest } from "../components/ConfirmDialog.tsx";
import { useLiveEvent, useServices } from "../context.tsx";
import { barWidth, formatCount, formatDuration, formatRelative } from "../format.ts";
import "./batches.css";

interface BatchView {
  id: string;
  endpoint: string;
  status: "validating" | "failed" | "in_progress" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled";
  completion_window: string;
  created_at: number;
  expires_at: number | null;
  in_progress_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number } | null;
  metadata: Record<string, string> | null;
  errors: { data?: { message?: string; line?: number | null }[] } | null;
}

interface BatchList {
  data: BatchView[];
  has_more: boolean;
}

const LIMIT = 100;
const RUNNING_REFRESH_MS = 1000;
const ACTIVE = new Set(["validating", "in_progress", "finalizing", "cancelling"]);
const CANCELLABLE = new Set(["validating", "in_progress"]);
const batchesKey = ["batches"] as const;

const STATUS_LABEL: Record<BatchView["status"], string> = {
  validating: "validating",
  in_progress: "in progress",
  finalizing: "finalizing",
  completed: "completed",
  failed: "failed",
  expired: "expired",
  cancelling: "cancelling",
  cancelled: "cancelled",
};

function useBatches() {
  const { client } = useServices();
  const queries = useQueryClient();
  // A batch changed status (created, started, ended): read the list again now.
  useLiveEvent(
    "batch",
    useCallback(() => void queries.invalidateQueries({ queryKey: batchesKey }), [queries]),
  );
  return useQuery({
    queryKey: batchesKey,
    queryFn: () => client.json<BatchList>(`/admin/batches?limit=${LIMIT}`),
    // Progress is not an event: follow it every second while something runs.
    refetchInterval: (q) => (q.state.data?.data.some((b) => ACTIVE.has(b.status)) ? RUNNING_REFRESH_MS : 10_000),
  });
}

export function BatchesPage() {
  const { client } = useServices();
  const queries = useQueryClient();
  const list = useBatches();
  const [asking, setAsking] = useState<BatchView | null>(null);
  const [note, setNote] = useState<{ text: string; bad: boolean } | null>(null);
  const batches = list.data?.data ?? [];
  const now = Date.now() / 1000;

  const confirmCancel = async () => {
    const b = asking;
    setAsking(null);
    if (!b) return;
    setNote({ text: `Cancelling ${b.id}…`, bad: false });
    try {
      const after = await client.post<BatchView>(`/admin/batches/${encodeURIComponent(b.id)}/cancel`);
      setNote({ text: `${b.id} is ${STATUS_LABEL[after.status]}: items not yet run end in its error file.`, bad: false });
    } catch (err) {
      setNote({ text: `${b.id} was not cancelled: ${(err as Error).message}`, bad: true });
    }
    await queries.invalidateQueries({ queryKey: batchesKey });
  };

  const counts = { active: 0, waiting: 0, ended: 0 };
  for (const b of batches) {
    if (b.status === "validating") counts.waiting++;
    else if (ACTIVE.has(b.status)) counts.active++;
    else counts.ended++;
  }
  const error = list.error instanceof HttpError ? list.error.message : list.error ? "The batch queue could not be read." : null;
  const request: ConfirmRequest | null = asking
    ? {
        title: "Cancel this batch?",
        message: (
          <p>
            <span className="mono">{asking.id}</span>: items already answered stay in its output file; the {remaining(asking)} not yet run end in its error file as
            cancelled.
          </p>
        ),
        confirmLabel: "Cancel batch",
        danger: true,
      }
    : null;

  return (
    <section className="batches-page" aria-labelledby="batches-title">
      <div className="row batches-head">
        <h1 id="batches-title">Batches</h1>
        {batches.length > 0 && (
          <span className="muted" data-testid="batches-summary">
            {counts.active} running · {counts.waiting} validating · {counts.ended} ended
            {list.data?.has_more ? ` (newest ${LIMIT} shown)` : ""}
          </span>
        )}
      </div>
      {error && (
        <p className="panel bad" role="alert">
          {error}
        </p>
      )}
      <p className={`batches-note ${note?.bad ? "bad" : "muted"}`} role="status">
        {note?.text ?? ""}
      </p>
      {list.isPending ? (
        <p className="muted">Loading the batch queue…</p>
      ) : batches.length === 0 ? (
        !error && (
          <div className="panel batches-empty">
            <p>
              <strong>No batches yet.</strong>
            </p>
            <p className="muted">
              Submit one with <code>labgate batch submit requests.jsonl</code>, or through OpenAI&apos;s Batch API on this gateway (POST /v1/files, then POST
              /v1/batches). Each shows here with its progress.
            </p>
          </div>
        )
      ) : (
        <div className="batches-table-wrap">
          <table className="batches-table">
            <caption className="visually-hidden">The newest batches of the local queue</caption>
            <thead>
              <tr>
                <th scope="col">Batch</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col">Profile</th>
                <th scope="col">Created</th>
                <th scope="col">Deadline</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {batches.map((b) => (
                <BatchRow key={b.id} batch={b} now={now} onCancel={() => setAsking(b)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog request={request} onConfirm={() => void confirmCancel()} onCancel={() => setAsking(null)} />
    </section>
  );
}

function BatchRow(props: { batch: BatchView; now: number; onCancel: () => void }) {
  const { batch: b, now } = props;
  const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  const done = c.completed + c.failed;
  const share = c.total > 0 ? done / c.total : 0;
  const problem = b.status === "failed" ? b.errors?.data?.[0]?.message : undefined;
  return (
    <tr data-testid={`batch-row-${b.id}`} data-status={b.status}>
      <td>
        <div className="mono">{b.id}</div>
        <div className="muted batches-small">{b.endpoint}</div>
      </td>
      <td>
        <span className={`badge batch-status batch-${b.status}`}>{STATUS_LABEL[b.status]}</span>
        {problem && <div className="bad batches-small batches-problem">{problem}</div>}
      </td>
      {c.total === 0 ? (
        <>
          <td className="muted">{b.status === "validating" ? "reading the input file…" : "no request ran"}</td>
          <td className="num muted">—</td>
        </>
      ) : (
        <>
          <td>
            <div
              className="batch-bar"
              role="progressbar"
              aria-label={`Progress of ${b.id}`}
              aria-valuemin={0}
              aria-valuemax={c.total}
              aria-valuenow={done}
              aria-valuetext={`${done} of ${c.total} done, ${c.failed} failed`}
            >
              <span className="batch-bar-ok" style={{ width: barWidth(c.completed, c.total) }} />
              <span className="batch-bar-failed" style={{ width: barWidth(c.failed, c.total) }} />
            </div>
            <div className="batches-small num-inline">
              {formatCount(done)} / {formatCount(c.total)} · {Math.floor(share * 100)}%
            </div>
          </td>
          <td className="num">
            <span className="ok">{formatCount(c.completed)}</span> ok
            {c.failed > 0 ? (
              <>
                {" · "}
                <span className="bad">{formatCount(c.failed)}</span> failed
              </>
            ) : null}
            <div className="muted batches-small">of {formatCount(c.total)}</div>
          </td>
        </>
      )}
      <td>{b.metadata?.profile ?? <span className="muted">default</span>}</td>
      <td>
        <time dateTime={iso(b.created_at)} title={iso(b.created_at)}>
          {formatRelative(b.created_at * 1000, now * 1000)}
        </time>
        <div className="muted batches-small">window {b.completion_window}</div>
      </td>
      <td>
        <Deadline batch={b} now={now} />
      </td>
      <td>
        {CANCELLABLE.has(b.status) && (
          <button type="button" className="danger" onClick={props.onCancel} aria-label={`Cancel ${b.id}`}>
            Cancel
          </button>
        )}
      </td>
    </tr>
  );
}

function Deadline(props: { batch: BatchView; now: number }) {
  const { batch: b, now } = props;
  const ended = b.completed_at ?? b.failed_at ?? b.expired_at ?? b.cancelled_at;
  if (ended !== null && !ACTIVE.has(b.status)) {
    return (
      <span className="muted">
        ended <time dateTime={iso(ended)} title={iso(ended)}>{formatRelative(ended * 1000, now * 1000)}</time>
      </span>
    );
  }
  if (b.expires_at === null) return <span className="muted">—</span>;
  const left = b.expires_at - now;
  return (
    <time dateTime={iso(b.expires_at)} title={iso(b.expires_at)} className={left < 0 ? "bad" : left < 600 ? "warn" : undefined}>
      {left < 0 ? "due now" : `in ${formatDuration(left * 1000)}`}
    </time>
  );
}

function remaining(b: BatchView): string {
  const c = b.request_counts;
  if (!c || c.total === 0) return "requests";
  const n = c.total - c.completed - c.failed;
  return `${formatCount(n)} request${n === 1 ? "" : "s"}`;
}

const iso = (s: number): string => new Date(s * 1000).toISOString();
