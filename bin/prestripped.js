// labgate's TypeScript, served as JavaScript stripped beforehand.
//
// Node runs the .ts sources by stripping their types as it loads them, and that
// stripper (amaro, a WebAssembly module) stays in memory for the life of the process:
// about 33 MiB of an idle gateway's resident set. `npm run build:js` (run by
// `npm ci` / `npm install` through `prepare`) writes each source's stripped text to
// dist/js/<same path>.js; the load hook below hands Node that text in place of the
// .ts, so the stripper never starts.
//
// The modules keep their .ts URLs (import.meta.url, relative imports, the files next
// to them) and, since stripping blanks types out in place, their line and column
// numbers: stack traces point into the sources. Each built file ends with the SHA-256
// of the source it came from; a source that no longer matches (edited, checked out)
// is stripped when it loads, as Node would, and its built copy rewritten, so the
// next start is lean again; with no build folder at all, this start makes it. A
// folder that cannot be written (a read-only install) just means stripping at load,
// as without this hook.
//
// Plain JavaScript on purpose: a .ts file here would itself start the stripper.
// Worker threads do not inherit these hooks: labgate starts its workers with startWorker()
// below, which registers the same hook in the worker (prestripped-worker.js) first.
// node:module's namespace rather than named imports: scripts/build-js.js imports this
// file under `npm start` with whatever Node is on PATH, and an older one (no
// registerHooks, no stripTypeScriptTypes) must get to bin/labgate.js's one-line message.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as nodeModule from "node:module";
import { Worker } from "node:worker_threads";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The package's root folder. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the stripped copies go (git-ignored). */
export const DEFAULT_JS_DIR = join(ROOT, "dist", "js");
/** The folders whose TypeScript is built beforehand. */
export const SOURCE_FOLDERS = ["gateway", "native"];

const MARK = "\n// labgate-prestripped sha256:";

/** Whether this Node can strip TypeScript and hook module loading (22.18+ and 23.6+ can). */
export const CAN_STRIP = typeof nodeModule.stripTypeScriptTypes === "function" && typeof nodeModule.registerHooks === "function";

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

/** The built copy's path for a source below ROOT: gateway/app.ts -> <jsDir>/gateway/app.js. */
export function builtPath(jsDir, sourcePath) {
  return join(jsDir, relative(ROOT, sourcePath)).replace(/\.ts$/, ".js");
}

/** The built file's text: the stripped source, then the mark naming the source it came from. */
export function builtText(source) {
  return `${strip(source)}${MARK}${sha256(source)}\n`;
}

/** The stripped text of a built file if it was made from exactly this source; undefined otherwise. */
export function matchingBuilt(built, source) {
  const at = built.lastIndexOf(MARK);
  if (at < 0 || built.slice(at + MARK.length).trim() !== sha256(source)) return undefined;
  return built.slice(0, at);
}

/** Types stripped in place, as Node strips them when it loads a .ts file (erasable syntax only). */
function strip(source) {
  // Node 22 warns that stripTypeScriptTypes is experimental; it is what its own loader runs.
  const emitWarning = process.emitWarning;
  process.emitWarning = function (warning, ...rest) {
    if (!String(warning?.message ?? warning).includes("stripTypeScriptTypes")) return emitWarning.call(process, warning, ...rest);
  };
  try {
    return nodeModule.stripTypeScriptTypes(source, { mode: "strip" });
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** Writes through a temporary file and a rename: a concurrent start never reads half a file. */
export function writeBuilt(path, text) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function readOrUndefined(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

// The build folder this thread's hook serves from, once usePrestripped() ran. Module
// state because the hook it describes is itself per thread and cannot be unregistered.
let hookedJsDir;

/** Where the worker's hook comes from (the worker's entry while this thread has the hook). */
const WORKER_BOOTSTRAP = new URL("./prestripped-worker.js", import.meta.url);

/**
 * A worker thread running url, whose modules load as this thread's do: through the hook
 * when this thread has it (the worker runs prestripped-worker.js, which registers it and
 * then imports url), else url as it is. options are Worker's; url, workerData, name and
 * the worker's own process.argv are the same either way.
 */
export function startWorker(url, options = {}) {
  // Code given as text (eval) imports no labgate module by itself: nothing to hook.
  if (hookedJsDir === undefined || options.eval) return new Worker(url, options);
  // Through argv rather than execArgv: an explicit execArgv is checked, and V8 or
  // process-wide flags the gateway was started with (--max-old-space-size) fail there.
  return new Worker(WORKER_BOOTSTRAP, { ...options, argv: [hookedJsDir, url instanceof URL ? url.href : pathToFileURL(url).href, ...(options.argv ?? [])] });
}

/**
 * Serves labgate's .ts modules from their stripped copies in jsDir (default dist/js).
 * Returns live counters of how the modules loaded so far were served.
 */
export function usePrestripped(jsDir = DEFAULT_JS_DIR) {
  hookedJsDir = jsDir;
  const stats = { prestripped: 0, strippedAtLoad: 0 };
  const rootUrl = pathToFileURL(ROOT).href.replace(/\/?$/, "/");
  nodeModule.registerHooks({
    load(url, context, next) {
      const format = context.format === "module-typescript" ? "module" : context.format === "commonjs-typescript" ? "commonjs" : undefined;
      // labgate's own files only: not its dependencies' (labgate itself may sit in a node_modules folder).
      if (!format || !url.startsWith(rootUrl) || url.slice(rootUrl.length).split("/").includes("node_modules")) return next(url, context);
      const sourcePath = fileURLToPath(url);
      const source = readFileSync(sourcePath, "utf8");
      const target = builtPath(jsDir, sourcePath);
      const built = readOrUndefined(target);
      const ready = built === undefined ? undefined : matchingBuilt(built, source);
      if (ready !== undefined) {
        stats.prestripped++;
        return { format, source: ready, shortCircuit: true };
      }
      // Missing or stale: strip it now (what Node would do) and keep the result for the next start.
      stats.strippedAtLoad++;
      const text = builtText(source);
      try {
        writeBuilt(target, text);
      } catch {
        // A read-only install: this start strips at load, as without a build.
      }
      return { format, source: text, shortCircuit: true };
    },
  });
  return stats;
}
