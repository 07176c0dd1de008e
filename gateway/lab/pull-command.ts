// `labgate pull URL|hf:OWNER/REPO/FILE.gguf [--models-dir DIR] [--data-dir DIR] [--sha256 HEX]`
// into the same models folder `labgate serve` uses, with a progress bar on stderr.
// Ctrl-C keeps the partial file; the same command resumes it.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultDataDir, resolveDir } from "../config/defaults.ts";
import { progressLine, pullModel, PullError } from "./pull.ts";

export const PULL_USAGE = "labgate pull URL|hf:OWNER/REPO/FILE.gguf [--models-dir DIR] [--data-dir DIR] [--sha256 HEX]";

export async function pullCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: { "models-dir"?: string; "data-dir"?: string; sha256?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: { "models-dir": { type: "string" }, "data-dir": { type: "string" }, sha256: { type: "string" } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    console.error(`labgate pull: ${(err as Error).message}\nusage: ${PULL_USAGE}`);
    return 2;
  }
  const uri = positionals[0];
  if (!uri || positionals.length > 1) {
    console.error(`usage: ${PULL_USAGE}`);
    return 2;
  }
  if (values.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(values.sha256)) {
    console.error("labgate pull: --sha256 takes the 64 hex digits of a SHA-256");
    return 2;
  }
  const dataDir = resolveDir(values["data-dir"] ?? env.LABGATE_DATA_DIR ?? defaultDataDir(env));
  const modelsDir = resolveDir(values["models-dir"] ?? env.LABGATE_MODELS_DIR ?? join(dataDir, "models"));
  try {
    mkdirSync(modelsDir, { recursive: true });
  } catch (err) {
    console.error(`labgate pull: cannot create the models folder ${modelsDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return 1;
  }
  const ac = new AbortController();
  const onSignal = (): void => ac.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const tty = process.stderr.isTTY === true;
  let lastDecile = -1;
  try {
    const r = await pullModel({
      uri,
      modelsDir,
      sha256: values.sha256,
      signal: ac.signal,
      onProgress: (p) => {
        if (tty) process.stderr.write(`\r${progressLine(p)}`);
        else {
          // Not a terminal: a line every 10%, not a carriage-return storm in a log file.
          const decile = p.totalBytes > 0 ? Math.floor((10 * p.downloadedBytes) / p.totalBytes) : 0;
          if (decile !== lastDecile) process.stderr.write(`${progressLine(p)}\n`);
          lastDecile = decile;
        }
      },
    });
    if (tty) process.stderr.write("\n");
    console.log(`${r.alreadyThere ? "already there" : "pulled"}: ${r.path} (${r.bytes} bytes, sha256 ${r.sha256})`);
    return 0;
  } catch (err) {
    if (tty) process.stderr.write("\n");
    console.error(`labgate pull: ${err instanceof PullError ? err.message : (err as Error).message}`);
    return ac.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
