// Errors an adapter raises when its upstream fails. The class tells the router
// whether to try the next deployment; the status tells the client what happened
// when nothing else is left.

export type ErrorClass =
  | "connect" // could not connect (refused, DNS, unreachable)
  | "reset" // connection dropped before the answer was complete
  | "timeout" // the whole attempt took longer than timeout_s
  | "first_byte_timeout" // no first token within first_byte_timeout_s
  | "rate_limited" // upstream 429
  | "server_error" // upstream 5xx
  | "context_window" // prompt longer than the deployment's context
  | "bad_request" // upstream 4xx caused by the request itself: never retried elsewhere
  | "auth" // upstream 401/403: the provider's credentials are wrong
  | "not_found" // upstream 404 (model not on that server)
  | "malformed" // upstream answered something that is not its protocol
  | "unavailable" // provider disabled, unresolved secret, model missing on disk
  | "overloaded" // local queue full
  | "cancelled" // the client went away
  | "internal"; // labgate itself failed (a bug, or an input it could not encode): no upstream is to blame

const RETRYABLE: ReadonlySet<ErrorClass> = new Set<ErrorClass>([
  "connect",
  "reset",
  "timeout",
  "first_byte_timeout",
  "rate_limited",
  "server_error",
  "malformed",
  "unavailable",
  "overloaded",
  "auth",
  "not_found",
]);

export class UpstreamError extends Error {
  readonly errorClass: ErrorClass;
  /** HTTP status the upstream returned, if any. */
  readonly upstreamStatus: number | undefined;
  /** From a Retry-After header, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(
    errorClass: ErrorClass,
    message: string,
    opts: { upstreamStatus?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "UpstreamError";
    this.errorClass = errorClass;
    this.upstreamStatus = opts.upstreamStatus;
    this.retryAfterMs = opts.retryAfterMs;
  }

  /** Whether another deployment (or a retry) may succeed where this one failed. */
  get failover(): boolean {
    return RETRYABLE.has(this.errorClass) || this.errorClass === "context_window";
  }

  /** Whether the same deployment is worth retrying after a backoff. */
  get retryable(): boolean {
    return (
      this.errorClass === "connect" ||
      this.errorClass === "reset" ||
      this.errorClass === "timeout" ||
      this.errorClass === "rate_limited" ||
      this.errorClass === "server_error"
    );
  }

  /** The status labgate answers with when this is the last error. */
  get clientStatus(): number {
    switch (this.errorClass) {
      case "rate_limited":
      case "overloaded":
        return 429;
      case "timeout":
      case "first_byte_timeout":
        return 504;
      case "unavailable":
        return 503;
      case "bad_request":
      case "context_window":
        return this.upstreamStatus && this.upstreamStatus >= 400 && this.upstreamStatus < 500 ? this.upstreamStatus : 400;
      case "cancelled":
        return 499;
      case "internal":
        return 500;
      default:
        return 502;
    }
  }
}

/** Parse a Retry-After header (seconds or HTTP date) into ms. */
export function parseRetryAfter(value: string | string[] | undefined | null): number | undefined {
  if (value == null) return undefined;
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === "") return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(v);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

const CONTEXT_PATTERNS = [
  /context[_ ]length/i,
  /context window/i,
  /maximum context/i,
  /exceeds? the available context/i,
  /too many tokens/i,
  /prompt is too long/i,
  /exceed_context_size/i,
];

/** Classify an upstream HTTP error status + message. */
export function classifyHttpError(status: number, message: string): ErrorClass {
  if (CONTEXT_PATTERNS.some((p) => p.test(message)) && status >= 400 && status < 500) return "context_window";
  if (status === 429) return "rate_limited";
  if (status === 401 || status === 403) return "auth";
  if (status === 404) return "not_found";
  if (status === 408) return "timeout";
  if (status >= 500) return "server_error";
  return "bad_request";
}

/** Map a low-level network error (undici / fetch) into an UpstreamError. */
export function fromNetworkError(err: unknown, signal?: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  if (signal?.aborted) {
    const reason = signal.reason as unknown;
    if (reason instanceof UpstreamError) return reason;
    return new UpstreamError("cancelled", "request cancelled", { cause: err });
  }
  const code = e?.code ?? e?.cause?.code ?? "";
  const msg = e?.message ?? String(err);
  // A JavaScript error with no network code was raised by labgate's own code (for
  // example JSON encoding of a hostile body overflowing the stack): no byte reached
  // the upstream, so it must not count against it, nor be retried elsewhere.
  if (!code && (err instanceof RangeError || err instanceof ReferenceError || (err instanceof TypeError && !/fetch|terminated|socket|network/i.test(msg)))) {
    return new UpstreamError("internal", `internal error in labgate: ${msg}`, { cause: err });
  }
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_CONNECT/.test(code)) {
    return new UpstreamError("connect", `cannot connect to upstream: ${code}`, { cause: err });
  }
  if (/TIMEOUT/i.test(code) || e?.name === "TimeoutError") {
    return new UpstreamError("timeout", "upstream timed out", { cause: err });
  }
  if (/ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED/.test(code) || /other side closed|socket/i.test(msg)) {
    return new UpstreamError("reset", "upstream connection reset", { cause: err });
  }
  return new UpstreamError("connect", `upstream request failed: ${msg}`, { cause: err });
}
