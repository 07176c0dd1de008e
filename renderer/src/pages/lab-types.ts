// The Lab page's view of the admin API under /admin/lab (gateway/api/lab*.ts).
// Only the fields the page shows.

/** GET /admin/lab/gpus (gateway/lab/gpus.ts Gpu). Figures a GPU does not report are null. */
export interface GpuView {
  index: number;
  vendor: string;
  model: string;
  bus_id: string | null;
  uuid: string | null;
  driver: string | null;
  /** MiB. */
  vram_total_mb: number | null;
  vram_used_mb: number | null;
  utilization_pct: number | null;
  temperature_c: number | null;
  power_w: number | null;
  updated_at: string;
}

/** How nvidia-smi's last reading went (gateway/lab/gpus.ts NvidiaSmiStatus). */
export interface NvidiaSmiStatusView {
  state: "off" | "reading" | "ok" | "missing" | "failing";
  detail: string | null;
}

export interface GpusResponse {
  object: "list";
  data: GpuView[];
  /** Absent from a list a live `gpu` event replaced before any answer. */
  nvidia_smi?: NvidiaSmiStatusView;
}

/** GET /admin/lab/servers (gateway/lab/servers.ts FoundServer, plus health and models). */
export interface FoundServerView {
  host: string;
  port: number;
  /** null: something answers HTTP there, but no inference server labgate knows. */
  kind: "ollama" | "llamacpp" | "vllm" | "openai-compatible" | null;
  version: string | null;
  provider: string | null;
  /** The provider was added by discovery (false: the config already names this server). */
  discovered: boolean;
  answering: boolean;
  healthy: boolean;
  evidence: string[];
  models: string[];
  first_seen: string;
  last_seen: string;
}

export type ProcessState = "stopped" | "starting" | "running" | "stopping" | "backoff" | "failed";

/** GET /admin/lab/processes (gateway/lab/processes.ts ProcessView). */
export interface ProcessView {
  name: string;
  provider: string;
  state: ProcessState;
  pid: number | null;
  restarts: number;
  recentCrashes: number;
  lastError: string | null;
  command: string;
  args: string[];
  base_url: string;
  on_demand: boolean;
  /** When it entered its current state (ISO 8601). */
  since: string;
  last_exit: { code: number | null; signal: string | null } | null;
  failure: string | null;
}

/** One line of a supervised process's output (the logs endpoint, and each `log` event of its follow stream). */
export interface LogLineView {
  stream: "stdout" | "stderr" | string;
  line: string;
  at: string;
}

/** GET /admin/lab/models (gateway/api/lab-models.ts). */
export interface LoadedModelView {
  provider: string;
  type: string;
  can_unload: boolean;
  model: string;
  size_bytes: number | null;
  vram_bytes: number | null;
  context_length: number | null;
  expires_at: string | null;
}

export interface LoadedModelsResponse {
  object: "list";
  data: LoadedModelView[];
  /** Providers that did not answer the question. */
  errors: { provider: string; message: string }[];
}

export interface ListResponse<T> {
  object: "list";
  data: T[];
}
