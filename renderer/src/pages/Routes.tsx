// Routes: where a request for each model group can end up. The router's fallback chains
// drawn left to right, every group with its deployments coloured by live health, and the
// number of requests that fell back along each arrow over the last hour.
import { Controls, MarkerType, ReactFlow, type Edge, type Node, type NodeChange } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useCallback, useMemo, useState } from "react";
import { useProviders } from "../queries.ts";
import { buildRouteGraph, healthWord, type Health, type RouteGraph } from "./routes/route-graph.ts";
import { RouteDetails } from "./routes/route-details.tsx";
import { useRouteTraffic, type RouteTraffic } from "./routes/route-queries.ts";
import { badgeClass, edgeTypes, nodeTypes } from "./routes/route-views.tsx";
import "./routes.css";

/** Room around the graph inside its panel (px at 1:1). */
const FLOW_MARGIN = 40;

const HEALTH_LEGEND: { health: Health; meaning: string }[] = [
  { health: "ok", meaning: "healthy" },
  { health: "degraded", meaning: "breaker open or half-open, or the group in panic" },
  { health: "down", meaning: "health check failed or unavailable" },
  { health: "off", meaning: "provider disabled" },
];

function sinceText(answer: RouteTraffic | undefined): string {
  if (!answer) return "the last hour";
  return `since ${new Date(answer.from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

/** Edges as @xyflow/react takes them: arrow heads coloured like the group they lead to. */
function flowEdges(graph: RouteGraph): Edge[] {
  return graph.edges.map((e) => ({
    ...e,
    markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18, color: e.type === "fallback" && e.data.count > 0 ? "var(--route-arrow-busy)" : "var(--route-arrow)" },
  }));
}

export function RoutesPage() {
  const providers = useProviders();
  const traffic = useRouteTraffic();
  const graph = useMemo(
    () =>
      providers.data
        ? buildRouteGraph(providers.data.data, providers.data.groups, traffic.data?.pairs ?? [], {
            maxFallbackDepth: providers.data.router.max_fallback_depth,
            answered: traffic.data?.answered,
          })
        : undefined,
    [providers.data, traffic.data],
  );
  // Only selection is kept from xyflow's changes: positions come from the layout.
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const onNodesChange = useCallback((changes: NodeChange[]) => {
    for (const c of changes) {
      if (c.type !== "select") continue;
      setSelectedId((current) => (c.selected ? c.id : current === c.id ? null : current));
    }
  }, []);
  const nodes = useMemo(() => (graph ? graph.nodes.map((n): Node => ({ ...n, selected: n.id === selectedId })) : []), [graph, selectedId]);
  const edges = useMemo(() => (graph ? flowEdges(graph) : []), [graph]);
  // A new set of groups (a config reload, discovery) fits the view again.
  const topology = useMemo(() => (graph ? graph.chains.map((c) => c.join(">")).join("|") : ""), [graph]);

  return (
    <section className="routes-page" aria-labelledby="routes-title">
      <div className="routes-heading">
        <h1 id="routes-title">Routes</h1>
        <ul className="routes-legend" aria-label="Legend">
          {HEALTH_LEGEND.map((l) => (
            <li key={l.health} title={l.meaning}>
              <span className={`routes-swatch health-${l.health}`} aria-hidden="true" />
              <span className={badgeClass(l.health)}>{healthWord(l.health)}</span> <span className="muted">{l.meaning}</span>
            </li>
          ))}
        </ul>
      </div>
      <p className="muted routes-explain">
        A request for a group is tried on its deployments, then its overflow, then along the arrows to the next group. Numbers on the arrows: requests that fell back {sinceText(traffic.data)}
        {traffic.isError ? " (not available: the analytics query failed)" : ""}.
        {graph && graph.unattributed > 0 ? ` ${graph.unattributed.toLocaleString()} more fell back between providers no longer configured.` : ""}
      </p>
      {providers.isError && !providers.data ? (
        <p className="panel bad" role="alert">
          The model groups could not be read: {(providers.error as Error).message}
        </p>
      ) : !graph ? (
        <p className="panel muted">Loading the model groups…</p>
      ) : graph.nodes.length === 0 ? (
        <p className="panel">
          No model groups yet. Add models to labgate.yaml (see resources/labgate.example.yaml), or start Ollama, llama.cpp or vLLM on their usual ports for labgate to discover them.
        </p>
      ) : (
        <>
          <ol className="routes-chains" aria-label="Fallback chains">
            {graph.chains
              .filter((c) => c.length > 1)
              .map((c) => (
                <li key={c.join(">")} className="mono">
                  {c.join(" → ")}
                </li>
              ))}
          </ol>
          <div className="routes-flow panel" data-testid="routes-graph" style={{ height: graph.bounds.height + 2 * FLOW_MARGIN }}>
            <ReactFlow
              key={topology}
              nodes={nodes}
              edges={edges}
              onNodesChange={onNodesChange}
              nodeTypes={nodeTypes}
              edgeTypes={edgeTypes}
              colorMode="system"
              fitView
              fitViewOptions={{ padding: 0.06, maxZoom: 1 }}
              minZoom={0.2}
              maxZoom={2}
              nodesDraggable={false}
              nodesConnectable={false}
              nodesFocusable
              edgesFocusable
              elementsSelectable
              deleteKeyCode={null}
              ariaLabelConfig={{
                "node.a11yDescription.default": "Tab moves between model groups and their deployments.",
                "edge.a11yDescription.default": "A fallback arrow: where a group's requests go next when it cannot answer.",
              }}
            >
              <Controls showInteractive={false} position="bottom-right" />
            </ReactFlow>
          </div>
          <RouteDetails graph={graph} providers={providers.data!} selectedId={selectedId} />
        </>
      )}
    </section>
  );
}
