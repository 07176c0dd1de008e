// `labgate gate [--window 30m] [--json] [--prometheus URL] [--config FILE] [--data-dir DIR]`:
// the readiness gate from the command line. Exit 1 when a criterion fails (a deployment
// script stops on it), 0 otherwise (NO DATA is not a failure), 2 for a usage mistake.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { defaultDataDir, DEFAULT_CONFIG_FILE, pruneUnconfiguredCloud, resolveDir } from "../config/defaults.ts";
import { formatProblem, loadConfigFile } from "../config/load.ts";
import { createSecretResolver } from "../config/secrets.ts";
import { evaluateGate, evaluateGatePrometheus, formatGateTable, parseWindow, type GateReport } from "./gate.ts";
import { readUpstreamHistoryFile } from "./upstream-metrics.ts";

export const GATE_USAGE = "labgate gate [--window 30m] [--json] [--prometheus URL] [--config FILE] [--data-dir DIR]";
/** Where a running gateway leaves its upstream scrapes for this command. */
export const UPSTREAM_HISTORY_FILE = "upstream-metrics.json";

export interface GateIo {
  out(text: string): void;
  err(text: string): void;
}
const processIo: GateIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export async function gateCommand(args: string[], env: NodeJS.ProcessEnv = process.env, io: GateIo = processIo): Promise<number> {
  let values: { window?: string; json?: boolean; prometheus?: string; config?: string; "data-dir"?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        window: { type: "string", short: "w" },
        json: { type: "boolean" },
        prometheus: { type: "string" },
        config: { type: "string", short: "c" },
        "data-dir": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`labgate: ${(err as Error).message.split("\n")[0]} (usage: ${GATE_USAGE})\n`);
    return 2;
  }
  const window = values.window ?? "30m";
  const windowMs = parseWindow(window);
  if (windowMs === undefined) {
    io.err(`labgate: --window must be a duration such as 30m, 2h, 90s or 1d, got "${window}"\n`);
    return 2;
  }
  const configFile = values.config ?? (env.LABGATE_CONFIG || undefined);
  const file = configFile ?? fileURLToPath(DEFAULT_CONFIG_FILE);
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    for (const p of loaded.problems) io.err(formatProblem(p) + "\n");
    return 2;
  }
  const config = configFile ? loaded.config : pruneUnconfiguredCloud(loaded.config, createSecretResolver(env));

  let report: GateReport;
  if (values.prometheus !== undefined) {
    try {
      new URL(values.prometheus);
    } catch {
      io.err(`labgate: --prometheus must be a URL such as http://127.0.0.1:9090, got "${values.prometheus}"\n`);
      return 2;
    }
    try {
      report = await evaluateGatePrometheus({ config, windowMs, window, url: values.prometheus });
    } catch (err) {
      io.err(`labgate: cannot query ${values.prometheus}: ${(err as Error).message}\n`);
      return 2;
    }
  } else {
    const dataDir = resolveDir(values["data-dir"] ?? (env.LABGATE_DATA_DIR || undefined) ?? config.server.data_dir ?? defaultDataDir(env));
    const dbFile = join(dataDir, "labgate.db");
    if (!existsSync(dbFile)) {
      io.err(`labgate: no request log at ${dbFile} (has labgate serve run with this data folder? --data-dir DIR)\n`);
      return 2;
    }
    // Read-only: the gate never writes, and a running gateway keeps writing beside it (WAL).
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      db.pragma("busy_timeout = 5000");
      const upstream = await readUpstreamHistoryFile(join(dataDir, UPSTREAM_HISTORY_FILE));
      report = evaluateGate({ config, windowMs, window, db, upstream });
    } finally {
      db.close();
    }
  }
  io.out(values.json ? JSON.stringify(report, null, 2) + "\n" : formatGateTable(report));
  return report.verdict === "FAIL" ? 1 : 0;
}
