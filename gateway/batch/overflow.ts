// Cloud overflow of the local batch queue. For a batch whose profile names an
// `overflow_provider` (an openai provider), the worker asks check() on each of its steps;
// every little while this measures how fast the batch's items end locally, estimates
// whether the rest will end inside the completion window (deadline.ts), and when it will
// not, takes the surplus (as many pending items as the local pace cannot finish) and sends them to the provider's Batch API
// (cloud-batch.ts). Their answers come back as the items' result lines, through the same
// store calls the worker uses, so they land in the batch's one output (or error) file in
// input order and each custom_id ends exactly once: an item is marked running before it
// leaves, and endItem only ends a running item. What the cloud does not answer (its batch
// failed, expired, or an item was dropped) goes back to the local queue.
//
// One cloud batch at a time per local batch; after a failure the next try waits (30 s,
// doubling). Not persisted: at shutdown the cloud batch in flight is cancelled (best effort)
// and its items are pending again, to run locally (or overflow again) after the restart.
import type { Logger } from "pino";
import type { LabgateConfig, ProviderConfig } from "../config/schema.ts";
import type { SecretResolver } from "../config/secrets.ts";
import { openAIBase } from "../providers/factory.ts";
import type { BatchRow, BatchStore, ItemRow } from "../store/batches.ts";
import { CloudBatchClient, CloudBatchError, type CloudBatch, type CloudRequestLine, type CloudResultLine } from "./cloud-batch.ts";
import { planDeadline, ThroughputMeter } from "./deadline.ts";
import { redactValue } from "./pii.ts";
import { classifyHttpError } from "../providers/errors.ts";
import type { Operation } from "../providers/types.ts";
import { costOf } from "../store/cost.ts";
import type { CompletionService } from "../completion/service.ts";
import { BATCH_ENDPOINTS } from "./jsonl.ts";
import { errorLine, outputLine } from "./views.ts";

/** What the worker calls: check() for every in-progress batch on each of its steps, stop() when it stops. */
export interface OverflowHook {
  check(b: BatchRow, nowMs: number): void;
  /** Whether this batch's profile names an overflow provider (its pending items may go to the cloud). */
  covers(b: BatchRow): boolean;
  stop(): Promise<void>;
}

export interface BatchOverflowOptions {
  store: BatchStore;
  config: LabgateConfig;
  secrets: SecretResolver;
  log: Logger;
  /** Where an item the cloud answered is recorded (request log, metrics, cost), as one outcome. */
  completions?: Pick<CompletionService, "recordExternal">;
  /** First pause between polls of a cloud batch (ms; default a 40th of the window within 50..1000, doubling while it does not move, up to pollMaxMs). */
  pollInitialMs?: number;
  pollMaxMs?: number;
  /** Share of the measured local pace counted on (default 0.8). */
  safety?: number;
}

const DEFAULT_CLOUD_BASE = "https://api.openai.com";
const RETRY_AFTER_FAILURE_MS = 30_000;
const MAX_RETRY_MS = 30 * 60_000;
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

interface Watch {
  meter: ThroughputMeter;
  /** Items of the batch ended so far by the local queue (all ended minus the cloud's). */
  localEnded: number;
  cloudEnded: number;
  nextCheckAt: number;
  checkEveryMs: number;
  minObservedMs: number;
  reserveS: number;
  /** The cloud batch in flight, if any. */
  job: Promise<void> | undefined;
  abort: AbortController | undefined;
  /** No new cloud batch before this time (Date.now() ms, the worker's clock; after a failure). */
  notBefore: number;
  failures: number;
}

/** The overflow, or undefined when no batch profile names an overflow provider (nothing to do per step). */
export function createOverflow(o: BatchOverflowOptions): BatchOverflow | undefined {
  const named = Object.entries(o.config.batch_profiles).filter(([, p]) => p.overflow_provider !== undefined);
  if (named.length === 0) return undefined;
  for (const [profile, p] of named) {
    const pc = o.config.providers[p.overflow_provider!];
    if (!pc) o.log.warn({ profile, provider: p.overflow_provider }, "batch profile's overflow_provider is not a configured provider: no overflow for it");
    else if (pc.type !== "openai") o.log.warn({ profile, provider: p.overflow_provider, type: pc.type }, "batch profile's overflow_provider is not an openai provider (Batch API): no overflow for it");
  }
  return new BatchOverflow(o);
}

export class BatchOverflow implements OverflowHook {
  private readonly o: BatchOverflowOptions;
  private readonly watches = new Map<string, Watch>();
  private readonly clients = new Map<string, { client: CloudBatchClient; key: string | undefined } | undefined>();
  private stopped = false;

  constructor(o: BatchOverflowOptions) {
    this.o = o;
  }

  covers(b: BatchRow): boolean {
    return b.profile !== null && this.o.config.batch_profiles[b.profile]?.overflow_provider !== undefined;
  }

  check(b: BatchRow, nowMs: number): void {
    if (this.stopped || b.status !== "in_progress") return;
    const providerName = b.profile ? this.o.config.batch_profiles[b.profile]?.overflow_provider : undefined;
    if (!providerName) return;
    const w = this.watch(b, nowMs);
    if (nowMs < w.nextCheckAt) return;
    w.nextCheckAt = nowMs + w.checkEveryMs;
    const { store } = this.o;
    const c = store.counts(b.id);
    const local = c.completed + c.failed - w.cloudEnded;
    if (local > w.localEnded) w.meter.record(local - w.localEnded);
    w.localEnded = local;
    if (w.job || nowMs < w.notBefore) return;
    const cloud = this.client(providerName);
    if (!cloud) return;
    const plan = planDeadline({
      itemsLeft: store.unended(b.id),
      itemsPerSecond: w.meter.rate(w.minObservedMs),
      secondsLeft: b.expires_at - nowMs / 1000,
      safety: this.o.safety ?? 0.8,
      reserveSeconds: w.reserveS,
      // Too few items ended early in a long window (a model loading, an interactive burst) is no pace yet.
      samples: w.meter.count(),
      watchedSeconds: w.meter.watchedMs() / 1000,
      windowSeconds: b.window_s,
    });
    if (plan.verdict !== "late") return;
    // The surplus: the next pending items in input order (only as many rows as are sent are read;
    // the local queue goes on with those after them).
    const taken = store.due(b.id, Number.MAX_SAFE_INTEGER, plan.overflowItems).filter((it) => store.markRunning(b.id, it.line));
    if (taken.length === 0) return;
    this.o.log.info(
      { batch: b.id, provider: providerName, items: taken.length, items_left: plan.localItems + plan.overflowItems, local_items_per_s: w.meter.rate(), seconds_left: Math.round(b.expires_at - nowMs / 1000) },
      "batch will not finish in its window at the local pace: the surplus goes to the cloud's Batch API",
    );
    const abort = new AbortController();
    w.abort = abort;
    w.job = this.send(b, providerName, cloud.client, cloud.key, taken, w, abort.signal).finally(() => {
      w.job = undefined;
      w.abort = undefined;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const jobs: Promise<void>[] = [];
    for (const w of this.watches.values()) {
      w.abort?.abort();
      if (w.job) jobs.push(w.job);
    }
    await Promise.allSettled(jobs);
  }

  private watch(b: BatchRow, nowMs: number): Watch {
    let w = this.watches.get(b.id);
    if (w) return w;
    // Forget batches that have ended (a watch is made per batch while it runs).
    for (const [id, old] of this.watches) if (!old.job && this.o.store.batch(id)?.status !== "in_progress") this.watches.delete(id);
    const windowMs = b.window_s * 1000;
    const c = this.o.store.counts(b.id);
    w = {
      // A few tenths of the window, within 1 s .. 5 min: long enough to smooth bursts of
      // concurrent items, short enough to see the pace change.
      meter: new ThroughputMeter({ windowMs: clamp(windowMs / 4, 1000, 300_000), now: () => performance.now() }),
      localEnded: c.completed + c.failed,
      cloudEnded: 0,
      nextCheckAt: nowMs,
      checkEveryMs: clamp(windowMs / 50, 100, 5000),
      minObservedMs: clamp(windowMs / 10, 250, 30_000),
      // The cloud's answers need time to come back and the files to be written.
      reserveS: clamp(b.window_s / 10, 0.5, 600),
      job: undefined,
      abort: undefined,
      notBefore: 0,
      failures: 0,
    };
    w.meter.start();
    this.watches.set(b.id, w);
    return w;
  }

  /** The provider's Batch API client (built once; undefined when the provider cannot be used). */
  private client(name: string): { client: CloudBatchClient; key: string | undefined } | undefined {
    if (this.clients.has(name)) return this.clients.get(name);
    const pc: ProviderConfig | undefined = this.o.config.providers[name];
    let made: { client: CloudBatchClient; key: string | undefined } | undefined;
    if (pc?.type === "openai") {
      const key = pc.api_key ? this.o.secrets.resolve(pc.api_key) : undefined;
      if (key && !key.ok) this.o.log.warn({ provider: name, reason: key.reason }, "overflow provider's api_key is not resolved: no overflow");
      else {
        const headers: Record<string, string> = {};
        for (const [h, ref] of Object.entries(pc.headers ?? {})) {
          const r = this.o.secrets.resolve(ref);
          if (r.ok) headers[h] = r.value;
        }
        const apiKey = key?.ok ? key.value : undefined;
        made = { client: new CloudBatchClient({ baseUrl: openAIBase(pc.base_url ?? DEFAULT_CLOUD_BASE), apiKey, headers }), key: apiKey };
      }
    }
    this.clients.set(name, made);
    return made;
  }

  /** One cloud batch: upload, create, wait, read both files, end the items it answered; the rest go back to the local queue. */
  private async send(b: BatchRow, provider: string, client: CloudBatchClient, key: string | undefined, items: ItemRow[], w: Watch, signal: AbortSignal): Promise<void> {
    const { store, log } = this.o;
    const byCustomId = new Map(items.map((it) => [it.custom_id, it]));
    const redact = (JSON.parse(b.options) as { redact_pii?: boolean }).redact_pii === true;
    let cloudId: string | undefined;
    const sentAt = performance.now();
    try {
      const lines: CloudRequestLine[] = items.map((it) => ({ custom_id: it.custom_id, method: "POST", url: b.endpoint, body: this.cloudBody(JSON.parse(it.body) as Record<string, unknown>, provider) }));
      const fileId = await client.uploadRequests(lines, `${b.id}-overflow.jsonl`, signal);
      const created = await client.createBatch({ input_file_id: fileId, endpoint: b.endpoint, metadata: { labgate_batch: b.id } }, signal);
      cloudId = created.id;
      log.info({ batch: b.id, provider, cloud_batch: cloudId, items: items.length }, "overflow batch created");
      let ended: CloudBatch = created;
      if (!["completed", "failed", "expired", "cancelled"].includes(created.status)) {
        ended = await client.waitUntilEnded(created.id, {
          signal,
          // A short window is asked about more often (a 24h one every second at first).
          initialDelayMs: this.o.pollInitialMs ?? clamp((b.window_s * 1000) / 40, 50, 1000),
          maxDelayMs: this.o.pollMaxMs ?? 30_000,
          onUpdate: () => {
            // The local batch was cancelled or expired meanwhile: its items are ended; stop paying for them.
            const now = store.batch(b.id)?.status;
            if (now !== "in_progress") w.abort?.abort("local batch ended");
          },
        });
      }
      let answered = 0;
      for (const fileId of [ended.output_file_id, ended.error_file_id]) {
        if (!fileId) continue;
        const { lines: results, malformed } = await client.resultLines(fileId, signal);
        if (malformed > 0) log.warn({ batch: b.id, cloud_batch: cloudId, malformed }, "overflow result lines that are not result lines were skipped");
        for (const r of results) {
          const it = byCustomId.get(r.custom_id);
          if (!it) continue; // not ours, or answered twice: only the first counts
          byCustomId.delete(r.custom_id);
          if (this.endFromCloud(b.id, it, r, redact)) {
            answered++;
            w.cloudEnded++;
            this.record(b, provider, it, r, sentAt);
          }
        }
      }
      log.info({ batch: b.id, cloud_batch: cloudId, status: ended.status, answered, back_to_local: byCustomId.size }, "overflow batch ended");
      w.failures = 0;
    } catch (err) {
      const aborted = signal.aborted;
      if (aborted && cloudId) await client.cancelBatch(cloudId, AbortSignal.timeout(2000)).catch(() => undefined);
      if (!aborted) {
        w.failures++;
        // The cloud's Retry-After (a 429 on upload or create), when it asks for longer than the backoff.
        const retryAfter = err instanceof CloudBatchError ? (err.retryAfterMs ?? 0) : 0;
        w.notBefore = Date.now() + Math.min(MAX_RETRY_MS, Math.max(retryAfter, RETRY_AFTER_FAILURE_MS * 2 ** (w.failures - 1)));
        const message = String((err as Error).message ?? err);
        log.warn({ batch: b.id, provider, cloud_batch: cloudId, err: key ? message.replaceAll(key, "[REDACTED]") : message }, "overflow failed: its items go back to the local queue");
      }
    } finally {
      // Whatever the cloud did not answer runs locally (unless the batch has ended them meanwhile).
      for (const it of byCustomId.values()) store.requeue(b.id, it.line, 0, null);
    }
  }

  /** Ends one item from a cloud result line; false when the batch had ended it already, or it goes back to the local queue. */
  private endFromCloud(batchId: string, it: ItemRow, r: CloudResultLine, redact: boolean): boolean {
    const { store } = this.o;
    if (r.response) {
      const ok = r.response.status_code >= 200 && r.response.status_code < 300;
      const body = redact ? redactValue(r.response.body) : r.response.body;
      const usage = (r.response.body as { usage?: { prompt_tokens?: number; completion_tokens?: number } } | null)?.usage;
      return store.endItem(batchId, it.line, {
        state: ok ? "done" : "failed",
        file: "output",
        result: outputLine(it.custom_id, r.response.status_code, r.response.request_id ?? r.id, body),
        requestId: null,
        promptTokens: usage?.prompt_tokens ?? 0,
        completionTokens: usage?.completion_tokens ?? 0,
      });
    }
    const code = r.error?.code ?? "overflow_error";
    if (code === "batch_expired" || code === "batch_cancelled") {
      // The cloud gave up on it, not the request: the local queue may still make it.
      store.requeue(batchId, it.line, 0, null);
      return false;
    }
    const message = redact ? redactValue(r.error?.message ?? "") : (r.error?.message ?? "");
    return store.endItem(batchId, it.line, { state: "failed", file: "error", result: errorLine(it.custom_id, code, String(message)), requestId: null, promptTokens: 0, completionTokens: 0 });
  }

  /**
   * One outcome per item the cloud ended (tenant batch:<tenant>, an overflow of the provider),
   * priced at its group's deployment on that provider when the config prices one: the
   * deployment's own price, not a Batch API discount. Its time is the cloud batch's.
   */
  private record(b: BatchRow, provider: string, it: ItemRow, r: CloudResultLine, sentAt: number): void {
    if (!this.o.completions) return;
    try {
      const body = JSON.parse(it.body) as { model?: unknown };
      const model = typeof body.model === "string" ? body.model : "";
      const d = this.o.config.models[model]?.deployments.find((x) => x.provider === provider);
      const status = r.response?.status_code ?? 502;
      const ok = status >= 200 && status < 300;
      const u = (r.response?.body as { usage?: { prompt_tokens?: number; completion_tokens?: number } } | null | undefined)?.usage;
      const usage = u ? { prompt_tokens: u.prompt_tokens ?? 0, completion_tokens: u.completion_tokens ?? 0, total_tokens: (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0) } : null;
      this.o.completions.recordExternal({
        tenant: `batch:${b.tenant ?? "anonymous"}`,
        operation: BATCH_ENDPOINTS[b.endpoint] as Operation,
        model,
        stream: false,
        provider,
        upstreamModel: d?.model ?? model,
        tier: d?.tier ?? null,
        fallbackDepth: 0,
        isFallback: false,
        isOverflow: true,
        panic: false,
        status,
        errorClass: ok ? null : r.response ? classifyHttpError(status, "") : "server_error",
        unknownModel: false,
        usage,
        costUsd: ok ? costOf(usage, d?.price) : null,
        ttfbMs: null,
        totalMs: performance.now() - sentAt,
        overheadMs: null,
        routingMs: null,
        attempts: [],
      });
    } catch (err) {
      this.o.log.error({ err, batch: b.id, line: it.line }, "recording an overflow item's outcome failed");
    }
  }

  /** The item's body for the cloud: the local model group's name becomes the provider's model when a deployment maps it. */
  private cloudBody(body: Record<string, unknown>, provider: string): Record<string, unknown> {
    const group = typeof body.model === "string" ? this.o.config.models[body.model] : undefined;
    const d = group?.deployments.find((x) => x.provider === provider);
    return d ? { ...body, model: d.model } : body;
  }
}
