// Every error leaves labgate in OpenAI's error shape, with the right status and no stack trace:
// fastify's (404, bad URL, body parsing) and Node's own (HTTP parser errors, timeouts, Expect, CONNECT).
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
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
    this.type = opts.type ?? (status === 401 ? "authentication_error" : status >= 500 ? "api_error" : "invalid_request_error");
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
      case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
        return reply.code(400).send(errorBody("The request body's size did not match its Content-Length.", "invalid_request_error", "invalid_content_length"));
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
    reply.code(404).send(errorBody(`Unknown route: ${request.method} ${clip(request.url.split("?")[0] ?? "")}`, "invalid_request_error", "unknown_url"));
  });
}

/** fastify's `frameworkErrors` option: URLs its router cannot decode, or whose parameter is too long. */
export function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH") {
    reply.code(414).send(errorBody("The request URL is too long.", "invalid_request_error", "url_too_long"));
  } else if (err.code === "FST_ERR_BAD_URL" || err.code === "FST_ERR_INVALID_URL") {
    reply.code(400).send(errorBody(`The request URL is not valid: ${clip(err.message)}`, "invalid_request_error", "invalid_url"));
  } else {
    reply.code(500).send(errorBody("Internal error in labgate.", "api_error", "internal_error"));
  }
}

/** A whole HTTP/1.1 error response, for sockets that never became a request fastify sees. */
export function rawErrorResponse(status: number, reason: string, body: OpenAIErrorBody): string {
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`
  );
}

type ParserError = Error & { code?: string; reason?: string; rawPacket?: unknown };

/** What Node's HTTP parser (or its request/header timeouts) found wrong, as an HTTP status and OpenAI body. */
export function clientErrorAnswer(err: ParserError): { status: number; reason: string; body: OpenAIErrorBody } {
  switch (err.code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, reason: "Request Timeout", body: errorBody("The request was not received in time (server.request_timeout_s / headers_timeout_s).", "invalid_request_error", "request_timeout") };
    case "HPE_HEADER_OVERFLOW":
      // The URL counts against the same 16 KB as the headers: a request line that alone overflows is a 414.
      if (requestLineOverflows(Buffer.isBuffer(err.rawPacket) ? err.rawPacket : undefined)) return { status: 414, reason: "URI Too Long", body: errorBody("The request URL is too long.", "invalid_request_error", "url_too_long") };
      return { status: 431, reason: "Request Header Fields Too Large", body: errorBody("The request's headers are too large (16 KB at most).", "invalid_request_error", "headers_too_large") };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, reason: "Payload Too Large", body: errorBody("The request's chunk extensions are too large.", "invalid_request_error", "request_too_large") };
    default: {
      const why = err.reason ?? err.message;
      return { status: 400, reason: "Bad Request", body: errorBody(`Malformed HTTP request: ${clip(why)}.`, "invalid_request_error", "invalid_http_request") };
    }
  }
}

function requestLineOverflows(raw: Buffer | undefined): boolean {
  if (!raw || raw.length === 0) return false;
  const nl = raw.indexOf(10);
  // The packet that overflowed starts a request ("GET /...") and its first line never ends, or is most of the limit.
  return /^[A-Z]+ /.test(raw.subarray(0, 16).toString("latin1")) && (nl === -1 || nl > 8192);
}

/**
 * Installs Node-level answers in OpenAI's shape: parser errors and timeouts ('clientError',
 * given to fastify as clientErrorHandler), unknown Expect values, and CONNECT.
 */
export function onClientError(err: ParserError, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  // A response already under way on this socket cannot be followed by another one.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const a = clientErrorAnswer(err);
    socket.write(rawErrorResponse(a.status, a.reason, a.body));
  }
  socket.destroy();
}

export function installServerErrorAnswers(server: Server): void {
  server.on("checkExpectation", (_req: IncomingMessage, res: ServerResponse) => {
    const json = JSON.stringify(errorBody("Only 'Expect: 100-continue' is supported.", "invalid_request_error", "expectation_failed"));
    res.writeHead(417, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(json), connection: "close" });
    res.end(json);
  });
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    if (socket.writable) socket.write(rawErrorResponse(405, "Method Not Allowed", errorBody("CONNECT is not supported: labgate is not a proxy.", "invalid_request_error", "method_not_allowed")));
    socket.destroy();
  });
}

/** Long URLs and parser reasons are cut before they are echoed back. */
function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
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
