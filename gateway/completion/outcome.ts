// What happened to one request, however it ended: the one record that the request
// log, metrics and (later) analytics, budgets and the event stream are built from.
import type { Operation, Usage } from "../providers/types.ts";
import type { RouteFailure } from "../router/router.ts";
import type { AttemptRecord } from "../store/request-log.ts";

export interface RequestOutcome {
  id: string;
  /** ms since the epoch when the request arrived. */
  ts: number;
  tenant: string;
  operation: Operation;
  /** The model (group) the caller asked for. */
  model: string;
  stream: boolean;
  /** Who answered (or was tried last); null when nothing was tried. */
  provider: string | null;
  upstreamModel: string | null;
  /** Tier of the deployment that answered (for budgets and cost by tier). */
  tier: string | null;
  fallbackDepth: number;
  isFallback: boolean;
  isOverflow: boolean;
  panic: boolean;
  /** The HTTP-equivalent status: 200, or the failure's (499 when the caller went away). */
  status: number;
  /** null on success; the error's class otherwise (server_error, timeout, model_not_found, cancelled...). */
  errorClass: string | null;
  /** The caller asked for a model nobody serves: its name is user input, keep it out of metric labels. */
  unknownModel: boolean;
  usage: Usage | null;
  costUsd: number | null;
  ttfbMs: number | null;
  totalMs: number;
  /** Time spent in labgate itself (null when the request never reached an upstream). */
  overheadMs: number | null;
  /** Time the router spent deciding (route() less the time waiting on upstreams and backoff); null when unknown. */
  routingMs: number | null;
  attempts: AttemptRecord[];
}

export type OutcomeListener = (outcome: RequestOutcome) => void;

/** The status a failed route ends with, for every caller (HTTP, batch output files, the log). */
export function failureStatus(f: RouteFailure): number {
  switch (f.reason) {
    case "model_not_found":
      return 404;
    case "all_limited":
      return 429;
    case "no_deployment":
    case "panic_exhausted":
      return 503;
    case "cancelled":
      return 499;
    case "rejected":
    case "exhausted":
      return f.error?.clientStatus ?? 502;
  }
}
