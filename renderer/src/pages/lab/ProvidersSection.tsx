// Providers: an on/off switch per provider (a disabled provider gets no new
// requests; its groups use their other deployments) and circuit-breaker resets,
// per deployment and for all.
import { useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";
import { useLiveEvent, useServices } from "../../context.tsx";
import type { LiveEvent } from "../../live.ts";
import { keys, useProviders } from "../../queries.ts";
import { breakerWord, formatCount, formatFraction } from "../../format.ts";
import type { BreakerState, DeploymentView, ProviderView } from "../../types.ts";
import { useLabActions } from "./actions.tsx";
import { QueryProblem } from "./QueryProblem.tsx";

function Health({ p }: { p: ProviderView }) {
  if (!p.enabled) return <span className="badge off">off</span>;
  if (!p.available) return <span className="badge bad bg-bad" title={p.unavailable_reason ?? undefined}>unavailable</span>;
  if (!p.health) return <span className="badge off">not checked yet</span>;
  return p.health.healthy ? (
    <span className="badge ok bg-ok" title={p.health.detail}>healthy</span>
  ) : (
    <span className="badge bad bg-bad" title={p.health.detail}>unhealthy</span>
  );
}

const BREAKER_CLASS: Record<BreakerState, string> = { closed: "ok", open: "bad bg-bad", half_open: "warn bg-warn" };

function useRefreshProviders() {
  const queries = useQueryClient();
  return () => void queries.invalidateQueries({ queryKey: keys.providers });
}

function EnabledSwitch({ p }: { p: ProviderView }) {
  const { client } = useServices();
  const refresh = useRefreshProviders();
  const { ask, busy } = useLabActions();
  const key = `provider:${p.name}`;
  const turningOff = p.enabled;
  const groups = [...new Set(p.deployments.map((d) => d.model_group))];
  return (
    <button
      type="button"
      role="switch"
      aria-checked={p.enabled}
      aria-label={`${p.name} enabled`}
      className={`lab-switch${p.enabled ? " on" : ""}`}
      data-testid={`provider-switch-${p.name}`}
      // aria-disabled, not disabled: the button keeps the focus the dialog gives back to it.
      aria-disabled={busy(key) || undefined}
      onClick={() =>
        ask({
          key,
          title: turningOff ? `Disable ${p.name}?` : `Enable ${p.name}?`,
          message: turningOff ? (
            <p>
              {p.name} gets no new requests
              {groups.length === 1 ? ` (${groups[0]} uses its other deployments)` : groups.length > 1 ? ` (${groups.join(", ")} use their other deployments)` : ""}.
              Requests already running finish. The setting is kept across restarts.
            </p>
          ) : (
            <p>{p.name} takes requests again, in its groups' usual share.</p>
          ),
          confirmLabel: turningOff ? "Disable" : "Enable",
          danger: turningOff,
          pending: `${turningOff ? "Disabling" : "Enabling"} ${p.name}…`,
          failure: `Could not ${turningOff ? "disable" : "enable"} ${p.name}`,
          run: async () => {
            const r = await client.post<{ name: string; enabled: boolean }>(`/admin/providers/${encodeURIComponent(p.name)}/${turningOff ? "disable" : "enable"}`);
            refresh();
            return r.enabled ? `${r.name} is enabled: it takes requests again.` : `${r.name} is disabled: it gets no new requests.`;
          },
        })
      }
    >
      <span className="lab-switch-track" aria-hidden="true">
        <span className="lab-switch-thumb" />
      </span>
      <span>{p.enabled ? "On" : "Off"}</span>
    </button>
  );
}

function ResetBreakerButton({ d, label }: { d?: DeploymentView; label: string }) {
  const { client } = useServices();
  const refresh = useRefreshProviders();
  const { ask, busy } = useLabActions();
  const key = d ? `breaker:${d.id}` : "breaker:*";
  return (
    <button
      type="button"
      // aria-disabled, not disabled: the button keeps the focus the dialog gives back to it.
      aria-disabled={busy(key) || undefined}
      aria-label={d ? `Reset the breaker of ${d.model_group} → ${d.model} (${breakerWord(d.breaker_state)})` : undefined}
      onClick={() =>
        ask({
          key,
          title: d ? `Reset the breaker of ${d.model_group} → ${d.model}?` : "Reset every circuit breaker?",
          message: (
            <p>
              {d
                ? `Its error history is forgotten and it takes traffic at once (the breaker is ${breakerWord(d.breaker_state)} now).`
                : "Every deployment's error history is forgotten and all of them take traffic at once, even those that were failing."}{" "}
              If the upstream still fails, its breaker opens again.
            </p>
          ),
          confirmLabel: "Reset",
          pending: d ? `Resetting the breaker of ${d.model_group} → ${d.model}…` : "Resetting every breaker…",
          failure: d ? `Could not reset the breaker of ${d.model_group} → ${d.model}` : "Could not reset the breakers",
          run: async () => {
            const r = await client.post<{ reset: number }>(`/admin/circuit-breaker/reset${d ? `?deployment=${encodeURIComponent(d.id)}` : ""}`);
            refresh();
            return `Reset ${r.reset} circuit breaker${r.reset === 1 ? "" : "s"}.`;
          },
        })
      }
    >
      {label}
    </button>
  );
}

function Deployments({ p }: { p: ProviderView }) {
  if (p.deployments.length === 0) return <span className="muted">in no model group</span>;
  return (
    <ul className="lab-deployments">
      {p.deployments.map((d) => (
        <li key={d.id} data-testid={`deployment-${d.id}`}>
          <span>
            <span className="mono">{d.model_group}</span> <span className="muted">→ {d.model}</span>
          </span>
          <span className={`badge ${BREAKER_CLASS[d.breaker_state] ?? "warn"}`} data-testid={`breaker-${d.id}`} title={`error rate ${formatFraction(d.error_rate)}`}>
            breaker {breakerWord(d.breaker_state)}
          </span>
          <ResetBreakerButton d={d} label="Reset" />
        </li>
      ))}
    </ul>
  );
}

export function ProvidersSection() {
  const q = useProviders();
  const queries = useQueryClient();
  // Request counts change with traffic, which has no event of its own: the summary
  // (each second, while there is traffic) says when to read them again.
  useLiveEvent(
    "summary",
    useCallback(
      (e: LiveEvent) => {
        if (((e.data as { requests?: number }).requests ?? 0) > 0) void queries.invalidateQueries({ queryKey: keys.providers });
      },
      [queries],
    ),
  );
  const providers = q.data?.data ?? [];
  const anyDeployment = providers.some((p) => p.deployments.length > 0);
  return (
    <section aria-labelledby="lab-providers" className="lab-section">
      <div className="lab-section-head">
        <h2 id="lab-providers">Providers</h2>
        {anyDeployment && <ResetBreakerButton label="Reset all breakers" />}
      </div>
      <QueryProblem query={q} what="the providers" />
      {q.isPending ? (
        <p className="muted">Reading providers…</p>
      ) : providers.length === 0 ? (
        <div className="panel lab-empty">
          <p>
            <strong>No providers.</strong>
          </p>
          <p className="muted">Add one under providers: in the config, or start a server that discovery finds.</p>
        </div>
      ) : (
        <div className="lab-table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Provider</th>
                <th scope="col">Enabled</th>
                <th scope="col">Health</th>
                <th scope="col" className="num">
                  Requests
                </th>
                <th scope="col" className="num">
                  Failures
                </th>
                <th scope="col">Deployments and breakers</th>
              </tr>
            </thead>
            <tbody>
              {providers.map((p) => (
                <tr key={p.name} data-testid={`provider-${p.name}`}>
                  <th scope="row">
                    <span className="mono">{p.name}</span>
                    <div className="muted lab-small">
                      {p.type}
                      {p.source ? ` · ${p.source}` : ""}
                    </div>
                  </th>
                  <td>
                    <EnabledSwitch p={p} />
                  </td>
                  <td>
                    <Health p={p} />
                    {p.enabled && !p.available && p.unavailable_reason && <div className="bad lab-small lab-wrap">{p.unavailable_reason}</div>}
                  </td>
                  <td className="num">{formatCount(p.requests)}</td>
                  <td className={`num${p.failures > 0 ? " warn" : ""}`}>{formatCount(p.failures)}</td>
                  <td>
                    <Deployments p={p} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
