// labgate with its full request path (auth hook, schema validation, routing,
// circuit breaker, limits, metrics, request log in a temp SQLite file) in front
// of the mock upstream.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGateway, type Gateway } from "../../gateway/app.ts";
import { parseConfigText } from "../../gateway/config/load.ts";

/** The public model name the bench asks labgate for. */
export const BENCH_MODEL = "bench";

export function labgateConfigYaml(upstream: string): string {
  return `
server:
  host: 127.0.0.1
  port: 0
providers:
  mock:
    type: llamacpp
    base_url: ${upstream}
models:
  ${BENCH_MODEL}:
    deployments:
      - provider: mock
        model: mock-model
        price: { input_per_1m: 1, output_per_1m: 2 }
`;
}

export interface LogRowCounts {
  total: number;
  ok: number;
  okStream: number;
  okJson: number;
  byStatus: Record<string, number>;
  /** Mean of labgate's own overhead_ms over the 200 rows, by stream flag. */
  avgOverheadJsonMs?: number;
  avgOverheadStreamMs?: number;
}

export interface LabgateTarget {
  url: string;
  gateway: Gateway;
  dataDir: string;
  /** Request-log rows on disk (after a flush), by stream flag and status. */
  logRows(): LogRowCounts;
  close(): Promise<void>;
}

export async function startLabgate(upstream: string): Promise<LabgateTarget> {
  const parsed = parseConfigText(labgateConfigYaml(upstream), "bench.yaml");
  if (!parsed.ok) throw new Error("bench config rejected: " + JSON.stringify(parsed.problems));
  const dataDir = mkdtempSync(join(tmpdir(), "labgate-bench-"));
  const gateway = await buildGateway({
    config: parsed.config,
    dataDir,
    modelsDir: join(dataDir, "models"),
    env: {},
    logLevel: "silent",
    healthIntervalMs: 0,
    // As \`labgate serve\` builds it: with the process metrics (labgate_process_*).
    defaultMetrics: true,
  });
  const url = await gateway.listen("127.0.0.1", 0);
  return {
    url,
    gateway,
    dataDir,
    logRows() {
      gateway.requestLog.flush();
      const rows = gateway.db.prepare("SELECT status, stream, COUNT(*) AS n FROM request_log GROUP BY status, stream").all() as {
        status: number;
        stream: number;
        n: number;
      }[];
      const out: LogRowCounts = { total: 0, ok: 0, okStream: 0, okJson: 0, byStatus: {} };
      for (const r of rows) {
        out.total += r.n;
        out.byStatus[String(r.status)] = (out.byStatus[String(r.status)] ?? 0) + r.n;
        if (r.status === 200) {
          out.ok += r.n;
          if (r.stream === 1) out.okStream += r.n;
          else out.okJson += r.n;
        }
      }
      const avg = gateway.db.prepare("SELECT stream, AVG(overhead_ms) AS a FROM request_log WHERE status = 200 GROUP BY stream").all() as { stream: number; a: number | null }[];
      for (const r of avg) {
        if (r.a === null) continue;
        if (r.stream === 1) out.avgOverheadStreamMs = r.a;
        else out.avgOverheadJsonMs = r.a;
      }
      return out;
    },
    async close() {
      await gateway.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
