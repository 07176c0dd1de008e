// Metric series of a model that went away are dropped, so a lab whose models
// come and go does not grow /metrics (and labgate's label caches) without bound.
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../gateway/telemetry/metrics.ts";

describe("metric label pruning", () => {
  it("forgetModel drops the model's series and label caches, and a model that comes back starts again", async () => {
    const m = createMetrics({ defaultMetrics: false });
    for (const model of ["gone:7b", "kept:7b"]) {
      m.child.requests(model, "ollama", "200").inc(3);
      m.child.duration(model, "ollama").observe(0.2);
      m.fallbacks.inc({ model, result: "success" });
      m.panicRequests.inc({ model });
      m.groupPanic.set({ model }, 1);
    }
    m.forgetModel("gone:7b");
    const text = await m.registry.metrics();
    expect(text).not.toContain('model="gone:7b"');
    expect(text).toMatch(/labgate_requests_total\{model="kept:7b",provider="ollama",status="200"\} 3/);
    expect(text).toMatch(/labgate_request_duration_seconds_count\{model="kept:7b",provider="ollama"\} 1/);
    m.child.requests("gone:7b", "ollama", "200").inc();
    expect(await m.registry.metrics()).toMatch(/labgate_requests_total\{model="gone:7b",provider="ollama",status="200"\} 1\n/);
  });
});
