// labgate's command line: `labgate serve | validate | schema | version`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildGateway, VERSION } from "./app.ts";
import { defaultDataDir, DEFAULT_CONFIG_FILE, pruneUnconfiguredCloud, resolveDir } from "./config/defaults.ts";
import { formatProblem, loadConfigFile } from "./config/load.ts";
import { createSecretResolver } from "./config/secrets.ts";

const USAGE = `labgate ${VERSION} — an OpenAI-compatible gateway for your lab

Usage:
  labgate serve [--config FILE] [--host H] [--port N] [--data-dir DIR] [--models-dir DIR]
  labgate validate FILE
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
      console.error(`labgate: unknown command "${command}"\n\n${USAGE}`);
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

async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      host: { type: "string" },
      port: { type: "string", short: "p" },
      "data-dir": { type: "string" },
      "models-dir": { type: "string" },
    },
    strict: true,
  });
  const configFile = values.config ?? env.LABGATE_CONFIG;
  const usingDefault = !configFile;
  const file = configFile ?? fileURLToPath(DEFAULT_CONFIG_FILE);
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    for (const p of loaded.problems) console.error(formatProblem(p));
    return 1;
  }
  const secrets = createSecretResolver(env);
  const config = usingDefault ? pruneUnconfiguredCloud(loaded.config, secrets) : loaded.config;
  const dataDir = resolveDir(values["data-dir"] ?? env.LABGATE_DATA_DIR ?? config.server.data_dir ?? defaultDataDir(env));
  const modelsDir = resolveDir(values["models-dir"] ?? env.LABGATE_MODELS_DIR ?? join(dataDir, "models"));
  const host = values.host ?? env.LABGATE_HOST ?? config.server.host;
  const portText = values.port ?? env.LABGATE_PORT;
  const port = portText === undefined ? config.server.port : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`labgate: invalid port "${portText}"`);
    return 2;
  }

  const gateway = await buildGateway({ config, dataDir, modelsDir, env, logLevel: env.LABGATE_LOG_LEVEL ?? "info" });
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

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        gateway.log.warn("second signal: exiting now");
        resolve(130);
        return;
      }
      stopping = true;
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
