// One attempt against one deployment: lease it, call its adapter under the
// attempt's timeouts, and turn what happened into a response or the error that
// ended it. For streams the attempt succeeds at the first chunk, or commits early
// to a slow local model so the caller can keep the connection warm.
import { UpstreamError, type ErrorClass } from "../providers/errors.ts";
import type { CallContext, CompletionResult, ProviderAdapter } from "../providers/types.ts";
import type { AttemptRecord } from "../store/request-log.ts";
import { AttemptControl } from "./attempt-control.ts";
import type { BreakerPermit } from "./circuit-breaker.ts";
import { DeploymentLease } from "./lease.ts";
import type { RouteInfo, RoutedResponse, RouteRequest, RouterObserver, StreamOutcome } from "./router.ts";
import type { DeploymentRuntime } from "./runtime.ts";
import { firstOrEarly, startStream, withIdleTimeout } from "./stream-start.ts";

export type AttemptResult = { ok: true; response: RoutedResponse } | { ok: false; error: UpstreamError };

export interface AttemptSettings {
  timeoutS: number;
  firstByteTimeoutS: number | undefined;
  totalTimeoutS: number;
  /** What is left of the request's deadline, ms. */
  remainingMs: number;
}

export async function runAttempt(
  d: DeploymentRuntime,
  permit: BreakerPermit,
  req: RouteRequest,
  info: Omit<RouteInfo, "deployment">,
  settings: AttemptSettings,
  observer: RouterObserver,
): Promise<AttemptResult> {
  const adapter = d.provider.adapter as ProviderAdapter;
  const attemptNo = info.attempts.length + 1;
  const started = performance.now();
  const timeoutMs = (d.config.timeout_s ?? d.provider.config.timeout_s ?? settings.timeoutS) * 1000;
  const firstByteS = d.config.first_byte_timeout_s ?? d.provider.config.first_byte_timeout_s ?? settings.firstByteTimeoutS;
  const firstByteMs = firstByteS === undefined ? undefined : firstByteS * 1000;
  const control = new AttemptControl(req.signal, {
    timeoutMs,
    firstByteMs,
    remainingMs: settings.remainingMs,
    totalTimeoutS: settings.totalTimeoutS,
    stream: req.stream,
  });
  const lease = new DeploymentLease(d, permit);

  const record = (errorClass: ErrorClass | null): AttemptRecord => {
    const ms = performance.now() - started;
    const rec: AttemptRecord = { attempt: attemptNo, provider: d.provider.name, deployment: d.id, error_class: errorClass, ms };
    info.attempts.push(rec);
    observer.onAttempt?.(d, errorClass, ms);
    return rec;
  };
  const fail = (raw: unknown): AttemptResult => {
    control.end();
    const error = control.errorFrom(raw);
    lease.release(error.errorClass, null);
    record(error.errorClass);
    return { ok: false, error };
  };
  const firstByteSeen = (): number => {
    control.started();
    const ttfb = performance.now() - started;
    d.observeTtfb(ttfb);
    observer.onTtfb?.(d, ttfb);
    return ttfb;
  };

  const ctx: CallContext = { signal: control.signal, upstreamModel: d.upstreamModel, timeoutMs };
  let call: Promise<CompletionResult>;
  try {
    call =
      req.operation === "embeddings"
        ? adapter.embeddings(req.body, ctx).then((r) => ({ kind: "json", body: r.body, usage: r.usage }))
        : req.operation === "chat"
          ? adapter.chat(req.body, ctx)
          : adapter.completions(req.body, ctx);
  } catch (err) {
    return fail(err); // an adapter that throws before its first await
  }

  if (!req.stream) {
    let result: CompletionResult;
    try {
      result = await call;
      if (result.kind !== "json") throw new UpstreamError("malformed", "adapter answered a stream to a non-stream request");
    } catch (err) {
      return fail(err);
    }
    control.end();
    const ttfbMs = firstByteSeen();
    lease.release(null, result.usage);
    record(null);
    return {
      ok: true,
      response: { kind: "json", deployment: d, ...info, upstreamWaitMs: info.upstreamWaitMs + ttfbMs, body: result.body, usage: result.usage, ttfbMs, raw: result.raw },
    };
  }

  const stream = startStream(call);
  const mayCommitEarly = req.keepAliveMs !== undefined && firstByteMs === undefined && req.onEarlyCommit !== undefined;
  let first: Awaited<ReturnType<typeof firstOrEarly>>;
  try {
    first = await firstOrEarly(stream.first, mayCommitEarly ? req.keepAliveMs : undefined);
  } catch (err) {
    void stream.lazy.return?.().catch(() => {});
    return fail(err);
  }
  const finish = (outcome: StreamOutcome): void => {
    control.end();
    if (outcome.cancelled) lease.release(null, outcome.usage, true);
    else lease.release(outcome.error ? outcome.error.errorClass : null, outcome.usage);
  };

  if (first === "early") {
    const rest = withIdleTimeout(stream.lazy, timeoutMs, control.controller);
    const rec = record(null);
    const routeInfo: RouteInfo = { deployment: d, ...info, upstreamWaitMs: info.upstreamWaitMs + (performance.now() - started) };
    req.onEarlyCommit?.(routeInfo);
    const firstPending = stream.first.then(
      (r) => {
        firstByteSeen();
        return r;
      },
      (err: unknown) => {
        // Committed early, but the first byte never came: the attempt failed after all.
        const error = control.errorFrom(err);
        rec.error_class = error.errorClass;
        rec.ms = performance.now() - started;
        throw error;
      },
    );
    return { ok: true, response: { kind: "stream", ...routeInfo, first: undefined, firstPending, rest, ttfbMs: undefined, finish } };
  }
  const ttfbMs = firstByteSeen();
  record(null);
  // The first chunk came, so the upstream iterator is known: read it directly.
  const rest = withIdleTimeout(await stream.iterator, timeoutMs, control.controller);
  return {
    ok: true,
    response: {
      kind: "stream",
      deployment: d,
      ...info,
      upstreamWaitMs: info.upstreamWaitMs + ttfbMs,
      first: first.done ? undefined : first.value,
      rest,
      ttfbMs,
      finish,
    },
  };
}
