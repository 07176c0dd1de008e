// GPUs through a real gateway: a fake nvidia-smi on the gateway's PATH prints the CSV
// the real one prints for labgate's query (the rows come from a file the test
// rewrites); GET /admin/lab/gpus and the labgate_gpu_* series show two GPUs, then one
// when a GPU disappears, then none when nvidia-smi finds no devices. The real
// systeminformation runs in its worker (on this machine: no GPU, nothing added).
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NVIDIA_SMI_ARGS, systemInformationInventory, type Gpu } from "../../gateway/lab/gpus.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const GPU0 = "0, GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60, NVIDIA GeForce RTX 3090, 00000000:01:00.0, 550.54.14, 24576, 1234, 5, 45, 35.12";
const GPU1 = "1, GPU-9c0e7f42-61ab-4d3e-b5c8-0a2d4f6e8b13, NVIDIA GeForce RTX 3060, 00000000:02:00.0, 550.54.14, 12288, 0, 0, 38, [N/A]";

/**
 * A folder holding an `nvidia-smi` that answers labgate's exact query with the rows in
 * gpus.csv next to it, like the real one: exit 0 with the rows, or "No devices were
 * found" and exit 6 when there are none; other arguments are refused.
 */
function fakeNvidiaSmi(): { dir: string; rows(lines: string[]): void } {
  const dir = mkdtempSync(join(tmpdir(), "labgate-fake-smi-"));
  const csv = join(dir, "gpus.csv");
  writeFileSync(
    join(dir, "nvidia-smi"),
    `#!/bin/sh
if [ "$#" -ne 2 ] || [ "$1" != "${NVIDIA_SMI_ARGS[0]}" ] || [ "$2" != "${NVIDIA_SMI_ARGS[1]}" ]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2
fi
if [ ! -s "${csv}" ]; then echo "No devices were found"; exit 6; fi
while IFS= read -r line; do printf '%s\\n' "$line"; done < "${csv}"
`,
  );
  chmodSync(join(dir, "nvidia-smi"), 0o755);
  return {
    dir,
    // Replaced whole (rename), so nvidia-smi never reads half a file.
    rows(lines) {
      writeFileSync(csv + ".tmp", lines.map((l) => l + "\n").join(""));
      renameSync(csv + ".tmp", csv);
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A gateway whose GPU monitor reads nvidia-smi every 50 ms with this env's PATH. */
async function start(env: NodeJS.ProcessEnv, server: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway(JSON.stringify({ providers: {}, models: {}, server }), { env, gpu: { intervalMs: 50 } });
  cleanups.push(() => gw.close());
  return gw;
}

async function gpus(url: string, headers: Record<string, string> = {}): Promise<Gpu[]> {
  const res = await fetch(`${url}/admin/lab/gpus`, { headers });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { object: string; data: Gpu[] };
  expect(body.object).toBe("list");
  return body.data;
}

/** The labgate_gpu_* samples in /metrics. */
async function gpuSeries(url: string): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith("labgate_gpu_"));
}

/** Polls until `ok` holds (at most 100 times, 50 ms apart); returns the last value either way for the assertion to show. */
async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await what();
  for (let i = 0; i < 100 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = await what();
  }
  return v;
}

describe("GET /admin/lab/gpus and the GPU gauges", () => {
  it("show the GPUs nvidia-smi lists, and a GPU that disappears leaves both", async () => {
    const smi = fakeNvidiaSmi();
    cleanups.push(() => rmSync(smi.dir, { recursive: true, force: true }));
    smi.rows([GPU0, GPU1]);
    const { url } = await start({ PATH: [smi.dir, process.env.PATH].join(delimiter) });

    const two = await until(() => gpus(url), (l) => l.length === 2);
    expect(two).toEqual([
      {
        index: 0,
        uuid: "GPU-5a3b9e1c-0d2f-4c6e-8a1b-3f7d9c2e4b60",
        vendor: "NVIDIA",
        model: "NVIDIA GeForce RTX 3090",
        bus_id: "0000:01:00.0",
        driver: "550.54.14",
        vram_total_mb: 24576,
        vram_used_mb: 1234,
        utilization_pct: 5,
        temperature_c: 45,
        power_w: 35.12,
        updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
      {
        index: 1,
        uuid: "GPU-9c0e7f42-61ab-4d3e-b5c8-0a2d4f6e8b13",
        vendor: "NVIDIA",
        model: "NVIDIA GeForce RTX 3060",
        bus_id: "0000:02:00.0",
        driver: "550.54.14",
        vram_total_mb: 12288,
        vram_used_mb: 0,
        utilization_pct: 0,
        temperature_c: 38,
        power_w: null,
        updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
    ]);
    const series = await gpuSeries(url);
    expect(series).toEqual(
      expect.arrayContaining([
        'labgate_gpu_memory_used_bytes{gpu="0",model="NVIDIA GeForce RTX 3090"} 1293942784',
        'labgate_gpu_memory_used_bytes{gpu="1",model="NVIDIA GeForce RTX 3060"} 0',
        'labgate_gpu_memory_total_bytes{gpu="0",model="NVIDIA GeForce RTX 3090"} 25769803776',
        'labgate_gpu_memory_total_bytes{gpu="1",model="NVIDIA GeForce RTX 3060"} 12884901888',
        'labgate_gpu_utilization_ratio{gpu="0",model="NVIDIA GeForce RTX 3090"} 0.05',
        'labgate_gpu_utilization_ratio{gpu="1",model="NVIDIA GeForce RTX 3060"} 0',
        'labgate_gpu_temperature_celsius{gpu="0",model="NVIDIA GeForce RTX 3090"} 45',
        'labgate_gpu_temperature_celsius{gpu="1",model="NVIDIA GeForce RTX 3060"} 38',
        'labgate_gpu_power_watts{gpu="0",model="NVIDIA GeForce RTX 3090"} 35.12',
      ]),
    );
    // The 3060 reports no power draw ([N/A]): no sample, rather than a made-up 0.
    expect(series.filter((l) => l.startsWith("labgate_gpu_power_watts{"))).toHaveLength(1);

    // GPU 1 falls off the bus: nvidia-smi lists GPU 0 only.
    smi.rows([GPU0]);
    const one = await until(() => gpus(url), (l) => l.length === 1);
    expect(one.map((g) => [g.index, g.model])).toEqual([[0, "NVIDIA GeForce RTX 3090"]]);
    const after = await until(() => gpuSeries(url), (s) => !s.some((l) => l.includes('gpu="1"')));
    expect(after.filter((l) => l.includes('gpu="1"'))).toEqual([]);
    expect(after.filter((l) => l.includes('gpu="0"'))).toHaveLength(5);

    // And the last one: "No devices were found" (exit 6) is no GPU, not an error.
    smi.rows([]);
    expect(await until(() => gpus(url), (l) => l.length === 0)).toEqual([]);
    expect(await until(() => gpuSeries(url), (s) => s.length === 0)).toEqual([]);
  });

  it("no nvidia-smi and no GPU: an empty list, the gauges without series", async () => {
    const empty = mkdtempSync(join(tmpdir(), "labgate-no-smi-"));
    cleanups.push(() => rmSync(empty, { recursive: true, force: true }));
    const { gateway, url } = await start({ PATH: empty });
    // nvidia-smi tried (and not found) before looking.
    await gateway.gpus.refresh();
    expect(await gpus(url)).toEqual([]);
    // The families are there (for boards and alerts), without a sample.
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain("# TYPE labgate_gpu_memory_used_bytes gauge");
    expect(await gpuSeries(url)).toEqual([]);
  });

  it("answers only with the admin key when one is set, like /admin", async () => {
    const { url } = await start({ ADMIN: "adm-secret", PATH: "/nonexistent" }, { admin_key: "env:ADMIN" });
    expect((await fetch(`${url}/admin/lab/gpus`)).status).toBe(401);
    expect((await fetch(`${url}/admin/lab/gpus`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect(await gpus(url, { authorization: "Bearer adm-secret" })).toEqual([]);
  });
});

describe("the inventory through systeminformation", () => {
  it("runs in its worker and answers; on a machine without a GPU, nothing", async () => {
    const controllers = await systemInformationInventory(process.env)(new AbortController().signal);
    expect(Array.isArray(controllers)).toBe(true);
  });

  it("stops when aborted", async () => {
    const ac = new AbortController();
    const p = systemInformationInventory(process.env)(ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow(/stopped/);
  });
});
