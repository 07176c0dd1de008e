// Anthropic's error objects -> UpstreamError (https://docs.anthropic.com/en/api/errors).
import { UpstreamError, classifyHttpError } from "../errors.ts";
import { isRecord } from "../mapping-helpers.ts";

/** The HTTP status Anthropic uses for each error type. */
const STATUS_BY_ERROR_TYPE: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/** An Anthropic `error` object (from an `error` stream event or a 200 error body) -> UpstreamError. */
export function anthropicError(error: unknown): UpstreamError {
  const e = isRecord(error) ? error : {};
  const type = typeof e.type === "string" ? e.type : "api_error";
  const message = typeof e.message === "string" ? e.message : type;
  const status = STATUS_BY_ERROR_TYPE[type] ?? 500;
  const cls = type === "billing_error" ? "auth" : classifyHttpError(status, message);
  return new UpstreamError(cls, `anthropic ${type}: ${message}`, { upstreamStatus: status });
}

/** Anthropic's 402 billing_error means the account cannot pay: a provider problem, not the request's. */
export function reclassifyBilling(err: unknown): never {
  if (err instanceof UpstreamError && err.upstreamStatus === 402) {
    throw new UpstreamError("auth", err.message, { upstreamStatus: 402, retryAfterMs: err.retryAfterMs, cause: err });
  }
  throw err;
}
