// The batch queue as the composition root builds it: its store, files folder, admission
// gate and worker, and the operations the /v1/files and /v1/batches routes call.
import { join } from "node:path";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { CompletionService } from "../completion/service.ts";
import type { LabgateConfig } from "../config/schema.ts";
import type { SecretResolver } from "../config/secrets.ts";
import type { Router } from "../router/router.ts";
import { BatchStore, type BatchRow } from "../store/batches.ts";
import type { Db } from "../store/db.ts";
import type { EventHub } from "../telemetry/events.ts";
import type { LabMetrics } from "../telemetry/lab-metrics.ts";
import { AdmissionGate } from "./admission.ts";
import { FileStorage } from "./file-store.ts";
import { newBatchId } from "./ids.ts";
import { createBatchMetrics } from "./metrics.ts";
import { createOverflow } from "./overflow.ts";
import type { ResolvedProfile } from "./profiles.ts";
import { batchObject } from "./views.ts";
import { BatchWorker } from "./worker.ts";

export interface BatchQueueOptions {
  db: Db;
  dataDir: string;
  config: LabgateConfig;
  router: Router;
  completions: CompletionService;
  events: EventHub;
  log: Logger;
  registry: Registry;
  labMetrics: LabMetrics;
  /** Resolves the overflow providers' keys (batch_profiles.*.overflow_provider). */
  secrets: SecretResolver;
}

export class BatchQueue {
  readonly store: BatchStore;
  readonly files: FileStorage;
  readonly gate: AdmissionGate;
  readonly worker: BatchWorker;
  readonly config: LabgateConfig;

  constructor(o: BatchQueueOptions) {
    this.config = o.config;
    const batch = o.config.batch;
    this.store = new BatchStore(o.db);
    this.files = new FileStorage(batch.files_dir ?? join(o.dataDir, "files"));
    this.gate = new AdmissionGate({
      router: o.router,
      providerConcurrency: batch.provider_concurrency,
      perProvider: batch.providers,
      interactiveThreshold: batch.interactive_threshold,
      preempt: batch.preempt,
      quietMs: batch.interactive_quiet_ms,
      busyCap: batch.interactive_batch_cap,
    });
    this.worker = new BatchWorker({
      store: this.store,
      files: this.files,
      completions: o.completions,
      gate: this.gate,
      config: batch,
      metrics: createBatchMetrics(o.registry, o.labMetrics, this.store),
      events: o.events,
      log: o.log.child({ component: "batch" }),
      overflow: createOverflow({ store: this.store, config: o.config, secrets: o.secrets, completions: o.completions, log: o.log.child({ component: "batch-overflow" }) }),
    });
  }

  start(): Promise<void> {
    return this.worker.start();
  }

  stop(): Promise<void> {
    return this.worker.stop();
  }

  /** A new batch, validating; the worker reads its file next. */
  create(p: { inputFileId: string; endpoint: string; metadata: Record<string, string> | null; profile: ResolvedProfile; tenant: string }): BatchRow {
    const now = Math.floor(Date.now() / 1000);
    const row: BatchRow = {
      id: newBatchId(),
      tenant: p.tenant,
      endpoint: p.endpoint,
      input_file_id: p.inputFileId,
      completion_window: p.profile.completionWindow,
      window_s: p.profile.windowS,
      profile: p.profile.name,
      priority: p.profile.priority,
      status: "validating",
      metadata: p.metadata ? JSON.stringify(p.metadata) : null,
      options: JSON.stringify(p.profile.options),
      ending: null,
      errors: null,
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: null,
      expires_at: now + p.profile.windowS,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      prompt_tokens: 0,
      completion_tokens: 0,
      request_total: null,
      request_completed: null,
      request_failed: null,
      purged: 0,
    };
    this.store.insertBatch(row);
    this.worker.publish(row.id);
    this.worker.wake();
    return row;
  }

  /** validating / in_progress -> cancelling; the worker ends it. Undefined when it has ended already. */
  cancel(id: string): BatchRow | undefined {
    const changed = this.store.cancel(id, Math.floor(Date.now() / 1000));
    if (changed) {
      this.worker.publish(id);
      this.worker.wake();
    }
    return this.store.batch(id);
  }

  view(b: BatchRow): Record<string, unknown> {
    return batchObject(b, this.store.counts(b.id));
  }
}
