// GPU gauges for /metrics, set at scrape time from the GPU monitor's last snapshot
// (never by running anything on the scrape path). A GPU that went away leaves no
// series behind; a figure the GPU does not report (null) has no sample.
import { Gauge, type Registry } from "prom-client";
import type { Gpu } from "../lab/gpus.ts";

const MIB = 1024 * 1024;

export function registerGpuMetrics(registry: Registry, source: { snapshot(): Gpu[] }): void {
  const gauge = (name: string, help: string, value: (g: Gpu) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: ["gpu", "model"],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of source.snapshot()) {
          const v = value(g);
          if (v !== null) this.set({ gpu: String(g.index), model: g.model }, v);
        }
      },
    });
  };
  gauge("labgate_gpu_memory_used_bytes", "GPU memory in use (VRAM), by GPU index and model", (g) => (g.vram_used_mb === null ? null : g.vram_used_mb * MIB));
  gauge("labgate_gpu_memory_total_bytes", "GPU memory (VRAM), by GPU index and model", (g) => (g.vram_total_mb === null ? null : g.vram_total_mb * MIB));
  gauge("labgate_gpu_utilization_ratio", "GPU utilisation, 0 to 1", (g) => (g.utilization_pct === null ? null : g.utilization_pct / 100));
  gauge("labgate_gpu_temperature_celsius", "GPU temperature", (g) => g.temperature_c);
  gauge("labgate_gpu_power_watts", "GPU power draw", (g) => g.power_w);
}
