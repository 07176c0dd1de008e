// A deployment taken for one attempt: its in-flight and rate-limit counts go up
// when the attempt starts and come back exactly once when it ends, with the
// breaker told how it went.
import type { ErrorClass } from "../providers/errors.ts";
import type { Usage } from "../providers/types.ts";
import type { BreakerPermit } from "./circuit-breaker.ts";
import type { DeploymentRuntime } from "./runtime.ts";

/** Outcomes that say nothing about the upstream's health: the caller left, the request was wrong, or labgate failed. */
const BLAMELESS: ReadonlySet<ErrorClass> = new Set<ErrorClass>(["cancelled", "bad_request", "context_window", "internal"]);

export class DeploymentLease {
  private released = false;
  private readonly d: DeploymentRuntime;
  private readonly permit: BreakerPermit;

  constructor(d: DeploymentRuntime, permit: BreakerPermit) {
    this.d = d;
    this.permit = permit;
    d.inFlight++;
    d.provider.inFlight++;
    d.requests++;
    d.limiter.recordRequest();
    d.provider.limiter.recordRequest();
  }

  /** The attempt succeeded (errorClass null), failed, or ended with no verdict (neutral). Later calls do nothing. */
  release(errorClass: ErrorClass | null, usage: Usage | null, neutral = false): void {
    if (this.released) return;
    this.released = true;
    const d = this.d;
    d.inFlight--;
    d.provider.inFlight--;
    if (usage) {
      d.limiter.recordTokens(usage.total_tokens);
      d.provider.limiter.recordTokens(usage.total_tokens);
    }
    if (neutral || (errorClass !== null && BLAMELESS.has(errorClass))) d.breaker.onNeutral(this.permit);
    else if (errorClass === null) d.breaker.onSuccess(this.permit);
    else {
      d.failures++;
      d.breaker.onFailure(this.permit);
    }
  }
}
