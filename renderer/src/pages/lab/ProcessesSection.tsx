// Supervised processes: the servers labgate launches itself (providers with
// `launch:`), their state, and Start / Stop / Restart; each can open a live log.
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useServices } from "../../context.tsx";
import { keys } from "../../queries.ts";
import { formatDuration } from "../../format.ts";
import { useProcesses } from "../lab-queries.ts";
import type { ProcessState, ProcessView } from "../lab-types.ts";
import { useLabActions } from "./actions.tsx";
import { ProcessLog } from "./ProcessLog.tsx";
import { QueryProblem } from "./QueryProblem.tsx";
import { useNow } from "./useNow.ts";

const STATE_CLASS: Record<ProcessState, string> = {
  running: "ok bg-ok",
  starting: "warn bg-warn",
  stopping: "warn bg-warn",
  backoff: "warn bg-warn",
  failed: "bad bg-bad",
  stopped: "off",
};

const STATE_TEXT: Record<ProcessState, string> = {
  running: "running",
  starting: "starting",
  stopping: "stopping",
  backoff: "restarting soon",
  failed: "failed",
  stopped: "stopped",
};

type Verb = "start" | "stop" | "restart";

const VERBS: Record<Verb, { label: string; pending: string; danger: boolean; explain: (p: ProcessView) => string }> = {
  start: {
    label: "Start",
    pending: "Starting",
    danger: false,
    explain: (p) => `labgate starts ${p.command.split("/").pop()} and routes traffic to ${p.provider} once it answers its health check.`,
  },
  stop: {
    label: "Stop",
    pending: "Stopping",
    danger: true,
    explain: (p) =>
      `Requests in flight to ${p.provider} are cut off and new ones go to other deployments${p.on_demand ? ", or start it again on demand" : ""}. The memory it holds is freed.`,
  },
  restart: {
    label: "Restart",
    pending: "Restarting",
    danger: true,
    explain: (p) => `${p.name} stops (requests in flight are cut off) and starts again; ${p.provider} takes traffic again once it answers.`,
  },
};

function allowed(verb: Verb, state: ProcessState): boolean {
  if (verb === "start") return state === "stopped" || state === "failed" || state === "backoff";
  if (verb === "stop") return state !== "stopped" && state !== "failed" && state !== "stopping";
  return state === "running" || state === "failed" || state === "backoff";
}

function Uptime({ p, now }: { p: ProcessView; now: number }) {
  const since = Date.parse(p.since);
  if (p.state === "running") return <span title={`running since ${new Date(since).toLocaleString()}`}>{formatDuration(now - since)}</span>;
  return <span className="muted">{p.state === "stopped" || p.state === "failed" ? `— (${p.state} ${formatDuration(now - since)} ago)` : "—"}</span>;
}

function ProcessRow(props: { p: ProcessView; now: number; logOpen: boolean; toggleLog: () => void }) {
  const { p, now, logOpen, toggleLog } = props;
  const { client } = useServices();
  const queries = useQueryClient();
  const { ask, busy } = useLabActions();
  const act = (verb: Verb) => {
    const v = VERBS[verb];
    ask({
      key: `process:${p.name}`,
      title: `${v.label} ${p.name}?`,
      message: <p>{v.explain(p)}</p>,
      confirmLabel: v.label,
      danger: v.danger,
      pending: `${v.pending} ${p.name}…`,
      failure: `Could not ${verb} ${p.name}`,
      run: async () => {
        try {
          const after = await client.post<ProcessView>(`/admin/lab/processes/${encodeURIComponent(p.name)}/${verb}`);
          return `${p.name} is ${STATE_TEXT[after.state] ?? after.state}${after.pid ? ` (pid ${after.pid})` : ""}.`;
        } finally {
          // A failed start changed the state too (to failed).
          void queries.invalidateQueries({ queryKey: keys.processes });
          void queries.invalidateQueries({ queryKey: keys.providers });
        }
      },
    });
  };
  const working = busy(`process:${p.name}`);
  const problem = p.failure ?? p.lastError;
  return (
    <tr data-testid={`process-${p.name}`}>
      <th scope="row">
        <span className="mono">{p.name}</span>
        {p.on_demand && <span className="muted lab-small"> on demand</span>}
        {/* The command, not its arguments: a config may carry a key there (--api-key …). */}
        <div className="muted lab-small mono lab-wrap">
          {p.command.split(/[\\/]/).pop()} · {p.base_url}
        </div>
      </th>
      <td>
        <span className={`badge ${STATE_CLASS[p.state] ?? ""}`} data-testid={`process-state-${p.name}`} data-state={p.state}>
          {STATE_TEXT[p.state] ?? p.state}
        </span>
        {problem && p.state !== "running" && <div className="bad lab-small lab-wrap">{problem}</div>}
      </td>
      <td className="num mono">{p.pid ?? "—"}</td>
      <td className="num">
        {p.restarts}
        {p.recentCrashes > 0 && <div className="warn lab-small">{p.recentCrashes} recent crash{p.recentCrashes === 1 ? "" : "es"}</div>}
      </td>
      <td>
        <Uptime p={p} now={now} />
      </td>
      <td>
        <div className="lab-buttons" role="group" aria-label={`Control ${p.name}`}>
          {(["start", "stop", "restart"] as const).map((verb) => (
            // aria-disabled, not disabled: a button that just did its work (Stop) keeps the focus.
            <button
              key={verb}
              type="button"
              aria-disabled={working || !allowed(verb, p.state) || undefined}
              onClick={() => allowed(verb, p.state) && act(verb)}
              aria-label={`${VERBS[verb].label} ${p.name}`}
            >
              {VERBS[verb].label}
            </button>
          ))}
          <button
            type="button"
            className="lab-log-toggle"
            aria-expanded={logOpen}
            aria-controls={`process-log-${p.name}`}
            onClick={toggleLog}
            aria-label={`Log of ${p.name}`}
          >
            Log
          </button>
        </div>
      </td>
    </tr>
  );
}

export function ProcessesSection() {
  const q = useProcesses();
  const now = useNow(1000);
  const [openLogs, setOpenLogs] = useState<string[]>([]);
  const processes = q.data?.data ?? [];
  const toggle = (name: string) => setOpenLogs((open) => (open.includes(name) ? open.filter((n) => n !== name) : [...open, name]));
  return (
    <section aria-labelledby="lab-processes" className="lab-section">
      <h2 id="lab-processes">Supervised processes</h2>
      <QueryProblem query={q} what="the supervised processes" />
      {q.isPending ? (
        <p className="muted">Reading processes…</p>
      ) : processes.length === 0 ? (
        <div className="panel lab-empty">
          <p>
            <strong>labgate supervises no processes.</strong>
          </p>
          <p className="muted">
            Give a provider a <code>launch:</code> block (command, args) in the config and labgate starts its server, waits for it to answer, restarts it when it
            crashes and shows it here.
          </p>
        </div>
      ) : (
        <>
          <div className="lab-table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Process</th>
                  <th scope="col">State</th>
                  <th scope="col" className="num">
                    PID
                  </th>
                  <th scope="col" className="num">
                    Restarts
                  </th>
                  <th scope="col">Uptime</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {processes.map((p) => (
                  <ProcessRow key={p.name} p={p} now={now} logOpen={openLogs.includes(p.name)} toggleLog={() => toggle(p.name)} />
                ))}
              </tbody>
            </table>
          </div>
          {openLogs
            .filter((n) => processes.some((p) => p.name === n))
            .map((n) => (
              <div key={n} id={`process-log-${n}`}>
                <ProcessLog name={n} onClose={() => toggle(n)} />
              </div>
            ))}
        </>
      )}
    </section>
  );
}
