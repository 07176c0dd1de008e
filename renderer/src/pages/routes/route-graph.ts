// The Routes page's graph as data: which model groups a request can end up in (the
// router's fallback plan), their deployments coloured by health, and how many requests
// fell back along each arrow. Pure and React-free, so it is unit-tested on its own; the
// page hands the result to @xyflow/react as it is. Positions are computed here: chains
// read left to right (one column per step of the plan), one row per chain.
import type { DeploymentView, GroupView, ProviderView } from "../../types.ts";

export type Health = "ok" | "degraded" | "down" | "off";

/** One (first provider -> provider that answered) pair of /admin/analytics/fallbacks' `data`. */
export interface FallbackCount {
  from: string | null;
  to: string | null;
  count: number;
  success?: number;
}

export interface GroupNodeData extends Record<string, unknown> {
  name: string;
  strategy: string;
  /** Found on a running server rather than named in the config. */
  discovered: boolean;
  health: Health;
  reason: string;
  panic: boolean;
  deployments: number;
  /** Requests that went past their first attempt without leaving the group (retries, overflow). */
  withinGroup: number;
  /** The plan of a request for this group when it has fallbacks: itself, then the groups tried next. */
  chain: string[] | null;
}

export interface DeploymentNodeData extends Record<string, unknown> {
  id: string;
  group: string;
  provider: string;
  model: string;
  tier: string | null;
  overflow: boolean;
  weight: number;
  /** Show the weight: it decides this deployment's share (weighted group, more than one regular deployment). */
  weighted: boolean;
  health: Health;
  reason: string;
}

export interface FallbackEdgeData extends Record<string, unknown> {
  from: string;
  to: string;
  /** Requests that fell back along this arrow in the counted window. */
  count: number;
  /** Groups whose requests take this arrow (the chains it belongs to). */
  chains: string[];
  targetHealth: Health;
}

export interface OverflowEdgeData extends Record<string, unknown> {
  group: string;
}

interface Positioned {
  position: { x: number; y: number };
  width: number;
  height: number;
  draggable: false;
  ariaLabel: string;
  domAttributes: Record<`data-${string}`, string>;
}

export type GroupNode = Positioned & { id: string; type: "modelGroup"; data: GroupNodeData };
export type DeploymentNode = Positioned & { id: string; type: "deployment"; parentId: string; extent: "parent"; data: DeploymentNodeData };
export type RouteNode = GroupNode | DeploymentNode;

interface EdgeBase {
  id: string;
  source: string;
  target: string;
  sourceHandle: string;
  targetHandle: string;
  focusable: boolean;
  ariaLabel: string;
  domAttributes: Record<`data-${string}`, string>;
}
export type FallbackEdge = EdgeBase & { type: "fallback"; data: FallbackEdgeData };
export type OverflowEdge = EdgeBase & { type: "overflow"; data: OverflowEdgeData };
export type RouteEdge = FallbackEdge | OverflowEdge;

export interface RouteGraph {
  nodes: RouteNode[];
  edges: RouteEdge[];
  /** Each chain in the router's order, its head first (chains of one group included). */
  chains: string[][];
  /** Fallback requests that could not be placed on an arrow or in a group (providers no longer configured). */
  unattributed: number;
  /** The laid-out graph's size in flow units. */
  bounds: { width: number; height: number };
}

/** Sizes in flow units; the page's CSS draws the nodes at exactly these. */
export const LAYOUT = {
  groupWidth: 290,
  headerHeight: 64,
  deploymentHeight: 58,
  deploymentGap: 10,
  overflowGap: 34,
  padding: 12,
  columnGap: 150,
  rowGap: 48,
  /** Groups without any fallback arrow are laid out this many to a row, after the chains. */
  standalonePerRow: 3,
} as const;

export const groupNodeId = (group: string): string => `group:${group}`;
export const deploymentNodeId = (id: string): string => `deployment:${id}`;

/** A deployment's health from its provider's state, its breaker and its group's panic. */
export function deploymentHealth(provider: ProviderView, d: DeploymentView): { health: Health; reason: string } {
  if (!provider.enabled) return { health: "off", reason: "provider disabled" };
  if (!provider.available) return { health: "down", reason: provider.unavailable_reason ?? "provider unavailable" };
  if (provider.health && !provider.health.healthy) return { health: "down", reason: `health check failed${provider.health.detail ? `: ${provider.health.detail}` : ""}` };
  if (d.breaker_state === "open") return { health: "degraded", reason: "circuit breaker open" };
  if (d.breaker_state === "half_open") return { health: "degraded", reason: "circuit breaker half-open (probing)" };
  return { health: "ok", reason: provider.health ? "healthy" : "not probed yet" };
}

/** A group is ok when every enabled deployment is; down when none can answer; off when all are disabled. */
export function groupHealth(deployments: { health: Health }[], panic: boolean): { health: Health; reason: string } {
  if (deployments.length === 0) return { health: "off", reason: "no deployments" };
  const enabled = deployments.filter((d) => d.health !== "off");
  if (enabled.length === 0) return { health: "off", reason: "all deployments disabled" };
  const serving = enabled.filter((d) => d.health === "ok" || d.health === "degraded").length;
  if (serving === 0) return { health: "down", reason: "no deployment can answer" };
  if (panic) return { health: "degraded", reason: "panic: too many breakers open, all deployments tried" };
  const ok = enabled.filter((d) => d.health === "ok").length;
  if (ok < enabled.length) return { health: "degraded", reason: `${ok} of ${enabled.length} deployments healthy` };
  return { health: "ok", reason: enabled.length === 1 ? "healthy" : `all ${enabled.length} deployments healthy` };
}

/**
 * The groups a request for `head` may be served by, in the router's order: the group, then
 * its fallbacks, then theirs, breadth first, each once, at most `maxDepth` steps away
 * (gateway/router/router.ts plan()).
 */
export function fallbackPlan(head: string, groups: ReadonlyMap<string, GroupView>, maxDepth: number): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const queue: { name: string; depth: number }[] = [{ name: head, depth: 0 }];
  while (queue.length > 0) {
    const { name, depth } = queue.shift()!;
    if (seen.has(name) || depth > maxDepth) continue;
    seen.add(name);
    const g = groups.get(name);
    if (!g) continue;
    order.push(name);
    for (const f of g.fallbacks) queue.push({ name: f, depth: depth + 1 });
  }
  return order;
}

/**
 * Chains to draw: one per group that no other group falls back to (a request's entry
 * point), in the config's order; groups only reachable through a cycle head their own.
 */
export function fallbackChains(groups: readonly GroupView[], maxDepth: number): string[][] {
  const byName = new Map(groups.map((g) => [g.name, g]));
  const targets = new Set(groups.flatMap((g) => g.fallbacks));
  const chains: string[][] = [];
  const covered = new Set<string>();
  for (const g of groups) {
    if (targets.has(g.name)) continue;
    const plan = fallbackPlan(g.name, byName, maxDepth);
    chains.push(plan);
    for (const n of plan) covered.add(n);
  }
  for (const g of groups) {
    if (covered.has(g.name)) continue;
    const plan = fallbackPlan(g.name, byName, maxDepth);
    chains.push(plan);
    for (const n of plan) covered.add(n);
  }
  return chains;
}

/**
 * Requests per (group asked for, provider that answered or was tried last): the spend
 * analytics split by model and provider (GET /admin/analytics/spend?group_by=provider,model).
 */
export interface AnsweredCount {
  group: string;
  provider: string | null;
  requests: number;
}

interface CountPlacement {
  edges: Map<string, number>;
  withinGroup: Map<string, number>;
  unattributed: number;
}

const edgeKey = (from: string, to: string): string => `${from}\u0001${to}`;

function credit(edges: Map<string, number>, plan: readonly string[], upTo: number, n: number): void {
  for (let k = 0; k < upTo; k++) {
    const key = edgeKey(plan[k]!, plan[k + 1]!);
    edges.set(key, (edges.get(key) ?? 0) + n);
  }
}

/**
 * Arrows from the requests per (group asked for -> provider that answered): one answered
 * by a provider its own group lacks went down the group's plan to the first group served
 * by that provider, crossing every arrow on the way. Exact per group, except when the
 * provider also serves the group asked for (it cannot be told from a direct answer).
 */
function countsFromAnswers(answers: readonly AnsweredCount[], plans: ReadonlyMap<string, string[]>, providersOf: ReadonlyMap<string, Set<string>>, edges: Map<string, number>): number {
  let unattributed = 0;
  for (const a of answers) {
    const own = providersOf.get(a.group);
    // Nothing tried, a group no longer configured, or answered in the group itself.
    if (!(a.requests > 0) || a.provider === null || own === undefined || own.has(a.provider)) continue;
    const provider = a.provider;
    const plan = plans.get(a.group) ?? [];
    const j = plan.findIndex((g) => providersOf.get(g)?.has(provider));
    if (j > 0) credit(edges, plan, j, a.requests);
    else unattributed += a.requests;
  }
  return unattributed;
}

/**
 * Arrows from the fallback analytics alone, which count per (first provider -> provider
 * that answered), not per group: each pair goes on the first plan where a group served by
 * the first provider comes before one served by the second, on every arrow between them.
 * A pair both of whose providers serve one group and no plan explains stayed inside that
 * group (a retry or overflow).
 */
function placePairs(counts: readonly FallbackCount[], plans: readonly string[][], providersOf: ReadonlyMap<string, Set<string>>): CountPlacement {
  const withinGroup = new Map<string, number>();
  const edges = new Map<string, number>();
  let unattributed = 0;
  const serves = (group: string, provider: string): boolean => providersOf.get(group)?.has(provider) ?? false;
  for (const c of counts) {
    if (!(c.count > 0)) continue;
    if (c.from === null || c.to === null) {
      unattributed += c.count;
      continue;
    }
    const from = c.from;
    const to = c.to;
    let placed = false;
    for (const plan of plans) {
      for (let i = 0; i < plan.length && !placed; i++) {
        if (!serves(plan[i]!, from)) continue;
        const j = plan.findIndex((g, k) => k > i && serves(g, to));
        if (j < 0) continue;
        credit(edges, plan.slice(i), j - i, c.count);
        placed = true;
      }
      if (placed) break;
    }
    if (placed) continue;
    const home = [...providersOf.entries()].find(([, ps]) => ps.has(from) && ps.has(to));
    if (home) withinGroup.set(home[0], (withinGroup.get(home[0]) ?? 0) + c.count);
    else unattributed += c.count;
  }
  return { edges, withinGroup, unattributed };
}

const deploymentOrder = (a: DeploymentView, b: DeploymentView): number => Number(a.overflow) - Number(b.overflow) || b.weight - a.weight;

const HEALTH_WORDS: Record<Health, string> = { ok: "ok", degraded: "degraded", down: "down", off: "disabled" };
export const healthWord = (h: Health): string => HEALTH_WORDS[h];

function groupHeight(deployments: readonly DeploymentView[]): number {
  const n = deployments.length;
  const hasOverflow = deployments.some((d) => d.overflow) && deployments.some((d) => !d.overflow);
  const body = n === 0 ? LAYOUT.deploymentHeight : n * LAYOUT.deploymentHeight + (n - 1) * LAYOUT.deploymentGap + (hasOverflow ? LAYOUT.overflowGap - LAYOUT.deploymentGap : 0);
  return LAYOUT.headerHeight + body + LAYOUT.padding;
}

/** router.max_fallback_depth's default in the gateway's config schema. */
const DEFAULT_MAX_FALLBACK_DEPTH = 5;

export function buildRouteGraph(
  providers: readonly ProviderView[],
  groups: readonly GroupView[],
  fallbackCounts: readonly FallbackCount[],
  opts: {
    /** router.max_fallback_depth, as /admin/providers reports it (5, the config's default, when not given). */
    maxFallbackDepth?: number;
    /** Requests per (group asked for, provider that answered): exact arrow counts per group when given. */
    answered?: readonly AnsweredCount[];
  } = {},
): RouteGraph {
  const maxDepth = opts.maxFallbackDepth ?? DEFAULT_MAX_FALLBACK_DEPTH;
  const byName = new Map(groups.map((g) => [g.name, g]));

  // Deployments per group, each with its provider's view and its health.
  const members = new Map<string, { d: DeploymentView; p: ProviderView; health: Health; reason: string }[]>();
  for (const g of groups) members.set(g.name, []);
  for (const p of providers) {
    for (const d of p.deployments) {
      const list = members.get(d.model_group);
      if (list) list.push({ d, p, ...deploymentHealth(p, d) });
    }
  }
  for (const list of members.values()) list.sort((a, b) => deploymentOrder(a.d, b.d));
  const providersOf = new Map([...members].map(([g, list]) => [g, new Set(list.map((m) => m.p.name))]));
  const healthOf = new Map(groups.map((g) => [g.name, groupHealth(members.get(g.name)!, g.panic)]));

  const chains = fallbackChains(groups, maxDepth);
  // Every group with fallbacks has its own plan (a request for it may take other arrows
  // than the chain it sits in): the chains' heads first, then the others in config order.
  const heads = new Set(chains.map((c) => c[0]!));
  const plans = new Map<string, string[]>();
  for (const g of [...groups.filter((x) => heads.has(x.name)), ...groups.filter((x) => !heads.has(x.name))]) {
    if (g.fallbacks.length > 0) plans.set(g.name, fallbackPlan(g.name, byName, maxDepth));
  }
  let placed = placePairs(fallbackCounts, [...plans.values()], providersOf);
  if (opts.answered) {
    // Exact per group: the pairs then say only what stayed inside a group.
    const edges = new Map<string, number>();
    const unattributed = countsFromAnswers(opts.answered, plans, providersOf, edges);
    placed = { edges, withinGroup: placed.withinGroup, unattributed };
  }

  // Arrows: consecutive groups of each plan, once each, with the groups whose requests take them.
  const arrows = new Map<string, { from: string; to: string; chains: string[] }>();
  for (const [head, plan] of plans) {
    for (let k = 0; k + 1 < plan.length; k++) {
      const key = edgeKey(plan[k]!, plan[k + 1]!);
      const a = arrows.get(key);
      if (a) a.chains.push(head);
      else arrows.set(key, { from: plan[k]!, to: plan[k + 1]!, chains: [head] });
    }
  }

  // Layout: chains first, one row each, a column per step; then the groups that take part in
  // no arrow, packed a few to a row. A group already placed by an earlier chain stays there.
  const cell = new Map<string, { col: number; row: number }>();
  let rows = 0;
  const standalone: string[] = [];
  for (const chain of chains) {
    if (chain.length === 1 && ![...arrows.values()].some((a) => a.to === chain[0])) {
      standalone.push(chain[0]!);
      continue;
    }
    let used = false;
    chain.forEach((name, col) => {
      if (cell.has(name)) return;
      cell.set(name, { col, row: rows });
      used = true;
    });
    if (used) rows++;
  }
  const perRow = Math.max(LAYOUT.standalonePerRow, ...chains.map((c) => c.length));
  standalone.forEach((name, i) => cell.set(name, { col: i % perRow, row: rows + Math.floor(i / perRow) }));

  const rowHeight = new Map<number, number>();
  for (const [name, { row }] of cell) rowHeight.set(row, Math.max(rowHeight.get(row) ?? 0, groupHeight(members.get(name)!.map((m) => m.d))));
  const rowTop = new Map<number, number>();
  let y = 0;
  for (const row of [...rowHeight.keys()].sort((a, b) => a - b)) {
    rowTop.set(row, y);
    y += rowHeight.get(row)! + LAYOUT.rowGap;
  }

  const nodes: RouteNode[] = [];
  const edges: RouteEdge[] = [];
  // Groups in layout order (row, then column), so the DOM and the tab order read like the picture.
  const ordered = [...cell.entries()].sort(([, a], [, b]) => a.row - b.row || a.col - b.col);
  for (const [name, { col, row }] of ordered) {
    const g = byName.get(name)!;
    const list = members.get(name)!;
    const { health, reason } = healthOf.get(name)!;
    const headed = plans.get(name) ?? null;
    const gid = groupNodeId(name);
    const regular = list.filter((m) => !m.d.overflow).length;
    nodes.push({
      id: gid,
      type: "modelGroup",
      position: { x: col * (LAYOUT.groupWidth + LAYOUT.columnGap), y: rowTop.get(row)! },
      width: LAYOUT.groupWidth,
      height: groupHeight(list.map((m) => m.d)),
      draggable: false,
      ariaLabel: `Model group ${name}: ${healthWord(health)}, ${reason}; ${list.length} deployment${list.length === 1 ? "" : "s"}${headed ? `; falls back to ${headed.slice(1).join(", then ")}` : ""}`,
      domAttributes: { "data-testid": `route-node-${name}`, "data-health": health, "data-group": name },
      data: {
        name,
        strategy: g.strategy,
        discovered: g.discovered,
        health,
        reason,
        panic: g.panic,
        deployments: list.length,
        withinGroup: placed.withinGroup.get(name) ?? 0,
        chain: headed,
      },
    });
    let dy = LAYOUT.headerHeight;
    list.forEach((m, i) => {
      const previous = list[i - 1];
      if (previous) dy += previous.d.overflow === m.d.overflow ? LAYOUT.deploymentGap : LAYOUT.overflowGap;
      const did = deploymentNodeId(m.d.id);
      nodes.push({
        id: did,
        type: "deployment",
        parentId: gid,
        extent: "parent",
        position: { x: LAYOUT.padding, y: dy },
        width: LAYOUT.groupWidth - 2 * LAYOUT.padding,
        height: LAYOUT.deploymentHeight,
        draggable: false,
        ariaLabel: `Deployment of ${name}${m.d.overflow ? " (overflow)" : ""}: ${m.p.name}, model ${m.d.model}; ${healthWord(m.health)}, ${m.reason}`,
        domAttributes: { "data-testid": `deployment-node-${m.d.id}`, "data-health": m.health, "data-provider": m.p.name },
        data: {
          id: m.d.id,
          group: name,
          provider: m.p.name,
          model: m.d.model,
          tier: m.d.tier,
          overflow: m.d.overflow,
          weight: m.d.weight,
          weighted: g.strategy === "weighted" && regular > 1 && !m.d.overflow,
          health: m.health,
          reason: m.reason,
        },
      });
      dy += LAYOUT.deploymentHeight;
      // The first overflow deployment hangs off the last regular one: what is tried when they fail or are busy.
      if (previous && !previous.d.overflow && m.d.overflow) {
        edges.push({
          id: `overflow:${m.d.id}`,
          type: "overflow",
          source: deploymentNodeId(previous.d.id),
          target: did,
          sourceHandle: "below",
          targetHandle: "above",
          focusable: false,
          ariaLabel: `${name} overflows to ${m.p.name}`,
          domAttributes: { "data-testid": `overflow-edge-${m.d.id}` },
          data: { group: name },
        });
      }
    });
  }

  for (const [key, a] of arrows) {
    const count = placed.edges.get(key) ?? 0;
    edges.push({
      id: `fallback:${a.from}->${a.to}`,
      type: "fallback",
      source: groupNodeId(a.from),
      target: groupNodeId(a.to),
      sourceHandle: "next",
      targetHandle: "previous",
      focusable: true,
      ariaLabel: `Fallback from ${a.from} to ${a.to}: ${count} request${count === 1 ? "" : "s"} fell back`,
      domAttributes: { "data-testid": `fallback-edge-${a.from}->${a.to}`, "data-from": a.from, "data-to": a.to, "data-count": String(count) },
      data: { from: a.from, to: a.to, count, chains: a.chains, targetHealth: healthOf.get(a.to)!.health },
    });
  }

  const groupNodes = nodes.filter((n) => n.type === "modelGroup");
  const bounds = {
    width: Math.max(0, ...groupNodes.map((n) => n.position.x + n.width)),
    height: Math.max(0, ...groupNodes.map((n) => n.position.y + n.height)),
  };
  return { nodes, edges, chains, unattributed: placed.unattributed, bounds };
}
