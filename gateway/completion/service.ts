// The completion service: every caller (the HTTP API, the batch worker) asks it
// for a completion; it routes the request and emits exactly one outcome when the
// request ends, however it ends. Nothing else writes log rows or counts cost.
import { UpstreamError } from "../providers/errors.ts";
import type { ChunkBatch, OpenAIBody, Operation, Usage } from "../providers/types.ts";
import { RouteFailure, type RoutedResponse, type RouteInfo, type Router } from "../router/router.ts";
import { busyCostOf, costOf } from "../store/cost.ts";
import type { IdSource } from "../store/ids.ts";
import { failureStatus, type OutcomeListener, type RequestOutcome } from "./outcome.ts";

export interface CompletionRequest {
  operation: Operation;
  body: OpenAIBody;
  stream: boolean;
  tenant: string;
  /** Aborts when the caller goes away. */
  signal: AbortSignal;
  /** performance.now() when the request reached labgate (the overhead is measured from it). */
  arrivedAt?: number;
  /** Streams: commit to a slow deployment after this long and call onEarlyCommit (keep-alive). */
  keepAliveMs?: number;
  onEarlyCommit?: (started: StartedStream) => void;
}

interface CompletionBase {
  id: string;
  route: RouteInfo;
  /** ms spent in labgate itself before the answer started. */
  overheadMs: number;
}

export interface JsonCompletion extends CompletionBase {
  kind: "json";
  body: Record<string, unknown>;
  /** The upstream's own bytes when it spoke OpenAI already. */
  raw: string | undefined;
  usage: Usage | null;
}

/** What the caller learns when a stream is committed (at its first chunk, or early for keep-alive). */
export interface StartedStream extends CompletionBase {
  kind: "stream";
}

export interface StreamCompletion extends StartedStream {
  /** The first batch, or undefined for an empty stream or one committed early (see firstPending). */
  first: ChunkBatch | undefined;
  /** Committed early: resolves to the first batch when it comes. */
  firstPending: Promise<IteratorResult<ChunkBatch>> | undefined;
  /** The remaining batches. */
  rest: AsyncIterator<ChunkBatch>;
  /** Call once when the stream has ended for the caller, with the usage its chunks carried; emits the outcome. */
  end(how: { usage: Usage | null; error?: UpstreamError; cancelled?: boolean }): void;
}

export type Completion = JsonCompletion | StreamCompletion;

/** Thrown by complete(): the route failed, and its outcome was already emitted. */
export class CompletionFailure extends Error {
  readonly id: string;
  readonly failure: RouteFailure;
  readonly status: number;
  constructor(id: string, failure: RouteFailure, status: number) {
    super(failure.message);
    this.name = "CompletionFailure";
    this.id = id;
    this.failure = failure;
    this.status = status;
  }
}

export interface CompletionServiceOptions {
  router: Router;
  ids: IdSource;
  /** Told when labgate itself failed (a bug): the caller gets a 500. */
  onInternalError?: (err: unknown) => void;
}

export class CompletionService {
  private readonly router: Router;
  private readonly ids: IdSource;
  private readonly listeners: OutcomeListener[] = [];
  private readonly onInternalError: (err: unknown) => void;

  constructor(opts: CompletionServiceOptions) {
    this.router = opts.router;
    this.ids = opts.ids;
    this.onInternalError = opts.onInternalError ?? (() => {});
  }

  /** Subscribe to every request's outcome; returns the unsubscribe function. */
  onOutcome(listener: OutcomeListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private emit(o: RequestOutcome): void {
    for (let i = 0; i < this.listeners.length; i++) {
      try {
        this.listeners[i]!(o);
      } catch (err) {
        // A consumer's bug must not fail the request nor keep the outcome from the others.
        this.onInternalError(err);
      }
    }
  }

  /**
   * The outcome of a request answered outside the router (the batch queue's cloud overflow
   * sends items through a provider's Batch API): given an id and emitted like any other, so
   * the request log, metrics, costs and budgets count it. Returns its id.
   */
  recordExternal(o: Omit<RequestOutcome, "id" | "ts">, ts = Date.now()): string {
    const id = this.ids.next(ts);
    this.emit({ ...o, id, ts });
    return id;
  }

  async complete(req: CompletionRequest): Promise<Completion> {
    const started = req.arrivedAt ?? performance.now();
    const ts = Date.now();
    const id = this.ids.next(ts);
    const model = typeof req.body.model === "string" ? req.body.model : "";
    let early: StartedStream | undefined;
    let routed: RoutedResponse;
    const routeStarted = performance.now();
    try {
      routed = await this.router.route({
        operation: req.operation,
        model,
        body: req.body,
        stream: req.stream,
        signal: req.signal,
        keepAliveMs: req.keepAliveMs,
        onEarlyCommit: req.onEarlyCommit
          ? (route) => {
              early = { kind: "stream", id, route, overheadMs: performance.now() - started - route.upstreamWaitMs };
              req.onEarlyCommit!(early);
            }
          : undefined,
      });
    } catch (err) {
      const failure =
        err instanceof RouteFailure ? err : new RouteFailure("rejected", "Internal error in labgate.", { error: new UpstreamError("internal", "Internal error in labgate.") });
      if (!(err instanceof RouteFailure)) this.onInternalError(err);
      const status = req.signal.aborted ? 499 : failureStatus(failure);
      this.emit({
        ...this.base(id, ts, req, model),
        provider: failure.attempts.at(-1)?.provider ?? null,
        upstreamModel: null,
        tier: null,
        fallbackDepth: failure.fallbackDepth,
        isFallback: failure.attempts.length > 1,
        isOverflow: false,
        panic: failure.panic,
        status,
        errorClass: req.signal.aborted ? "cancelled" : failure.errorClass,
        unknownModel: failure.reason === "model_not_found",
        usage: null,
        costUsd: null,
        ttfbMs: null,
        totalMs: performance.now() - started,
        overheadMs: null,
        // Without attempts the whole time was the decision; with some, the upstream share is unknown here.
        routingMs: failure.attempts.length === 0 ? performance.now() - routeStarted : null,
        attempts: failure.attempts,
      });
      throw new CompletionFailure(id, failure, status);
    }

    const routingMs = Math.max(0, performance.now() - routeStarted - routed.upstreamWaitMs);
    if (routed.kind === "json") {
      const overheadMs = performance.now() - started - routed.upstreamWaitMs;
      this.emit(this.success(id, ts, req, model, routed, { status: 200, errorClass: null, usage: routed.usage, ttfbMs: routed.ttfbMs, overheadMs, started, routingMs }));
      return { kind: "json", id, route: routed, overheadMs, body: routed.body, raw: routed.raw, usage: routed.usage };
    }

    const overheadMs = early?.overheadMs ?? performance.now() - started - routed.upstreamWaitMs;
    let ttfbMs = routed.ttfbMs;
    let ended = false;
    // Committed early (keep-alive): the time to first byte is known when the first batch comes.
    const firstPending =
      routed.firstPending === undefined
        ? undefined
        : routed.firstPending.then((r) => {
            ttfbMs = performance.now() - started;
            return r;
          });
    // The caller reads the stream's batches and hands their usage back at the end: a wrapper
    // here that read them too cost ~40% of labgate's CPU per streamed request (measured).
    const end = (how: { usage: Usage | null; error?: UpstreamError; cancelled?: boolean }): void => {
      if (ended) return;
      ended = true;
      const usage = how.usage;
      if (how.cancelled) {
        void routed.rest.return?.();
        routed.finish({ usage, cancelled: true });
      } else routed.finish({ usage, error: how.error });
      const status = how.cancelled ? 499 : how.error ? how.error.clientStatus : 200;
      const errorClass = how.cancelled ? "cancelled" : (how.error?.errorClass ?? null);
      this.emit(this.success(id, ts, req, model, routed, { status, errorClass, usage, ttfbMs, overheadMs, started, routingMs }));
    };
    return { kind: "stream", id, route: routed, overheadMs, first: routed.first, firstPending, rest: routed.rest, end };
  }

  private base(id: string, ts: number, req: CompletionRequest, model: string): Pick<RequestOutcome, "id" | "ts" | "tenant" | "operation" | "model" | "stream"> {
    return { id, ts, tenant: req.tenant, operation: req.operation, model, stream: req.stream };
  }

  private success(
    id: string,
    ts: number,
    req: CompletionRequest,
    model: string,
    route: RouteInfo,
    r: { status: number; errorClass: string | null; usage: Usage | null; ttfbMs: number | undefined; overheadMs: number; started: number; routingMs: number },
  ): RequestOutcome {
    const d = route.deployment;
    const totalMs = performance.now() - r.started;
    // Per-token price when there is one; else the hardware's hourly cost by busy time (the
    // request has left the deployment's in-flight count already, so it runs alongside inFlight others).
    const costUsd =
      d.price === undefined && d.config.hourly_cost !== undefined && r.status === 200
        ? busyCostOf(d.config.hourly_cost, totalMs, d.inFlight + 1)
        : costOf(r.usage, d.price);
    return {
      ...this.base(id, ts, req, model),
      provider: d.provider.name,
      upstreamModel: d.upstreamModel,
      tier: d.tier ?? null,
      fallbackDepth: route.fallbackDepth,
      isFallback: route.isFallback,
      isOverflow: route.isOverflow,
      panic: route.panic,
      status: r.status,
      errorClass: r.errorClass,
      unknownModel: false,
      usage: r.usage,
      costUsd,
      ttfbMs: r.ttfbMs ?? null,
      totalMs,
      overheadMs: r.overheadMs,
      routingMs: r.routingMs,
      attempts: route.attempts,
    };
  }
}
