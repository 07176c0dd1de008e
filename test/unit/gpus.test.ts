// The GPU monitor's parts: nvidia-smi's CSV, systeminformation's inventory (with the
// zero figures it drops), the merge of both, a GPU going away, nvidia-smi missing or
// failing, and the environment that pins a server to GPUs.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { gpuEnv } from "../../gateway/lab/gpu-env.ts";
import {
  GpuMonitor,
  inventoryFromSystemInformation,
  mergeGpus,
  normalizeBusId,
  NVIDIA_SMI_ARGS,
  parseNvidiaSmiCsv,
  type ExecFn,
  type Gpu,
  type InventoryFn,
} from "../../gateway/lab/gpus.ts";

// What nvidia-smi prints for NVIDIA_SMI_ARGS: no header, no units, ", " between fields.
const TWO_GPUS = [
  "0, GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60, NVIDIA GeForce RTX 3090, 00000000:01:00.0, 550.54.14, 24576, 1234, 5, 45, 35.12",
  "1, GPU-9c0e7f42-61ab-4d3e-b5c8-0a2d4f6e8b13, NVIDIA GeForce RTX 3060, 00000000:02:00.0, 550.54.14, 12288, 0, 0, 38, 11.20",
  "",
].join("\n");

// systeminformation's graphics() for the same two cards (../shared/protocols): its own
// nvidia-smi figures merged with truthy checks, so the 3060's zero utilisation is missing.
const siControllers = (JSON.parse(readFileSync(new URL("../../../shared/protocols/systeminformation-graphics-linux-nvidia.json", import.meta.url), "utf8")) as {
  controllers: Record<string, unknown>[];
}).controllers;

describe("nvidia-smi's CSV", () => {
  it("asks exactly for the fields the list shows", () => {
    expect(NVIDIA_SMI_ARGS).toEqual([
      "--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw",
      "--format=csv,noheader,nounits",
    ]);
  });

  it("parses each GPU's line, zeros as 0", () => {
    const rows = parseNvidiaSmiCsv(TWO_GPUS);
    expect(rows).toEqual([
      {
        index: 0,
        uuid: "GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60",
        name: "NVIDIA GeForce RTX 3090",
        bus_id: "0000:01:00.0",
        driver: "550.54.14",
        memory_total_mib: 24576,
        memory_used_mib: 1234,
        utilization_pct: 5,
        temperature_c: 45,
        power_w: 35.12,
      },
      {
        index: 1,
        uuid: "GPU-9c0e7f42-61ab-4d3e-b5c8-0a2d4f6e8b13",
        name: "NVIDIA GeForce RTX 3060",
        bus_id: "0000:02:00.0",
        driver: "550.54.14",
        memory_total_mib: 12288,
        memory_used_mib: 0,
        utilization_pct: 0,
        temperature_c: 38,
        power_w: 11.2,
      },
    ]);
  });

  it("reads [N/A], [Not Supported] and N/A as null, not 0", () => {
    const rows = parseNvidiaSmiCsv(
      [
        "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA A100-SXM4-80GB, 00000000:07:00.0, 535.129.03, 81920, 4, 0, 31, [N/A]",
        "1, GPU-bbbbbbbb-0000-0000-0000-000000000000, Quadro K600, 00000000:0A:00.0, 470.223.02, 981, 0, [Not Supported], N/A, [Not Supported]",
      ].join("\n"),
    );
    expect(rows.map((r) => [r.utilization_pct, r.temperature_c, r.power_w, r.memory_used_mib])).toEqual([
      [0, 31, null, 4],
      [null, null, null, 0],
    ]);
    expect(rows[1]!.bus_id).toBe("0000:0a:00.0");
  });

  it("skips what is not a GPU's line (a lost GPU's error, no devices)", () => {
    const out = "Unable to determine the device handle for GPU0000:02:00.0: Unknown Error\n" + TWO_GPUS.split("\n")[0] + "\n";
    expect(parseNvidiaSmiCsv(out).map((r) => r.index)).toEqual([0]);
    expect(parseNvidiaSmiCsv("No devices were found\n")).toEqual([]);
    expect(parseNvidiaSmiCsv("")).toEqual([]);
  });

  it("normalises bus ids from nvidia-smi and lspci alike", () => {
    expect(normalizeBusId("00000000:01:00.0")).toBe("0000:01:00.0");
    expect(normalizeBusId("01:00.0")).toBe("0000:01:00.0");
    expect(normalizeBusId("0001:C1:00.0")).toBe("0001:c1:00.0");
    expect(normalizeBusId("")).toBeNull();
    expect(normalizeBusId(undefined)).toBeNull();
  });
});

describe("the inventory from systeminformation", () => {
  it("shows the zero figures systeminformation dropped as 0, not unknown", () => {
    const inv = inventoryFromSystemInformation(siControllers);
    expect(inv).toEqual([
      {
        vendor: "NVIDIA",
        model: "NVIDIA GeForce RTX 3090",
        bus_id: "0000:01:00.0",
        driver: "550.54.14",
        vram_total_mb: 24576,
        vram_used_mb: 1234,
        utilization_pct: 5,
        temperature_c: 45,
        power_w: 35.12,
      },
      {
        vendor: "NVIDIA",
        model: "NVIDIA GeForce RTX 3060",
        bus_id: "0000:02:00.0",
        driver: "550.54.14",
        vram_total_mb: 12288,
        vram_used_mb: 3,
        utilization_pct: 0,
        temperature_c: 38,
        power_w: 11.2,
      },
    ]);
  });

  it("keeps other vendors' GPUs with the figures it has, and leaves out BMC and VM display adapters", () => {
    const inv = inventoryFromSystemInformation([
      { vendor: "Intel Corporation", model: "AlderLake-S GT1", bus: "Onboard", busAddress: "00:02.0", vram: 256, vramDynamic: false },
      { vendor: "Advanced Micro Devices, Inc. [AMD/ATI]", model: "Navi 31 [Radeon RX 7900 XTX]", busAddress: "03:00.0", vram: 24560, vramDynamic: false },
      { vendor: "ASPEED Technology, Inc.", model: "ASPEED Graphics Family", busAddress: "05:00.0", vram: null, vramDynamic: false },
      { vendor: "Red Hat, Inc.", model: "Virtio GPU", busAddress: "00:01.0", vram: null, vramDynamic: false },
    ]);
    expect(inv).toEqual([
      { vendor: "Intel", model: "AlderLake-S GT1", bus_id: "0000:00:02.0", driver: null, vram_total_mb: 256, vram_used_mb: null, utilization_pct: null, temperature_c: null, power_w: null },
      {
        vendor: "AMD",
        model: "Navi 31 [Radeon RX 7900 XTX]",
        bus_id: "0000:03:00.0",
        driver: null,
        vram_total_mb: 24560,
        vram_used_mb: null,
        utilization_pct: null,
        temperature_c: null,
        power_w: null,
      },
    ]);
  });

  it("no GPU: nothing", () => {
    expect(inventoryFromSystemInformation([])).toEqual([]);
  });
});

describe("merging the inventory and nvidia-smi", () => {
  const at = { inventory: Date.UTC(2026, 0, 1, 10, 0, 0), live: Date.UTC(2026, 0, 1, 10, 0, 5) };
  const amd = inventoryFromSystemInformation([{ vendor: "Advanced Micro Devices, Inc. [AMD/ATI]", model: "Navi 31", busAddress: "03:00.0", vram: 24560, vramDynamic: false }]);

  it("nvidia-smi's figures win; the other vendors' GPUs follow from the inventory", () => {
    const inv = [...inventoryFromSystemInformation(siControllers), ...amd];
    const gpus = mergeGpus(inv, parseNvidiaSmiCsv(TWO_GPUS), at);
    expect(gpus.map((g) => [g.vendor, g.index, g.model, g.bus_id, g.vram_used_mb, g.utilization_pct, g.updated_at])).toEqual([
      ["NVIDIA", 0, "NVIDIA GeForce RTX 3090", "0000:01:00.0", 1234, 5, "2026-01-01T10:00:05.000Z"],
      ["NVIDIA", 1, "NVIDIA GeForce RTX 3060", "0000:02:00.0", 0, 0, "2026-01-01T10:00:05.000Z"],
      ["AMD", 0, "Navi 31", "0000:03:00.0", null, null, "2026-01-01T10:00:00.000Z"],
    ]);
    expect(gpus[0]!.uuid).toBe("GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60");
  });

  it("a field nvidia-smi cannot read is completed from the inventory entry with the same bus id", () => {
    const inv = inventoryFromSystemInformation(siControllers);
    const rows = parseNvidiaSmiCsv("0, [N/A], [N/A], 00000000:02:00.0, [N/A], [N/A], 7, 1, 40, 20.5\n");
    const [g] = mergeGpus(inv, rows, at);
    expect(g).toMatchObject({ index: 0, uuid: null, model: "NVIDIA GeForce RTX 3060", driver: "550.54.14", vram_total_mb: 12288, vram_used_mb: 7 });
  });

  it("an NVIDIA GPU nvidia-smi no longer lists is gone, whatever the older inventory says", () => {
    const inv = inventoryFromSystemInformation(siControllers);
    const one = TWO_GPUS.split("\n")[0] + "\n";
    expect(mergeGpus(inv, parseNvidiaSmiCsv(one), at).map((g) => g.model)).toEqual(["NVIDIA GeForce RTX 3090"]);
  });

  it("without nvidia-smi, the inventory's GPUs with its own figures", () => {
    const gpus = mergeGpus(inventoryFromSystemInformation(siControllers), undefined, at);
    expect(gpus.map((g) => [g.index, g.model, g.vram_used_mb, g.utilization_pct, g.uuid, g.updated_at])).toEqual([
      [0, "NVIDIA GeForce RTX 3090", 1234, 5, null, "2026-01-01T10:00:00.000Z"],
      [1, "NVIDIA GeForce RTX 3060", 3, 0, null, "2026-01-01T10:00:00.000Z"],
    ]);
  });

  it("no GPU anywhere: an empty list", () => {
    expect(mergeGpus([], undefined, at)).toEqual([]);
    expect(mergeGpus([], [], at)).toEqual([]);
  });
});

/** An nvidia-smi whose answer the test sets. */
function fakeSmi(): ExecFn & { answer: { stdout: string; code: number } | Error; calls: { file: string; args: readonly string[]; env: NodeJS.ProcessEnv }[] } {
  const fn = Object.assign(
    async (file: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv }) => {
      fn.calls.push({ file, args, env: opts.env });
      if (fn.answer instanceof Error) throw fn.answer;
      return fn.answer;
    },
    { answer: { stdout: TWO_GPUS, code: 0 } as { stdout: string; code: number } | Error, calls: [] as { file: string; args: readonly string[]; env: NodeJS.ProcessEnv }[] },
  );
  return fn;
}

const noInventory: InventoryFn = async () => [];

function debugLog(): { debug(obj: object, msg: string): void; lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: (_obj, msg) => lines.push(msg) };
}

describe("the GPU monitor", () => {
  it("reads nvidia-smi with the gateway's env, and a GPU that disappears leaves the list", async () => {
    const smi = fakeSmi();
    const env = { PATH: "/opt/fake/bin" };
    const m = new GpuMonitor({ env, exec: smi, inventory: noInventory, intervalMs: 0, inventoryIntervalMs: 0 });
    const seen: Gpu[][] = [];
    m.on((g) => seen.push(g));
    await m.refresh();
    expect(smi.calls[0]).toMatchObject({ file: "nvidia-smi", args: NVIDIA_SMI_ARGS, env });
    expect(m.snapshot().map((g) => g.index)).toEqual([0, 1]);

    smi.answer = { stdout: TWO_GPUS.split("\n")[0] + "\n", code: 0 };
    await m.refresh();
    expect(m.snapshot().map((g) => g.model)).toEqual(["NVIDIA GeForce RTX 3090"]);
    // Listeners heard both lists; an unchanged reading tells them nothing.
    await m.refresh();
    expect(seen.map((l) => l.length)).toEqual([2, 1]);
    m.stop();
  });

  it("keeps the rows of the GPUs that answered when nvidia-smi exits non-zero for a lost one", async () => {
    const smi = fakeSmi();
    smi.answer = { stdout: "Unable to determine the device handle for GPU0000:02:00.0: Unknown Error\n" + TWO_GPUS.split("\n")[0] + "\n", code: 15 };
    const m = new GpuMonitor({ exec: smi, inventory: noInventory, intervalMs: 0, inventoryIntervalMs: 0 });
    await m.refresh();
    expect(m.snapshot().map((g) => g.index)).toEqual([0]);
    m.stop();
  });

  it("nvidia-smi missing: an empty list, no throw, one debug line however often it is tried", async () => {
    const smi = fakeSmi();
    smi.answer = Object.assign(new Error("spawn nvidia-smi ENOENT"), { code: "ENOENT" });
    const log = debugLog();
    const m = new GpuMonitor({ exec: smi, inventory: noInventory, log, intervalMs: 0, inventoryIntervalMs: 0 });
    await m.refresh();
    await m.refresh();
    await m.refreshInventory();
    expect(m.snapshot()).toEqual([]);
    expect(log.lines).toEqual(["nvidia-smi not available: no live GPU figures"]);
    // No devices (exit code 6) is the same: no live figures.
    smi.answer = { stdout: "No devices were found\n", code: 6 };
    await m.refresh();
    expect(m.snapshot()).toEqual([]);
    expect(log.lines).toHaveLength(1);
    m.stop();
  });

  it("without nvidia-smi, the inventory's GPUs; a failing inventory keeps the last good one and never throws", async () => {
    const smi = fakeSmi();
    smi.answer = new Error("spawn nvidia-smi ENOENT");
    let fail = false;
    const inventory: InventoryFn = async () => {
      if (fail) throw new Error("lspci exploded");
      return siControllers;
    };
    const m = new GpuMonitor({ exec: smi, inventory, intervalMs: 0, inventoryIntervalMs: 0 });
    await Promise.all([m.refresh(), m.refreshInventory()]);
    expect(m.snapshot().map((g) => [g.model, g.utilization_pct])).toEqual([
      ["NVIDIA GeForce RTX 3090", 5],
      ["NVIDIA GeForce RTX 3060", 0],
    ]);
    fail = true;
    await m.refreshInventory();
    expect(m.snapshot()).toHaveLength(2);
    m.stop();
  });

  it("start() returns at once and reads in the background; stop() drops a reading still under way", async () => {
    const smi = fakeSmi();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let abortedWhenDone: boolean | undefined;
    const slowInventory: InventoryFn = async (signal) => {
      await gate;
      abortedWhenDone = signal.aborted;
      return [{ vendor: "Advanced Micro Devices, Inc. [AMD/ATI]", model: "Navi 31", busAddress: "03:00.0", vram: 24560, vramDynamic: false }];
    };
    const m = new GpuMonitor({ exec: smi, inventory: slowInventory, intervalMs: 0, inventoryIntervalMs: 0 });
    m.start();
    await m.refresh();
    expect(m.snapshot().map((g) => g.vendor)).toEqual(["NVIDIA", "NVIDIA"]);
    m.stop();
    release();
    await m.refreshInventory(); // joins the reading start() began
    expect(abortedWhenDone).toBe(true);
    // The inventory that arrived after stop() changed nothing, and the monitor reads no more.
    expect(m.snapshot().map((g) => g.vendor)).toEqual(["NVIDIA", "NVIDIA"]);
    const calls = smi.calls.length;
    await m.refresh();
    expect(smi.calls.length).toBe(calls);
  });

  it("polls nvidia-smi on its timer", async () => {
    const smi = fakeSmi();
    const m = new GpuMonitor({ exec: smi, inventory: noInventory, intervalMs: 10, inventoryIntervalMs: 0 });
    m.start();
    for (let i = 0; i < 200 && smi.calls.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    m.stop();
    expect(smi.calls.length).toBeGreaterThanOrEqual(3);
  });
});

describe("gpuEnv", () => {
  it("pins CUDA and HIP to the listed GPUs, counted in nvidia-smi's (PCI bus) order", () => {
    expect(gpuEnv([0, 1])).toEqual({ CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: "0,1", HIP_VISIBLE_DEVICES: "0,1" });
    expect(gpuEnv([2])).toEqual({ CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: "2", HIP_VISIBLE_DEVICES: "2" });
  });

  it("no gpus key: nothing set; an empty list hides every GPU", () => {
    expect(gpuEnv(undefined)).toEqual({});
    expect(gpuEnv([])).toEqual({ CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: "-1", HIP_VISIBLE_DEVICES: "-1" });
  });

  it("refuses negative, fractional and repeated indexes", () => {
    expect(() => gpuEnv([-1])).toThrow(RangeError);
    expect(() => gpuEnv([0.5])).toThrow(RangeError);
    expect(() => gpuEnv([1, 1])).toThrow(/twice/);
  });
});
