// What kind of inference server answers at an address. Ports are shared between
// products (8080: llama.cpp and LocalAI; 8000: vLLM and llama-server), so the
// answer decides, never the port: Ollama by /api/version, llama.cpp by /props
// (and /health), vLLM by `vllm:` series in /metrics or models owned by "vllm",
// anything else that lists /v1/models as a generic OpenAI-compatible server.

export type ServerKind = "ollama" | "llamacpp" | "vllm" | "openai-compatible";

export interface Classification {
  /** null: something answered HTTP, but no inference server we know. */
  kind: ServerKind | null;
  /** What was asked and what answered, one line per probe, for /admin/lab/servers. */
  evidence: string[];
  version?: string;
}

export type Probe = (path: string, signal: AbortSignal) => Promise<{ status: number; body: string } | null>;

/** GET origin+path with a short timeout; null when nothing answers (refused, timeout, not HTTP). */
export function httpProbe(origin: string, timeoutMs: number): Probe {
  return async (path, signal) => {
    try {
      const res = await fetch(origin + path, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: "manual" });
      // Bounded: a server that streams forever must not hold the prober.
      const body = (await readBounded(res, 256 * 1024)).trim();
      return { status: res.status, body };
    } catch {
      return null;
    }
  };
}

async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= max) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}

function json(body: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(body) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const short = (s: string): string => (s.length > 80 ? `${s.slice(0, 77)}...` : s).replace(/\s+/g, " ");

/** Asks the server a few questions and says what it is, with the answers as evidence. Null: nothing answered at all. */
export async function classifyServer(probe: Probe, signal: AbortSignal): Promise<Classification | null> {
  const evidence: string[] = [];
  const ask = async (path: string) => {
    const r = await probe(path, signal);
    evidence.push(r ? `GET ${path} -> ${r.status} ${short(r.body)}` : `GET ${path} -> no answer`);
    return r;
  };

  const version = await ask("/api/version");
  if (version === null) return null; // nothing listens (or not HTTP): no server here
  const v = version.status === 200 ? json(version.body) : undefined;
  if (typeof v?.version === "string") return { kind: "ollama", evidence, version: v.version };

  const props = await ask("/props");
  const p = props?.status === 200 ? json(props.body) : undefined;
  if (p && ("default_generation_settings" in p || "total_slots" in p || "build_info" in p)) {
    await ask("/health"); // more evidence: llama.cpp answers {"status":"ok"} once its model is loaded
    const buildInfo = typeof p.build_info === "string" ? p.build_info : undefined;
    return { kind: "llamacpp", evidence, ...(buildInfo ? { version: buildInfo } : {}) };
  }

  const vllmVersion = await ask("/version");
  const vv = vllmVersion?.status === 200 ? json(vllmVersion.body) : undefined;
  const metrics = await ask("/metrics");
  const models = await ask("/v1/models");
  const m = models?.status === 200 ? json(models.body) : undefined;
  const list = Array.isArray(m?.data) ? (m.data as { owned_by?: unknown }[]) : undefined;
  const vllmMetrics = metrics?.status === 200 && /^vllm:/m.test(metrics.body);
  const ownedByVllm = list?.some((x) => x.owned_by === "vllm") ?? false;
  if (vllmMetrics || (ownedByVllm && typeof vv?.version === "string")) {
    return { kind: "vllm", evidence, ...(typeof vv?.version === "string" ? { version: vv.version } : {}) };
  }
  if (list) return { kind: "openai-compatible", evidence };
  return { kind: null, evidence };
}
