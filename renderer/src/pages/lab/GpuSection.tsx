// GPUs: what the gateway's GPU monitor last read (nvidia-smi every few seconds, the
// system inventory now and then); `gpu` live events replace the list as it changes.
import { formatMiB, percent } from "../../format.ts";
import { useGpus } from "../lab-queries.ts";
import type { GpuView, NvidiaSmiStatusView } from "../lab-types.ts";
import { Meter } from "./Meter.tsx";
import { QueryProblem } from "./QueryProblem.tsx";

/** The first line of the empty state: what nvidia-smi's last reading said. */
function whyNoGpu(smi: NvidiaSmiStatusView | undefined): string {
  switch (smi?.state) {
    case "missing":
      return ": nvidia-smi is not on the gateway's PATH, and the hardware inventory lists no GPU.";
    case "failing":
      return `: nvidia-smi failed (${smi.detail ?? "no reason given"}), and the hardware inventory lists no GPU.`;
    case "ok":
      return ": nvidia-smi lists no GPU, and neither does the hardware inventory.";
    case "off":
      return ": this gateway runs without its GPU monitor.";
    case "reading":
      return " yet: the first reading is under way.";
    default:
      return " on the gateway's machine.";
  }
}

function GpuCard({ gpu }: { gpu: GpuView }) {
  const vramPct = percent(gpu.vram_used_mb, gpu.vram_total_mb);
  const vramText =
    gpu.vram_used_mb !== null && gpu.vram_total_mb !== null
      ? `${formatMiB(gpu.vram_used_mb)} / ${formatMiB(gpu.vram_total_mb)}`
      : gpu.vram_total_mb !== null
        ? `${formatMiB(gpu.vram_total_mb)} total, use not reported`
        : "not reported";
  const util = gpu.utilization_pct;
  return (
    <article className="panel lab-gpu" data-testid={`gpu-${gpu.index}`} aria-label={`GPU ${gpu.index}: ${gpu.model}`}>
      <header className="lab-card-head">
        <h3>
          <span className="muted">#{gpu.index}</span> {gpu.vendor && !gpu.model.startsWith(gpu.vendor) ? `${gpu.vendor} ` : ""}
          {gpu.model || "Unknown GPU"}
        </h3>
        <span className="muted lab-gpu-facts">
          {gpu.temperature_c !== null && <span className={gpu.temperature_c >= 85 ? "bad" : gpu.temperature_c >= 75 ? "warn" : ""}>{Math.round(gpu.temperature_c)} °C</span>}
          {gpu.power_w !== null && <span>{Math.round(gpu.power_w)} W</span>}
        </span>
      </header>
      <Meter label="VRAM" pct={vramPct} text={vramText} />
      <Meter label="Utilisation" pct={util} text={util === null ? "not reported" : `${Math.round(util)} %`} />
      <p className="muted lab-small mono">
        {[gpu.bus_id, gpu.driver ? `driver ${gpu.driver}` : null].filter(Boolean).join(" · ")}
      </p>
    </article>
  );
}

export function GpuSection() {
  const q = useGpus();
  const gpus = q.data?.data ?? [];
  return (
    <section aria-labelledby="lab-gpus" className="lab-section">
      <h2 id="lab-gpus">GPUs</h2>
      <QueryProblem query={q} what="the GPUs" />
      {q.isPending ? (
        <p className="muted">Reading GPUs…</p>
      ) : gpus.length === 0 ? (
        <div className="panel lab-empty" data-testid="gpus-empty">
          <p>
            <strong>No GPUs found{whyNoGpu(q.data?.nvidia_smi)}</strong>
          </p>
          <p className="muted">
            NVIDIA GPUs are read with <code>nvidia-smi</code>, which must be on the gateway's <code>PATH</code> (it comes with the NVIDIA driver); other GPUs come
            from the system's hardware inventory, read every few minutes. On a machine without a GPU, models run on the CPU.
          </p>
        </div>
      ) : (
        <div className="grid lab-gpus">
          {gpus.map((g) => (
            <GpuCard key={`${g.index}-${g.uuid ?? g.bus_id ?? ""}`} gpu={g} />
          ))}
        </div>
      )}
    </section>
  );
}
