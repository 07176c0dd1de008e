// The batch queue's figures: labgate_batch_items_total{status} and labgate_batches{status}
// on the gateway's registry, and the lab's batch_* series (telemetry/lab-metrics.ts).
import { Counter, Gauge, type Registry } from "prom-client";
import type { BatchStore } from "../store/batches.ts";
import type { LabMetrics } from "../telemetry/lab-metrics.ts";

const STATUSES = ["validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"] as const;

export interface BatchMetrics {
  /** An item ended (completed: a 2xx answer; failed: anything else), or was put back for a retry or preempted by interactive traffic. */
  item(status: "completed" | "failed" | "retried" | "preempted"): void;
  /** A batch reached a final status. */
  batchEnded(status: string): void;
  queueDepth(pending: number): void;
}

export function createBatchMetrics(registry: Registry, lab: LabMetrics, store: BatchStore): BatchMetrics {
  const items = new Counter({
    name: "labgate_batch_items_total",
    help: "Batch items by how they ended (completed, failed), or put back (retried, preempted)",
    labelNames: ["status"],
    registers: [registry],
  });
  new Gauge({
    name: "labgate_batches",
    help: "Batches in the database by status",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      const counts = store.statusCounts();
      for (const s of STATUSES) this.set({ status: s }, counts.get(s) ?? 0);
    },
  });
  return {
    item: (status) => items.inc({ status }),
    batchEnded(status) {
      lab.batchCompleted.inc();
      if (status === "completed") lab.batchCompletedSuccess.inc();
    },
    queueDepth: (pending) => lab.batchQueueDepth.set(pending),
  };
}
