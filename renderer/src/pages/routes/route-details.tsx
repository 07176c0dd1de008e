// What the graph's boxes have no room for: the selected group's or deployment's full
// state (health detail, breaker, traffic). Select a node with a click, or Tab to it
// and press Enter.
import type { ReactNode } from "react";
import { breakerWord, formatCount, formatFraction as pct, formatMs as ms } from "../../format.ts";
import type { DeploymentView, GroupView, ProviderView, ProvidersResponse } from "../../types.ts";
import { healthWord, type RouteGraph, type RouteNode } from "./route-graph.ts";
import { badgeClass } from "./route-views.tsx";

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt className="muted">{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

function DeploymentDetails({ node, provider, d }: { node: RouteNode; provider: ProviderView; d: DeploymentView }) {
  return (
    <dl className="route-details-list">
      <Row label="Provider">
        {provider.name} <span className="muted">({provider.type}{provider.source ? `, ${provider.source}` : ""})</span>
      </Row>
      <Row label="Upstream model">
        <span className="mono">{d.model}</span>
      </Row>
      <Row label="Health">
        <span className={badgeClass(node.data.health)}>{healthWord(node.data.health)}</span>: {node.data.reason}
      </Row>
      <Row label="Circuit breaker">
        {breakerWord(d.breaker_state)} · error rate {pct(d.error_rate)}
      </Row>
      <Row label="Requests">
        {formatCount(d.requests)} · {formatCount(d.failures)} failed · {d.in_flight} in flight
      </Row>
      <Row label="TTFB (moving average)">{ms(d.ewma_ttfb_ms)}</Row>
      <Row label="Role">
        {d.overflow ? "overflow: takes traffic only when the regular deployments cannot" : `regular, weight ${d.weight}`}
        {d.tier ? ` · tier ${d.tier}` : ""}
      </Row>
    </dl>
  );
}

function GroupDetails({ node, group }: { node: RouteNode; group: GroupView }) {
  return (
    <dl className="route-details-list">
      <Row label="Health">
        <span className={badgeClass(node.data.health)}>{healthWord(node.data.health)}</span>: {node.data.reason}
      </Row>
      <Row label="Strategy">
        {group.strategy}
        {group.discovered ? " · discovered on a running server" : ""}
      </Row>
      <Row label="Deployments">
        {group.enabled_deployments} of {group.deployments} enabled · {group.breaker_not_open} with the breaker not open
        {group.panic ? " · panic: breakers are ignored, every deployment is tried" : ""}
      </Row>
      <Row label="Falls back to">{group.fallbacks.length > 0 ? group.fallbacks.join(", then ") : "nothing (requests fail when no deployment answers)"}</Row>
    </dl>
  );
}

export function RouteDetails({ graph, providers, selectedId }: { graph: RouteGraph; providers: ProvidersResponse; selectedId: string | null }) {
  const node = selectedId ? graph.nodes.find((n) => n.id === selectedId) : undefined;
  let body: ReactNode = <p className="muted">Select a group or a deployment (click it, or Tab to it and press Enter) to see its details here.</p>;
  let title = "Details";
  if (node?.type === "deployment") {
    const provider = providers.data.find((p) => p.name === node.data.provider);
    const d = provider?.deployments.find((x) => x.id === node.data.id);
    title = `${node.data.provider} · ${node.data.model} in ${node.data.group}`;
    if (provider && d) body = <DeploymentDetails node={node} provider={provider} d={d} />;
  } else if (node?.type === "modelGroup") {
    const group = providers.groups.find((g) => g.name === node.data.name);
    title = `Model group ${node.data.name}`;
    if (group) body = <GroupDetails node={node} group={group} />;
  }
  return (
    <section className="panel route-details" aria-live="polite" aria-labelledby="route-details-title" data-testid="route-details">
      <h2 id="route-details-title">{title}</h2>
      {body}
    </section>
  );
}
