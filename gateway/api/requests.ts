// GET /admin/requests: the request log, newest first, one page at a time, filtered on the
// server (registered under /admin: the admin key guards it). Without parameters it answers
// the newest 100 rows, as it always did.
//   ?model=       the public model asked for
//   ?provider=    the provider that answered (or was tried last)
//   ?status=      a status code (429), or a class: ok (2xx) | error (anything else)
//   ?from=&to=    ISO 8601 or ms since epoch; from inclusive, to exclusive
//   ?before=      older rows than a place: a page's `next_before`, or a request id
//   ?after=       newer rows than a place: a page's `next_after`, or a request id (still newest first)
//   ?limit=       rows per page, 1..500 (default 100; a larger number is clamped)
// The answer: {object: "list", data, has_more, next_before, next_after}; has_more says whether
// rows lie beyond the page in the direction asked (older ones; newer ones with `after`).
// GET /admin/requests/:id: one row, its attempts included (provider, deployment, error_class, ms).
import type { FastifyPluginAsync } from "fastify";
import { boundRow } from "../store/bounds.ts";
import { formatCursor, MAX_PAGE_ROWS, parseCursor, type LogCursor, type RequestLog, type RequestLogQuery } from "../store/request-log.ts";
import { parseTime } from "./analytics.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

export interface RequestsQueryString {
  model?: string;
  provider?: string;
  status?: string;
  from?: string;
  to?: string;
  before?: string;
  after?: string;
  limit?: string;
}

const DEFAULT_LIMIT = 100;
/** Longer filter values cannot match: stored texts are bounded (store/bounds.ts). */
const MAX_FILTER_CHARS = 1024;

const invalid = (param: string, message: string): ApiError => new ApiError(400, message, { code: "invalid_value", param });
const shown = (v: unknown): string => String(v).slice(0, 64);

function text(q: RequestsQueryString, param: "model" | "provider"): string | undefined {
  const v = q[param];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "" || v.length > MAX_FILTER_CHARS) {
    throw invalid(param, `Invalid value for '${param}': expected a name of at most ${MAX_FILTER_CHARS} characters.`);
  }
  return v;
}

function status(v: unknown): RequestLogQuery["status"] {
  if (v === undefined) return undefined;
  if (v === "ok" || v === "error") return v;
  if (typeof v === "string" && /^[1-5][0-9][0-9]$/.test(v)) return Number(v);
  throw invalid("status", `Invalid value for 'status': expected an HTTP status code (100-599), 'ok' (2xx) or 'error' (anything else), got '${shown(v)}'.`);
}

function cursor(v: unknown, param: "before" | "after", log: RequestLog): LogCursor | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "" || v.length > 128) throw invalid(param, `Invalid value for '${param}': expected a page cursor or a request id.`);
  const c = parseCursor(v) ?? log.cursorOf(v);
  if (!c) throw new ApiError(400, `Invalid value for '${param}': '${shown(v)}' is neither a page cursor nor the id of a logged request.`, { code: "invalid_cursor", param });
  return c;
}

function limit(v: unknown): number {
  if (v === undefined) return DEFAULT_LIMIT;
  // Numbers out of range are clamped, as they always were; anything else is a mistake worth saying.
  if (typeof v !== "string" || !/^-?[0-9]{1,15}$/.test(v)) throw invalid("limit", `Invalid value for 'limit': expected an integer from 1 to ${MAX_PAGE_ROWS}, got '${shown(v)}'.`);
  return Math.min(MAX_PAGE_ROWS, Math.max(1, Number(v)));
}

export function parseRequestsQuery(q: RequestsQueryString, log: RequestLog): RequestLogQuery {
  // A repeated parameter arrives as an array: one value each, or it is ambiguous.
  for (const [k, v] of Object.entries(q)) if (Array.isArray(v)) throw invalid(k, `'${k}' was given more than once.`);
  const query: RequestLogQuery = { limit: limit(q.limit) };
  const model = text(q, "model");
  if (model !== undefined) query.model = model;
  const provider = text(q, "provider");
  if (provider !== undefined) query.provider = provider;
  const st = status(q.status);
  if (st !== undefined) query.status = st;
  if (q.from !== undefined && q.from !== "") query.from = parseTime(q.from, "from");
  if (q.to !== undefined && q.to !== "") query.to = parseTime(q.to, "to");
  if (query.from !== undefined && query.to !== undefined && query.from >= query.to) throw invalid("from", "Invalid value for 'from': it must be before 'to'.");
  if (q.before !== undefined && q.after !== undefined) throw invalid("after", "Give 'before' or 'after', not both.");
  const before = cursor(q.before, "before", log);
  if (before) query.before = before;
  const after = cursor(q.after, "after", log);
  if (after) query.after = after;
  return query;
}

export const requestRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get<{ Querystring: RequestsQueryString }>("/requests", async (request) => {
      // Rows still queued are part of the answer.
      deps.requestLog.flush();
      const page = deps.requestLog.page(parseRequestsQuery(request.query, deps.requestLog));
      return {
        object: "list",
        data: page.rows,
        has_more: page.hasMore,
        next_before: page.last ? formatCursor(page.last) : null,
        next_after: page.first ? formatCursor(page.first) : null,
      };
    });

    app.get<{ Params: { id: string } }>("/requests/:id", async (request) => {
      deps.requestLog.flush();
      const id = request.params.id;
      const row = id.length <= 128 ? deps.requestLog.get(id) : undefined;
      if (!row) throw new ApiError(404, `No request \`${shown(id)}\` in the log.`, { code: "request_not_found", param: "id" });
      return { object: "request", ...boundRow(row) };
    });
  };
