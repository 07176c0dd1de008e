// GET /admin/analytics/{spend,distribution,fallbacks,ttfb,errors}: the request log's hourly
// rollups as chart-ready series (store/analytics.ts), queried in a worker thread with its
// own read-only connection so the gateway's event loop keeps serving. Registered under
// /admin: the admin key guards it.
//   ?from=&to=   ISO 8601 or ms since epoch (default: the last 24 hours)
//   ?bucket=     hour (default) | day (UTC)
//   ?group_by=   spend only: a comma list of provider, model, tenant, tier (default all)
//   ?limit=      most series, the largest first (default 100, at most 1000)
import type { FastifyPluginAsync } from "fastify";
import { AnalyticsClient } from "../store/analytics-client.ts";
import {
  ANALYTICS_QUERIES,
  bucketMs,
  DEFAULT_SERIES_LIMIT,
  MAX_BUCKETS,
  MAX_SERIES_LIMIT,
  SPEND_DIMENSIONS,
  type AnalyticsParams,
  type AnalyticsQuery,
  type Bucket,
  type SpendDimension,
} from "../store/analytics.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const DEFAULT_RANGE_MS = 24 * 3_600_000;

interface AnalyticsQueryString {
  from?: string;
  to?: string;
  bucket?: string;
  group_by?: string;
  limit?: string;
}

const invalid = (param: string, message: string): ApiError => new ApiError(400, message, { code: "invalid_value", param });

/** A time given as ms since epoch (digits) or an ISO 8601 date. */
export function parseTime(text: string, param: string): number {
  const t = /^-?[0-9]{1,15}$/.test(text) ? Number(text) : /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(t) || t < 0) throw invalid(param, `Invalid value for '${param}': expected an ISO 8601 date or milliseconds since the epoch, got '${text.slice(0, 64)}'.`);
  return t;
}

export function parseAnalyticsQuery(q: AnalyticsQueryString, query: AnalyticsQuery, now: number = Date.now()): AnalyticsParams {
  const bucket = (q.bucket ?? "hour") as Bucket;
  if (bucket !== "hour" && bucket !== "day") throw invalid("bucket", `Invalid value for 'bucket': expected 'hour' or 'day', got '${String(q.bucket).slice(0, 64)}'.`);
  const to = q.to !== undefined && q.to !== "" ? parseTime(q.to, "to") : now;
  const from = q.from !== undefined && q.from !== "" ? parseTime(q.from, "from") : to - DEFAULT_RANGE_MS;
  if (from >= to) throw invalid("from", "Invalid value for 'from': it must be before 'to'.");
  if ((to - from) / bucketMs(bucket) > MAX_BUCKETS) {
    throw invalid("bucket", `The range holds more than ${MAX_BUCKETS} ${bucket}s: use a shorter range${bucket === "hour" ? " or bucket=day" : ""}.`);
  }
  const params: AnalyticsParams = { from, to, bucket };
  if (q.limit !== undefined) {
    const limit = /^[0-9]{1,6}$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!(limit >= 1 && limit <= MAX_SERIES_LIMIT)) throw invalid("limit", `Invalid value for 'limit': expected an integer from 1 to ${MAX_SERIES_LIMIT} (default ${DEFAULT_SERIES_LIMIT}).`);
    params.limit = limit;
  }
  if (q.group_by !== undefined) {
    if (query !== "spend") throw invalid("group_by", "'group_by' applies to /admin/analytics/spend only.");
    const dims = q.group_by.split(",").map((s) => s.trim()).filter((s) => s !== "");
    for (const d of dims) {
      if (!(SPEND_DIMENSIONS as readonly string[]).includes(d)) {
        throw invalid("group_by", `Invalid value for 'group_by': '${d.slice(0, 64)}' is not one of ${SPEND_DIMENSIONS.join(", ")}.`);
      }
    }
    params.groupBy = dims as SpendDimension[];
  }
  return params;
}

export const analyticsRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    const client = new AnalyticsClient(deps.requestLog.database);
    app.addHook("onClose", async () => client.close());
    for (const query of ANALYTICS_QUERIES) {
      app.get<{ Querystring: AnalyticsQueryString }>(`/${query}`, async (request, reply) => {
        const params = parseAnalyticsQuery(request.query, query);
        // Rows still queued reach the rollups first (one short transaction).
        deps.requestLog.flush();
        let json: string;
        try {
          json = await client.queryJson(query, params);
        } catch (err) {
          deps.log.error({ err, query }, "analytics query failed");
          throw new ApiError(503, `The analytics query failed: ${(err as Error).message}`, { code: "analytics_unavailable" });
        }
        return reply.type("application/json; charset=utf-8").send(json);
      });
    }
  };
