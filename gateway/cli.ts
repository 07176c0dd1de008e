// labgate's command line: `labgate serve | validate | schema | version`.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Gateway } from "./app.ts";
import { defaultDataDir, DEFAULT_CONFIG_FILE, pruneUnconfiguredCloud, resolveDir } from "./config/defaults.ts";
import { formatProblem, loadConfigFile } from "./config/load.ts";
import { createSecretResolver } from "./config/secrets.ts";
import type { LabgateConfig } from "./config/schema.ts";
import { DataDirLocked, lockDataDir, type DataLock } from "./store/data-lock.ts";

// The gateway (fastify, SQLite, every adapter) is imported only once `serve` has checked
// its arguments, so a mistake is reported at once.
const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

const USAGE = `labgate ${VERSION} — an OpenAI-compatible gateway for your lab

Usage:
  labgate serve [--config FILE] [--host H] [--port N] [--data-dir DIR] [--models-dir DIR]
  labgate validate FILE
  labgate pull URL|hf:OWNER/REPO/FILE.gguf [--models-dir DIR] [--sha256 HEX]   a GGUF into the models folder (resumes)
  labgate gate [--window 30m] [--json] [--prometheus URL] [--config FILE] [--data-dir DIR]   the readiness gate (exit 1 on a FAIL)
  labgate report [--since 24h] [--config FILE] [--data-dir DIR] [--json]   spend, traffic, errors, fallbacks, TTFB
  labgate batch submit|status|download|list|cancel ...   the batch queue of a running gateway (labgate batch --help)
  labgate schema            print the JSON schema of labgate.yaml
  labgate version

Environment: LABGATE_CONFIG, LABGATE_PORT, LABGATE_HOST, LABGATE_DATA_DIR, LABGATE_MODELS_DIR, LABGATE_LOG_LEVEL`;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return serve(rest, env);
    case "validate":
      return validate(rest);
    case "pull": {
      // The downloader (node-llama-cpp) is loaded only for this command.
      const { pullCommand } = await import("./lab/pull-command.ts");
      return pullCommand(rest, env);
    }
    case "gate":
      return (await import("./telemetry/gate-command.ts")).gateCommand(rest, env);
    case "report": {
      const { reportCommand } = await import("./telemetry/report-command.ts");
      return reportCommand(rest, env);
    }
    case "batch":
      return (await import("./batch/cli.ts")).batchCommand(rest, env);
    case "schema": {
      const { configJsonSchema } = await import("./config/write-schema.ts");
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + "\n");
      return 0;
    }
    case "version":
    case "--version":
      console.log(VERSION);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`labgate: unknown command "${command}" (commands: serve, validate, pull, gate, report, batch, schema, version; see labgate --help)`);
      return 2;
  }
}

async function validate(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) {
    console.error("usage: labgate validate FILE");
    return 2;
  }
  const result = await loadConfigFile(file);
  if (!result.ok) {
    for (const p of result.problems) console.error(formatProblem(p));
    console.error(`${file}: ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}`);
    return 1;
  }
  const c = result.config;
  const deployments = Object.values(c.models).reduce((n, m) => n + m.deployments.length, 0);
  const fallbacks = Object.values(c.models).reduce((n, m) => n + (m.fallbacks?.length ?? 0), 0);
  console.log(
    `${file}: OK — ${Object.keys(c.providers).length} providers, ${Object.keys(c.models).length} models, ${deployments} deployments, ${fallbacks} fallback links`,
  );
  return 0;
}

const SERVE_OPTIONS = {
  config: { type: "string", short: "c" },
  host: { type: "string" },
  port: { type: "string", short: "p" },
  "data-dir": { type: "string" },
  "models-dir": { type: "string" },
} as const;
const SERVE_USAGE = "labgate serve [--config FILE] [--host H] [--port N] [--data-dir DIR] [--models-dir DIR]";

/** A mistake on the command line, in the environment or in the folders given: one line for the user, exit 2. */
class UsageError extends Error {}

/** The options of `serve`; parseArgs' errors become one line each (it throws them with a stack). */
function parseServeArgs(args: string[]): Partial<Record<keyof typeof SERVE_OPTIONS, string>> {
  let values: Partial<Record<keyof typeof SERVE_OPTIONS, string>>;
  try {
    ({ values } = parseArgs({ args, options: SERVE_OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    const quoted = /'([^']+)'/.exec(message)?.[1];
    const long = /--([a-z-]+)/.exec(message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw new UsageError(`unknown option ${quoted ?? ""} (usage: ${SERVE_USAGE})`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") throw new UsageError(`--${long ?? "option"} needs a value (usage: ${SERVE_USAGE})`);
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") throw new UsageError(`unexpected argument "${quoted ?? ""}" (usage: ${SERVE_USAGE})`);
    throw new UsageError(`${message.split("\n")[0]} (usage: ${SERVE_USAGE})`);
  }
  for (const [name, value] of Object.entries(values)) {
    if (value === "") throw new UsageError(`--${name} needs a value, got an empty string`);
  }
  return values;
}

/** An environment variable; an empty one counts as unset (`LABGATE_PORT= labgate serve`). */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** A port is a decimal integer from 0 (any free port) to 65535: no "", hex, exponent or fraction. */
export function parsePort(text: string, source: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new UsageError(`${source} must be a port number from 0 to 65535 (0: any free port), got "${text}"`);
  }
  return port;
}

/**
 * Creates a folder and its missing parents one level at a time, or says in one line
 * why it cannot. (mkdirSync's recursive mode loops forever at 100% CPU where the file
 * system answers ENOENT for a level it refuses, e.g. under /proc: `serve` hung there
 * and, its event loop blocked, ignored SIGTERM.)
 */
export function makeFolder(dir: string, what: string): void {
  const missing: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: some parent is a file; going up finds it and says which.
      if ((code === "ENOENT" || code === "ENOTDIR") && dirname(p) !== p) {
        missing.push(p);
        continue;
      }
      throw new UsageError(`cannot create the ${what} ${dir}: cannot read ${p} (${code})`);
    }
    if (!isDir) throw new UsageError(`cannot create the ${what} ${dir}: ${p} is a file, not a folder`);
    break;
  }
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && statSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
      const why = code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EROFS" ? "read-only file system" : `the file system refused (${code})`;
      throw new UsageError(`cannot create the ${what} ${dir}: mkdir ${p}: ${why}`);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UsageError(`the ${what} ${dir} is not writable`);
  }
}

async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    return await serveChecked(args, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`labgate: ${err.message}`);
    return 2;
  }
}

async function serveChecked(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const values = parseServeArgs(args);
  const configFile = values.config ?? envValue(env, "LABGATE_CONFIG");
  const usingDefault = !configFile;
  const file = configFile ?? fileURLToPath(DEFAULT_CONFIG_FILE);
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    const unreadable = /^cannot read config \((\w+)\)$/.exec(loaded.problems[0]?.message ?? "");
    if (loaded.problems.length === 1 && unreadable) {
      const code = unreadable[1]!;
      const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a folder" : code === "EACCES" ? "permission denied" : code;
      const from = values.config !== undefined ? "" : " (from LABGATE_CONFIG)";
      throw new UsageError(`cannot read the config file ${file}${from}: ${why}`);
    }
    for (const p of loaded.problems) console.error(formatProblem(p));
    return 1;
  }
  const secrets = createSecretResolver(env);
  const config = usingDefault ? pruneUnconfiguredCloud(loaded.config, secrets) : loaded.config;
  // The gateway's own keys guard every request, so without them it does not start
  // (a provider's key that cannot be resolved only makes that provider unavailable).
  for (const field of ["master_key", "admin_key"] as const) {
    const ref = config.server[field];
    const r = ref ? secrets.resolve(ref) : undefined;
    if (r && !r.ok) throw new UsageError(`server.${field} in ${file} is ${ref}, but ${r.reason}: set it in the gateway's environment or remove server.${field}`);
  }
  const dataDir = resolveDir(values["data-dir"] ?? envValue(env, "LABGATE_DATA_DIR") ?? config.server.data_dir ?? defaultDataDir(env));
  const modelsDirGiven = values["models-dir"] ?? envValue(env, "LABGATE_MODELS_DIR");
  const modelsDir = resolveDir(modelsDirGiven ?? join(dataDir, "models"));
  const host = values.host ?? envValue(env, "LABGATE_HOST") ?? config.server.host;
  const portEnv = envValue(env, "LABGATE_PORT");
  const port =
    values.port !== undefined ? parsePort(values.port, "--port") : portEnv !== undefined ? parsePort(portEnv, "LABGATE_PORT") : config.server.port;
  makeFolder(dataDir, "data folder");
  // The default models folder is made too, so that the user sees where *.gguf files go.
  if (modelsDirGiven === undefined) makeFolder(modelsDir, "models folder");
  else if (statSync(modelsDir, { throwIfNoEntry: false })?.isDirectory() === false) throw new UsageError(`the models folder ${modelsDir} is a file, not a folder`);

  // One gateway per data folder: a second one would requeue the first's running batch items and delete its new files.
  let lock: DataLock;
  try {
    lock = lockDataDir(dataDir);
  } catch (err) {
    if (err instanceof DataDirLocked) throw new UsageError(err.message);
    throw err;
  }
  try {
    return await serveLocked({ config, dataDir, modelsDir, env, host, port, usingDefault, file });
  } finally {
    lock.release();
  }
}

async function serveLocked(o: { config: LabgateConfig; dataDir: string; modelsDir: string; env: NodeJS.ProcessEnv; host: string; port: number; usingDefault: boolean; file: string }): Promise<number> {
  const { config, dataDir, modelsDir, env, host, port, usingDefault, file } = o;
  let gateway: Gateway;
  try {
    const { buildGateway } = await import("./app.ts");
    gateway = await buildGateway({ config, dataDir, modelsDir, env, logLevel: envValue(env, "LABGATE_LOG_LEVEL") ?? "info", defaultMetrics: true });
  } catch (err) {
    console.error(`labgate: cannot start: ${String((err as Error)?.message ?? err).split("\n")[0]}`);
    return 1;
  }
  let url: string;
  try {
    url = await gateway.listen(host, port);
  } catch (err) {
    console.error(`labgate: cannot listen on ${host}:${port}: ${(err as Error).message}`);
    await gateway.close();
    return 1;
  }
  gateway.log.info(
    { url, config: usingDefault ? "built-in defaults" : file, dataDir, modelsDir, providers: gateway.registry.names() },
    `labgate listening on ${url} (OpenAI base URL: ${url}/v1)`,
  );
  const compaction = compactWhenIdle(gateway);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        gateway.log.warn("second signal: exiting now");
        resolve(130);
        return;
      }
      stopping = true;
      compaction.stop();
      gateway.log.info({ signal }, "shutting down: finishing in-flight requests");
      gateway.close().then(
        () => {
          gateway.log.info("stopped; request log flushed");
          resolve(0);
        },
        (err: unknown) => {
          gateway.log.error({ err }, "error while shutting down");
          resolve(1);
        },
      );
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
}

if (process.argv[1] && existsSync(process.argv[1]) && import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}

/** After start, and after traffic: how long the gateway must have been quiet before a compaction (ms). */
const COMPACT_AFTER_START_MS = 2_000;
const COMPACT_AFTER_TRAFFIC_MS = 30_000;

/**
 * One memory-reducing garbage collection once the served gateway has gone quiet: 2 s
 * after it starts listening, and again 30 s after the last request of each burst of
 * traffic (never while a request is in flight).
 *
 * Why: starting (about a thousand modules, the config's schemas, fastify's routes) and
 * traffic grow V8's young generation to its largest size, and an idle process never
 * collects again to shrink it: about 18 MiB of an idle gateway's resident set (one
 * openai-compatible provider: ~115 MiB before, ~97 after). Browsers get this from V8's
 * idle-time memory reducer; Node gives V8 no idle signal. It costs one full collection
 * (about 0.1 s of CPU measured) per quiet period, and a gateway under load is never
 * quiet, so its throughput is untouched.
 *
 * `gc` is reached through a context made while --expose-gc is set, then unset again, so
 * no other code sees a global gc(). If this Node refuses, nothing is done.
 */
function compactWhenIdle(gateway: Gateway): { stop(): void } {
  let gc: ((options: object) => void) | undefined;
  try {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as (options: object) => void;
  } catch {
    return { stop() {} };
  } finally {
    // Even when the context could not be made: no context made later may get a global gc().
    try {
      setFlagsFromString("--no-expose-gc");
    } catch {
      // Refused to unset what it refused to set: nothing was exposed.
    }
  }
  const collect = gc;
  // Typed as the tracked service (Gateway.completions): a class without the counter fails to compile rather than reading 0 mid-request.
  const inFlight = (): number => gateway.completions.inFlight;
  let lastActivity = Date.now();
  let quietMs = COMPACT_AFTER_START_MS;
  let compacted = false;
  const unsubscribe = gateway.completions.onOutcome(() => {
    lastActivity = Date.now();
    quietMs = COMPACT_AFTER_TRAFFIC_MS;
    compacted = false;
  });
  const timer = setInterval(() => {
    if (compacted || inFlight() > 0 || Date.now() - lastActivity < quietMs) return;
    compacted = true;
    const before = process.memoryUsage.rss();
    const started = performance.now();
    const cpu = process.cpuUsage();
    // "last-resort": the collection V8 runs under memory pressure, which also shrinks the young generation.
    collect({ type: "major", execution: "sync", flavor: "last-resort" });
    const used = process.cpuUsage(cpu);
    const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
    gateway.log.debug(
      { rss_mb_before: mb(before), rss_mb_after: mb(process.memoryUsage.rss()), ms: Math.round(performance.now() - started), cpu_ms: Math.round((used.user + used.system) / 1000) },
      "idle: memory compacted",
    );
  }, 1_000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      unsubscribe();
    },
  };
}
