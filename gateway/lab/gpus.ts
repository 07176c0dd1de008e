// The machine's GPUs: what they are (systeminformation, rarely: on Linux each call
// starts lspci, dmidecode, nvidia-smi and more, some of them synchronously, so it
// runs in a worker thread) and what they are doing (nvidia-smi every few seconds).
// Both are read in the background; the request path and GET /admin/lab/gpus only
// read the last merged snapshot. No GPU, no nvidia-smi: an empty list, no error,
// one debug line.
import { execFile } from "node:child_process";
import { Worker } from "node:worker_threads";
import type { Systeminformation } from "systeminformation";

/** A GPU as the inventory (systeminformation) knows it. */
export interface InventoryGpu {
  vendor: string;
  model: string;
  /** PCI address as domain:bus:device.function, e.g. 0000:01:00.0. */
  bus_id: string | null;
  driver: string | null;
  /** MiB, as nvidia-smi and systeminformation count them. */
  vram_total_mb: number | null;
  /** Figures systeminformation read itself (NVIDIA only); null when it has none. */
  vram_used_mb: number | null;
  utilization_pct: number | null;
  temperature_c: number | null;
  power_w: number | null;
}

/** One GPU as GET /admin/lab/gpus shows it: the inventory's, with nvidia-smi's live figures. Figures the GPU does not report are null. */
export interface Gpu extends InventoryGpu {
  /**
   * The device number its runtime uses: nvidia-smi's index for NVIDIA GPUs (PCI bus
   * order, which `gpuEnv()` asks CUDA to use too); for other vendors, the position
   * among that vendor's GPUs in bus order.
   */
  index: number;
  uuid: string | null;
  /** When these figures were read (ISO 8601). */
  updated_at: string;
}

/** One line of nvidia-smi's answer to NVIDIA_SMI_ARGS. */
export interface NvidiaSmiRow {
  index: number;
  uuid: string | null;
  name: string | null;
  bus_id: string | null;
  driver: string | null;
  memory_total_mib: number | null;
  memory_used_mib: number | null;
  utilization_pct: number | null;
  temperature_c: number | null;
  power_w: number | null;
}

export const NVIDIA_SMI_FIELDS = [
  "index",
  "uuid",
  "name",
  "pci.bus_id",
  "driver_version",
  "memory.total",
  "memory.used",
  "utilization.gpu",
  "temperature.gpu",
  "power.draw",
] as const;
export const NVIDIA_SMI_ARGS: readonly string[] = [`--query-gpu=${NVIDIA_SMI_FIELDS.join(",")}`, "--format=csv,noheader,nounits"];

/**
 * A value nvidia-smi could not read: `[N/A]`, `[Not Supported]`, `[Unknown Error]`,
 * `[GPU requires reset]`, `[Insufficient Permissions]`... (bracketed), or a bare `N/A`.
 */
function unreadable(v: string): boolean {
  return v === "" || /^\[.*\]$/.test(v) || /^n\/a$/i.test(v);
}

function text(v: string): string | null {
  return unreadable(v) ? null : v;
}

function num(v: string): number | null {
  if (unreadable(v)) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * Parses the CSV (`--format=csv,noheader,nounits`) nvidia-smi prints for
 * NVIDIA_SMI_ARGS: one GPU per line, fields separated by ", ", zeros as 0 and
 * unreadable values as null. Lines that are not such a row (an error such as
 * "Unable to determine the device handle for GPU 0000:02:00.0: Unknown Error",
 * "No devices were found") are skipped.
 */
export function parseNvidiaSmiCsv(stdout: string): NvidiaSmiRow[] {
  const rows: NvidiaSmiRow[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const f = line.split(",").map((s) => s.trim());
    if (f.length !== NVIDIA_SMI_FIELDS.length || !/^\d+$/.test(f[0]!)) continue;
    rows.push({
      index: Number(f[0]),
      uuid: text(f[1]!),
      name: text(f[2]!),
      bus_id: normalizeBusId(f[3]!),
      driver: text(f[4]!),
      memory_total_mib: num(f[5]!),
      memory_used_mib: num(f[6]!),
      utilization_pct: num(f[7]!),
      temperature_c: num(f[8]!),
      power_w: num(f[9]!),
    });
  }
  return rows;
}

/**
 * A PCI address as domain:bus:device.function with a 4-digit domain, lower case:
 * nvidia-smi's "00000000:01:00.0" and lspci's "01:00.0" both become "0000:01:00.0".
 */
export function normalizeBusId(s: string | undefined | null): string | null {
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec((s ?? "").trim());
  if (!m) return null;
  const domain = parseInt(m[1] ?? "0", 16).toString(16).padStart(4, "0");
  return `${domain}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

/** "NVIDIA Corporation" -> "NVIDIA", "Advanced Micro Devices, Inc. [AMD/ATI]" -> "AMD". */
export function shortVendor(vendor: string): string {
  if (/nvidia/i.test(vendor)) return "NVIDIA";
  if (/advanced micro devices|\bamd\b|\bati\b/i.test(vendor)) return "AMD";
  if (/intel/i.test(vendor)) return "Intel";
  if (/apple/i.test(vendor)) return "Apple";
  return vendor.trim();
}

/**
 * Display adapters that run no models: servers' BMC graphics and the virtual
 * adapters of VMs. A lab server whose only "GPU" is one of these has no GPU.
 */
const DISPLAY_ONLY = /aspeed|matrox|cirrus|vmware|red hat|virtio|qxl|bochs|qemu|innotek|virtualbox|hyper-v|microsoft|basic display|basic render/i;

/**
 * systeminformation's graphics controllers as inventory. Its NVIDIA figures come from
 * its own nvidia-smi call merged with truthy checks, so a figure that is 0 (an idle
 * GPU's memory used or utilisation) is missing rather than 0: for a controller that
 * has nvidia-smi figures at all (memoryTotal), a missing memoryUsed or utilizationGpu
 * is 0. Temperature and power stay null when missing: there a missing value is far
 * more likely nvidia-smi's N/A than a reading of 0 °C or 0 W.
 */
export function inventoryFromSystemInformation(controllers: readonly Partial<Systeminformation.GraphicsControllerData>[]): InventoryGpu[] {
  const out: InventoryGpu[] = [];
  for (const c of controllers) {
    const vendor = c.vendor ?? "";
    const model = c.name || c.model || "";
    if (!vendor && !model) continue;
    if (DISPLAY_ONLY.test(`${vendor} ${model}`)) continue;
    const smiFigures = typeof c.memoryTotal === "number";
    out.push({
      vendor: shortVendor(vendor || model),
      model,
      bus_id: normalizeBusId(c.pciBus) ?? normalizeBusId(c.busAddress),
      driver: c.driverVersion || null,
      vram_total_mb: c.memoryTotal ?? (typeof c.vram === "number" && c.vram > 0 ? c.vram : null),
      vram_used_mb: c.memoryUsed ?? (smiFigures ? 0 : null),
      utilization_pct: c.utilizationGpu ?? (smiFigures ? 0 : null),
      temperature_c: c.temperatureGpu ?? null,
      power_w: c.powerDraw ?? null,
    });
  }
  return out;
}

const isNvidia = (g: { vendor: string }): boolean => g.vendor === "NVIDIA";

/**
 * One list from the inventory and nvidia-smi's last answer (`live`; undefined when
 * nvidia-smi is missing or failed). When nvidia-smi answered, it is the truth about
 * NVIDIA GPUs: each of its rows is a GPU (completed from the inventory entry with the
 * same bus id, else the same position), and an NVIDIA GPU it no longer lists is gone.
 * Other vendors' GPUs, and NVIDIA's when nvidia-smi did not answer, come from the
 * inventory with the figures it has.
 */
export function mergeGpus(inventory: readonly InventoryGpu[], live: readonly NvidiaSmiRow[] | undefined, at: { inventory: number; live: number }): Gpu[] {
  const out: Gpu[] = [];
  let rest: readonly InventoryGpu[] = inventory;
  if (live) {
    const nvidia = inventory.filter(isNvidia);
    const byPosition = nvidia.every((g) => g.bus_id === null);
    const liveAt = new Date(at.live).toISOString();
    for (const row of live) {
      const inv = row.bus_id !== null ? inventory.find((g) => g.bus_id === row.bus_id) : undefined;
      const match = inv ?? (byPosition ? nvidia[row.index] : undefined);
      out.push({
        index: row.index,
        uuid: row.uuid,
        vendor: "NVIDIA",
        model: row.name ?? match?.model ?? "NVIDIA GPU",
        bus_id: row.bus_id ?? match?.bus_id ?? null,
        driver: row.driver ?? match?.driver ?? null,
        vram_total_mb: row.memory_total_mib ?? match?.vram_total_mb ?? null,
        vram_used_mb: row.memory_used_mib,
        utilization_pct: row.utilization_pct,
        temperature_c: row.temperature_c,
        power_w: row.power_w,
        updated_at: liveAt,
      });
    }
    rest = inventory.filter((g) => !isNvidia(g));
  }
  const invAt = new Date(at.inventory).toISOString();
  const byVendor = new Map<string, InventoryGpu[]>();
  for (const g of rest) {
    const list = byVendor.get(g.vendor) ?? [];
    list.push(g);
    byVendor.set(g.vendor, list);
  }
  for (const list of byVendor.values()) {
    const ordered = list.every((g) => g.bus_id !== null) ? [...list].sort((a, b) => (a.bus_id! < b.bus_id! ? -1 : a.bus_id! > b.bus_id! ? 1 : 0)) : list;
    ordered.forEach((g, index) => out.push({ index, uuid: null, ...g, updated_at: invAt }));
  }
  return out;
}

/** Runs a program; resolves with its output whatever its exit code, rejects when it could not run or timed out. */
export type ExecFn = (file: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; timeoutMs: number }) => Promise<{ stdout: string; code: number | null }>;

export const execProgram: ExecFn = (file, args, opts) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { env: opts.env, timeout: opts.timeoutMs, killSignal: "SIGKILL", maxBuffer: 1 << 20, windowsHide: true, encoding: "utf8" },
      (err, stdout) => {
        if (!err) return resolve({ stdout, code: 0 });
        const e = err as NodeJS.ErrnoException & { code?: string | number; killed?: boolean };
        // A non-zero exit still printed what it could (the GPUs that answered).
        if (typeof e.code === "number" && !e.killed) return resolve({ stdout, code: e.code });
        reject(err);
      },
    );
  });

/** The inventory source: systeminformation.graphics()'s controllers. */
export type InventoryFn = (signal: AbortSignal) => Promise<Partial<Systeminformation.GraphicsControllerData>[]>;

// CommonJS, as eval'd workers are; the module is imported by URL.
const INVENTORY_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.module)
  .then((m) => (m.default ?? m).graphics())
  .then((g) => parentPort.postMessage({ controllers: g.controllers }), (err) => parentPort.postMessage({ error: String((err && err.message) || err) }));
`;

/**
 * systeminformation.graphics() in a worker thread with the gateway's environment
 * (PATH): on Linux it runs lspci, dmidecode and nvidia-smi, the last two with
 * execSync, which would stall the gateway's event loop. Aborting terminates the worker.
 */
export function systemInformationInventory(env: NodeJS.ProcessEnv, timeoutMs = 60_000): InventoryFn {
  const module = import.meta.resolve("systeminformation");
  return (signal) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(INVENTORY_WORKER, { eval: true, workerData: { module }, env: { ...env }, stdout: true, stderr: true });
      worker.unref();
      // Its own output (warnings) is not the gateway's log.
      worker.stdout.resume();
      worker.stderr.resume();
      const timer = setTimeout(() => finish(new Error(`systeminformation took longer than ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      const onAbort = (): void => finish(new Error("stopped"));
      signal.addEventListener("abort", onAbort, { once: true });
      let done = false;
      function finish(err: Error | undefined, controllers?: Partial<Systeminformation.GraphicsControllerData>[]): void {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        void worker.terminate();
        if (err) reject(err);
        else resolve(controllers ?? []);
      }
      worker.once("message", (m: { controllers?: Partial<Systeminformation.GraphicsControllerData>[]; error?: string }) =>
        finish(m.error !== undefined ? new Error(m.error) : undefined, m.controllers),
      );
      worker.once("error", (err: Error) => finish(err));
      worker.once("exit", (code) => finish(new Error(`systeminformation worker exited (${code})`)));
      if (signal.aborted) onAbort();
    });
}

export interface GpuMonitorOptions {
  /** Where PATH comes from (the gateway's env option; default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The nvidia-smi to run: a name looked up on env's PATH, or a path (default "nvidia-smi"). */
  nvidiaSmi?: string;
  /** nvidia-smi period (ms, default 5000); 0: read once at start only. */
  intervalMs?: number;
  /** Inventory period (ms, default 300000); 0: read once at start only. */
  inventoryIntervalMs?: number;
  /** nvidia-smi's time limit (ms, default 10000): a wedged driver can hang it. */
  timeoutMs?: number;
  exec?: ExecFn;
  inventory?: InventoryFn;
  log?: { debug(obj: object, msg: string): void };
  now?: () => number;
}

export type GpuListener = (gpus: Gpu[]) => void;

/** How nvidia-smi's last reading went, so an empty GPU list can say why (GET /admin/lab/gpus). */
export interface NvidiaSmiStatus {
  /** off: the monitor is not running; reading: no answer yet; missing: not found on PATH; failing: it ran and failed. */
  state: "off" | "reading" | "ok" | "missing" | "failing";
  /** What failed (its error or first output line); null unless failing or missing. */
  detail: string | null;
}

/**
 * Keeps the GPU list fresh in the background and tells listeners when it changes
 * (a GPU appears or goes, or a figure moves; not when only updated_at does).
 */
/** How long a missing nvidia-smi is not looked for again. */
const SMI_MISSING_RETRY_MS = 60_000;

export class GpuMonitor {
  private readonly env: NodeJS.ProcessEnv;
  private readonly nvidiaSmi: string;
  private readonly intervalMs: number;
  private readonly inventoryIntervalMs: number;
  private readonly timeoutMs: number;
  private readonly exec: ExecFn;
  private readonly inventoryFn: InventoryFn;
  private readonly log: { debug(obj: object, msg: string): void } | undefined;
  private readonly now: () => number;
  private readonly listeners = new Set<GpuListener>();
  private inventory: InventoryGpu[] = [];
  private inventoryAt = 0;
  private live: NvidiaSmiRow[] | undefined;
  private liveAt = 0;
  private current: Gpu[] = [];
  private signature = "[]";
  private liveRun: Promise<void> | undefined;
  private inventoryRun: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private abort = new AbortController();
  private stopped = false;
  /** What was last logged about each source, so a lasting failure is logged once. */
  private smiFailing = false;
  /** Set when nvidia-smi is not installed: no new try before this time. */
  private smiMissingUntil: number | undefined;
  private inventoryFailing = false;
  private smiStatus: NvidiaSmiStatus = { state: "off", detail: null };

  constructor(opts: GpuMonitorOptions = {}) {
    this.env = opts.env ?? process.env;
    this.nvidiaSmi = opts.nvidiaSmi ?? "nvidia-smi";
    this.intervalMs = opts.intervalMs ?? 5000;
    this.inventoryIntervalMs = opts.inventoryIntervalMs ?? 300_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.exec = opts.exec ?? execProgram;
    this.inventoryFn = opts.inventory ?? systemInformationInventory(this.env);
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
  }

  /** Starts both readings in the background; returns at once. */
  start(): void {
    if (this.stopped || this.timers.length > 0) return;
    this.smiStatus = { state: "reading", detail: null };
    void this.refreshInventory();
    void this.refresh();
    if (this.intervalMs > 0) this.timers.push(setInterval(() => void this.refresh(), this.intervalMs));
    if (this.inventoryIntervalMs > 0) this.timers.push(setInterval(() => void this.refreshInventory(), this.inventoryIntervalMs));
    for (const t of this.timers) t.unref();
  }

  /** Stops the timers and a running inventory; later results are dropped. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.abort.abort();
    this.listeners.clear();
  }

  /** The GPUs as last read. */
  snapshot(): Gpu[] {
    return [...this.current];
  }

  /** How nvidia-smi's last reading went. */
  nvidiaSmiStatus(): NvidiaSmiStatus {
    return { ...this.smiStatus };
  }

  /** Called with the new list whenever it changes; returns the unsubscribe function. */
  on(listener: GpuListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads nvidia-smi now (a reading already under way is joined, not doubled). */
  refresh(): Promise<void> {
    this.liveRun ??= this.readLive().finally(() => (this.liveRun = undefined));
    return this.liveRun;
  }

  /** Reads the inventory now (a reading already under way is joined). */
  refreshInventory(): Promise<void> {
    this.inventoryRun ??= this.readInventory().finally(() => (this.inventoryRun = undefined));
    return this.inventoryRun;
  }

  private async readLive(): Promise<void> {
    if (this.stopped) return;
    // No nvidia-smi on this machine: ask again once a minute, not every few seconds (each try forks the gateway).
    if (this.smiMissingUntil !== undefined && this.now() < this.smiMissingUntil) return;
    let rows: NvidiaSmiRow[] | undefined;
    let problem: string | undefined;
    let missing = false;
    try {
      const { stdout, code } = await this.exec(this.nvidiaSmi, NVIDIA_SMI_ARGS, { env: this.env, timeoutMs: this.timeoutMs });
      const parsed = parseNvidiaSmiCsv(stdout);
      // A GPU that fails makes nvidia-smi exit non-zero, yet the others' rows are good.
      if (parsed.length > 0 || code === 0) rows = parsed;
      else problem = `exit code ${code}: ${stdout.trim().split("\n")[0]?.slice(0, 200) ?? ""}`;
    } catch (err) {
      problem = (err as Error).message;
      missing = (err as NodeJS.ErrnoException).code === "ENOENT";
      this.smiMissingUntil = missing ? this.now() + SMI_MISSING_RETRY_MS : undefined;
    }
    if (this.stopped) return;
    this.smiStatus = rows !== undefined ? { state: "ok", detail: null } : { state: missing ? "missing" : "failing", detail: problem ?? null };
    if (rows === undefined) {
      if (!this.smiFailing) this.log?.debug({ nvidia_smi: this.nvidiaSmi, reason: problem }, "nvidia-smi not available: no live GPU figures");
      this.smiFailing = true;
    } else {
      if (this.smiFailing) this.log?.debug({ nvidia_smi: this.nvidiaSmi }, "nvidia-smi answers again");
      this.smiFailing = false;
    }
    this.live = rows;
    this.liveAt = this.now();
    this.update();
  }

  private async readInventory(): Promise<void> {
    if (this.stopped) return;
    try {
      const controllers = await this.inventoryFn(this.abort.signal);
      if (this.stopped) return;
      this.inventory = inventoryFromSystemInformation(controllers);
      this.inventoryFailing = false;
    } catch (err) {
      if (this.stopped) return;
      if (!this.inventoryFailing) this.log?.debug({ reason: (err as Error).message }, "GPU inventory not available");
      this.inventoryFailing = true;
      // The last good inventory stays.
    }
    this.inventoryAt = this.now();
    this.update();
  }

  private update(): void {
    this.current = mergeGpus(this.inventory, this.live, { inventory: this.inventoryAt, live: this.liveAt });
    const signature = JSON.stringify(this.current.map(({ updated_at: _, ...g }) => g));
    if (signature === this.signature) return;
    this.signature = signature;
    for (const l of this.listeners) {
      try {
        l(this.snapshot());
      } catch (err) {
        this.log?.debug({ err }, "GPU listener failed");
      }
    }
  }
}
