// `labgate report [--since 24h] [--config FILE] [--data-dir DIR] [--json]`: spend, traffic,
// errors, fallbacks and TTFB from labgate.db, opened read-only (a running gateway keeps writing).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { defaultDataDir, DEFAULT_CONFIG_FILE, resolveDir } from "../config/defaults.ts";
import { formatProblem, loadConfigFile } from "../config/load.ts";
import { summary } from "../store/analytics.ts";
import { MIGRATIONS } from "../store/migrations.ts";
import { formatReport, parseSince } from "./report.ts";

const USAGE = "labgate report [--since 24h] [--config FILE] [--data-dir DIR] [--json]";
const ANALYTICS_VERSION = 3;

export async function reportCommand(args: string[], env: NodeJS.ProcessEnv = process.env, now: number = Date.now()): Promise<number> {
  let values: { since?: string; config?: string; "data-dir"?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { since: { type: "string" }, config: { type: "string", short: "c" }, "data-dir": { type: "string" }, json: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`labgate: ${(err as Error).message.split("\n")[0]} (usage: ${USAGE})`);
    return 2;
  }
  const sinceMs = parseSince(values.since ?? "24h");
  if (!Number.isFinite(sinceMs)) {
    console.error(`labgate: --since must be a number and a unit (s, m, h, d, w), e.g. 24h or 7d; got "${values.since}"`);
    return 2;
  }
  // The data folder as `serve` finds it: --data-dir, LABGATE_DATA_DIR, the config's server.data_dir, the default.
  let configDataDir: string | undefined;
  const configFile = values.config ?? (env.LABGATE_CONFIG || undefined);
  if (values["data-dir"] === undefined && !env.LABGATE_DATA_DIR) {
    const loaded = await loadConfigFile(configFile ?? fileURLToPath(DEFAULT_CONFIG_FILE));
    if (!loaded.ok) {
      for (const p of loaded.problems) console.error(formatProblem(p));
      return 1;
    }
    configDataDir = loaded.config.server.data_dir;
  }
  const dataDir = resolveDir(values["data-dir"] ?? (env.LABGATE_DATA_DIR || undefined) ?? configDataDir ?? defaultDataDir(env));
  const file = join(dataDir, "labgate.db");
  if (!existsSync(file)) {
    console.error(`labgate: no database at ${file} (has labgate serve run with this data folder?)`);
    return 1;
  }
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
  } catch (err) {
    console.error(`labgate: cannot open ${file}: ${(err as Error).message}`);
    return 1;
  }
  try {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version < ANALYTICS_VERSION) {
      console.error(`labgate: ${file} is at schema version ${version}, before analytics (${ANALYTICS_VERSION}); start labgate serve once to upgrade it`);
      return 1;
    }
    if (version > MIGRATIONS.at(-1)!.version) console.error(`labgate: note: ${file} is from a newer labgate (schema ${version})`);
    const s = summary(db, now - sinceMs, now);
    process.stdout.write((values.json ? JSON.stringify(s, null, 2) : formatReport(s, file)) + "\n");
    return 0;
  } finally {
    db.close();
  }
}
