// The environment that pins a launched server to some GPUs (`launch: { gpus: [0, 1] }`).
// The numbers are the `index` GET /admin/lab/gpus shows: nvidia-smi's, which counts
// in PCI bus order; CUDA counts fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID,
// so that is set too, or `gpus: [0]` could pick another card than the list's GPU 0.

/**
 * CUDA_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES ("0,1") for the given GPU indexes, and
 * CUDA_DEVICE_ORDER=PCI_BUS_ID; nothing when `gpus` is undefined (the server sees every
 * GPU). An empty list hides every GPU ("-1": CUDA and HIP ignore the devices from the
 * first invalid index on). Throws a RangeError on an index that is not a non-negative
 * integer or appears twice.
 */
export function gpuEnv(gpus: readonly number[] | undefined): Record<string, string> {
  if (gpus === undefined) return {};
  const seen = new Set<number>();
  for (const g of gpus) {
    if (!Number.isInteger(g) || g < 0) throw new RangeError(`GPU index ${String(g)} is not a non-negative integer`);
    if (seen.has(g)) throw new RangeError(`GPU index ${g} is listed twice`);
    seen.add(g);
  }
  const list = gpus.length === 0 ? "-1" : gpus.join(",");
  return { CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: list, HIP_VISIBLE_DEVICES: list };
}
