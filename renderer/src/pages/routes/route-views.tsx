// How the Routes graph's nodes and edges look: a model group is a box holding its
// deployments; a fallback arrow carries its count; an overflow edge joins the regular
// deployments to the overflow ones inside a group. Health shows as colour and as a word.
import { BaseEdge, EdgeLabelRenderer, getBezierPath, getStraightPath, Handle, Position, type Edge, type EdgeProps, type Node, type NodeProps } from "@xyflow/react";
import { healthWord, type DeploymentNodeData, type FallbackEdgeData, type GroupNodeData, type OverflowEdgeData } from "./route-graph.ts";

export type ModelGroupFlowNode = Node<GroupNodeData, "modelGroup">;
export type DeploymentFlowNode = Node<DeploymentNodeData, "deployment">;
export type FallbackFlowEdge = Edge<FallbackEdgeData, "fallback">;
export type OverflowFlowEdge = Edge<OverflowEdgeData, "overflow">;

const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString()} ${n === 1 ? one : many}`;

export function ModelGroupView({ data }: NodeProps<ModelGroupFlowNode>) {
  return (
    <div className={`route-group health-${data.health}`} title={data.reason}>
      <Handle type="target" position={Position.Left} id="previous" isConnectable={false} />
      <div className="route-group-head">
        <span className="route-group-name mono">{data.name}</span>
        <span className={`badge ${badgeClass(data.health)}`}>{healthWord(data.health)}</span>
      </div>
      <div className="route-group-meta muted">
        {data.discovered ? "discovered · " : ""}
        {data.strategy} · {plural(data.deployments, "deployment")}
        {data.panic ? <span className="badge warn route-panic">panic</span> : null}
        {data.withinGroup > 0 ? <span title="requests that went past their first attempt without leaving this group (retries, overflow)"> · {plural(data.withinGroup, "retry", "retries")}</span> : null}
      </div>
      <Handle type="source" position={Position.Right} id="next" isConnectable={false} />
    </div>
  );
}

export function DeploymentView({ data }: NodeProps<DeploymentFlowNode>) {
  return (
    <div className={`route-deployment health-${data.health}${data.overflow ? " is-overflow" : ""}`} title={data.reason}>
      <Handle type="target" position={Position.Top} id="above" isConnectable={false} />
      <div className="route-deployment-line">
        <span className="route-provider">{data.provider}</span>
        <span className={`badge ${badgeClass(data.health)}`}>{healthWord(data.health)}</span>
      </div>
      <div className="route-deployment-line muted">
        <span className="mono route-model">{data.model}</span>
        <span className="route-tags">
          {data.overflow ? <span className="route-tag">overflow</span> : null}
          {data.tier ? <span className="route-tag">{data.tier}</span> : null}
          {data.weighted ? <span className="route-tag">w {data.weight}</span> : null}
        </span>
      </div>
      {data.health !== "ok" ? <div className={`route-reason ${badgeClass(data.health)}`}>{data.reason}</div> : null}
      <Handle type="source" position={Position.Bottom} id="below" isConnectable={false} />
    </div>
  );
}

export function FallbackEdgeView(props: EdgeProps<FallbackFlowEdge>) {
  const { sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data, markerEnd } = props;
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  const count = data?.count ?? 0;
  return (
    <>
      <BaseEdge id={props.id} path={path} markerEnd={markerEnd} className={`route-fallback-path${count > 0 ? " has-traffic" : ""}`} />
      <EdgeLabelRenderer>
        <div
          className={`route-edge-label nodrag nopan${count > 0 ? " has-traffic" : ""}`}
          style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
          data-testid={`fallback-label-${data?.from}->${data?.to}`}
          data-count={count}
        >
          <span className="route-edge-kind">fallback</span>
          <span className="route-edge-count">{count > 0 ? `${count.toLocaleString()} fell back` : "none"}</span>
        </div>
      </EdgeLabelRenderer>
    </>
  );
}

export function OverflowEdgeView(props: EdgeProps<OverflowFlowEdge>) {
  const { sourceX, sourceY, targetX, targetY, markerEnd } = props;
  const [path, labelX, labelY] = getStraightPath({ sourceX, sourceY, targetX, targetY });
  // An SVG label: this edge lies inside its group's box, above which HTML edge labels would not show.
  return (
    <>
      <BaseEdge id={props.id} path={path} markerEnd={markerEnd} className="route-overflow-path" />
      <text className="route-overflow-label" x={labelX + 10} y={labelY} dominantBaseline="central">
        overflow
      </text>
    </>
  );
}

export function badgeClass(h: GroupNodeData["health"]): string {
  return h === "ok" ? "ok" : h === "degraded" ? "warn" : h === "down" ? "bad" : "off";
}

export const nodeTypes = { modelGroup: ModelGroupView, deployment: DeploymentView };
export const edgeTypes = { fallback: FallbackEdgeView, overflow: OverflowEdgeView };
