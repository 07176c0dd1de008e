// The abort wiring of one attempt: the caller going away, the attempt's start
// timeout (whole answer, or first chunk for streams) and the request's own
// deadline all abort the upstream call with an UpstreamError saying which.
import { UpstreamError, fromNetworkError, type ErrorClass } from "../providers/errors.ts";

export interface AttemptTimeouts {
  /** The attempt's timeout_s, ms. */
  timeoutMs: number;
  /** Streams only: first_byte_timeout_s, ms. */
  firstByteMs: number | undefined;
  /** What is left of router.total_timeout_s, ms. */
  remainingMs: number;
  totalTimeoutS: number;
  stream: boolean;
}

export class AttemptControl {
  private readonly ac = new AbortController();
  private readonly clientSignal: AbortSignal;
  private readonly onClientAbort = (): void => this.ac.abort(new UpstreamError("cancelled", "client closed the request"));
  private readonly startTimer: NodeJS.Timeout;

  constructor(clientSignal: AbortSignal, t: AttemptTimeouts) {
    this.clientSignal = clientSignal;
    if (clientSignal.aborted) this.onClientAbort();
    else clientSignal.addEventListener("abort", this.onClientAbort, { once: true });
    // Until the first chunk (streams) or the whole answer (non-streams): the attempt timeout,
    // unless the request's deadline comes first.
    const attemptTimeoutMs = t.stream && t.firstByteMs !== undefined ? Math.min(t.firstByteMs, t.timeoutMs) : t.timeoutMs;
    const deadlineFirst = t.remainingMs < attemptTimeoutMs;
    this.startTimer = setTimeout(
      () => {
        if (deadlineFirst) {
          this.ac.abort(new UpstreamError("timeout", `no answer within router.total_timeout_s (${t.totalTimeoutS} s)`));
          return;
        }
        const cls: ErrorClass = t.stream && t.firstByteMs !== undefined && t.firstByteMs < t.timeoutMs ? "first_byte_timeout" : "timeout";
        this.ac.abort(new UpstreamError(cls, cls === "first_byte_timeout" ? `no first byte within ${t.firstByteMs} ms` : `no answer within ${t.timeoutMs} ms`));
      },
      deadlineFirst ? t.remainingMs : attemptTimeoutMs,
    );
  }

  /** What the adapter is given: aborts on any of the above. */
  get signal(): AbortSignal {
    return this.ac.signal;
  }

  get controller(): AbortController {
    return this.ac;
  }

  /** The answer (or first chunk) came: the start timeout no longer applies. */
  started(): void {
    clearTimeout(this.startTimer);
  }

  /** The attempt is over: no timer, no listener on the caller's signal. */
  end(): void {
    clearTimeout(this.startTimer);
    this.clientSignal.removeEventListener("abort", this.onClientAbort);
  }

  /** The error an upstream failure stands for: the abort's reason when this attempt aborted it. */
  errorFrom(raw: unknown): UpstreamError {
    const s = this.ac.signal;
    return s.aborted && s.reason instanceof UpstreamError ? s.reason : fromNetworkError(raw, s);
  }
}
