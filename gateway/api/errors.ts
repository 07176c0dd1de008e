// Every error leaves labgate in OpenAI's error shape, with the right status and no stack trace.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RouteFailure } from "../router/router.ts";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function errorBody(message: string, type: string, code: string | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, opts: { type?: string; code?: string; param?: string; headers?: Record<string, string> } = {}) {
    super(message);
    this.status = status;
    this.type = opts.type ?? (status === 401 ? "authentication_error" : status === 404 ? "not_found_error" : status >= 500 ? "api_error" : "invalid_request_error");
    this.code = opts.code ?? null;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }
}

export function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).headers(err.headers).send(errorBody(err.message, err.type, err.code, err.param));
}

/** Installs the error and not-found handlers that keep every answer in OpenAI's shape. */
export function installErrorHandlers(app: FastifyInstance, log: (err: unknown, req: FastifyRequest) => void): void {
  app.setErrorHandler((err: FastifyError | ApiError, request, reply) => {
    if (err instanceof ApiError) return sendError(reply, err);
    const fe = err as FastifyError & { validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] };
    if (fe.validation && fe.validation.length > 0) {
      const v = fe.validation[0]!;
      const missing = v.params?.missingProperty as string | undefined;
      const param = missing ?? (v.instancePath.replace(/^\//, "").replace(/\//g, ".") || null);
      const message = missing ? `Missing required parameter: '${missing}'.` : `Invalid value for '${param ?? "body"}': ${v.message ?? "invalid"}.`;
      return reply.code(400).send(errorBody(message, "invalid_request_error", missing ? "missing_required_parameter" : "invalid_value", param));
    }
    switch (fe.code) {
      case "FST_ERR_CTP_INVALID_JSON_BODY":
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return reply.code(400).send(errorBody(`We could not parse the JSON body of your request: ${fe.message}`, "invalid_request_error", "invalid_json"));
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return reply.code(413).send(errorBody("Request body is too large.", "invalid_request_error", "request_too_large"));
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return reply.code(415).send(errorBody("Content-Type must be application/json.", "invalid_request_error", "unsupported_media_type"));
    }
    if (err instanceof SyntaxError || fe.statusCode === 400) {
      return reply.code(400).send(errorBody(`We could not parse the JSON body of your request: ${err.message}`, "invalid_request_error", "invalid_json"));
    }
    const status = fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
    if (status >= 500) log(err, request);
    return reply.code(status).send(errorBody(status >= 500 ? "Internal error in labgate." : err.message, status >= 500 ? "api_error" : "invalid_request_error", fe.code ?? null));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(`Unknown route: ${request.method} ${request.url.split("?")[0]}`, "invalid_request_error", "unknown_url"));
  });
}

/** How a routing failure reads in OpenAI's vocabulary (the router itself speaks none). */
export function routeFailureError(f: RouteFailure, status: number): { message: string; type: string; code: string; param: string | null } {
  switch (f.reason) {
    case "model_not_found":
      return { message: f.message, type: "invalid_request_error", code: "model_not_found", param: "model" };
    case "all_limited":
      return { message: f.message, type: "rate_limit_error", code: "rate_limit_exceeded", param: null };
    case "no_deployment":
    case "panic_exhausted":
      return { message: f.message, type: "service_unavailable", code: "no_healthy_deployment", param: null };
    case "cancelled":
      return { message: f.message, type: "invalid_request_error", code: "cancelled", param: null };
    case "rejected": {
      const cls = f.error?.errorClass ?? "internal";
      const type = cls === "internal" ? "api_error" : status === 429 ? "rate_limit_error" : status >= 500 ? "api_error" : "invalid_request_error";
      return { message: cls === "internal" ? "Internal error in labgate." : f.message, type, code: cls === "internal" ? "internal_error" : cls, param: null };
    }
    case "exhausted": {
      const type = status === 429 ? "rate_limit_error" : status === 504 ? "timeout_error" : "upstream_error";
      return { message: f.message, type, code: f.error?.errorClass ?? "upstream_error", param: null };
    }
  }
}
