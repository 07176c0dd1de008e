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
// numbers: stack traces point into the sources. Each built file ends with a trailer
// naming the Node version and stripping mode that made it, the SHA-256 of its source
// and the SHA-256 of its own text: a copy that no longer matches (source edited or
// checked out, Node upgraded, built text changed or cut short) is stripped when it
// loads, as Node would, and rewritten, so the next start is lean again; with no build
// folder at all, this start makes it. A folder that cannot be written (a read-only
// install) just means stripping at load, as without this hook.
//
// Whoever can write the build folder chooses the code labgate runs, and the trailer
// cannot stop that (anyone can compute it for any text: it catches stale and damaged
// copies, not forged ones). So the folder is used only if no one else can write it:
// it and every folder below it are real folders (not symlinks), owned by this user
// (or root), and not group- or other-writable; each file the same, checked with one
// lstat as it loads. Otherwise the folder is left alone, untouched, its sources
// stripped at load as Node would strip them, and one warning line says why.
//
// Plain JavaScript on purpose: a .ts file here would itself start the stripper.
// Worker threads do not inherit these hooks: labgate starts its workers with startWorker()
// below, which registers the same hook in the worker (prestripped-worker.js) first.
// node:module's namespace rather than named imports: scripts/build-js.js imports this
// file under `npm start` with whatever Node is on PATH, and an older one (no
// registerHooks, no stripTypeScriptTypes) must get to bin/labgate.js's one-line message.
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as nodeModule from "node:module";
import { Worker } from "node:worker_threads";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The package's root folder. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the stripped copies go (git-ignored). */
export const DEFAULT_JS_DIR = join(ROOT, "dist", "js");
/** The folders whose TypeScript is built beforehand. */
export const SOURCE_FOLDERS = ["gateway", "native"];

/** How every built file's trailer starts (scripts/build-js.js removes only files that carry it). */
export const MARK = "\n// labgate-prestripped ";
/** The stripper's mode: part of what a built file was made with. */
const MODE = "strip";

/** Whether this Node can strip TypeScript and hook module loading (22.18+ and 23.6+ can). */
export const CAN_STRIP = typeof nodeModule.stripTypeScriptTypes === "function" && typeof nodeModule.registerHooks === "function";

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

/** The built copy's path for a source below ROOT: gateway/app.ts -> <jsDir>/gateway/app.js. */
export function builtPath(jsDir, sourcePath) {
  return join(jsDir, relative(ROOT, sourcePath)).replace(/\.ts$/, ".js");
}

/**
 * The built file's text: the stripped source, then the trailer: what made it (this Node,
 * the stripping mode), the SHA-256 of its source and the SHA-256 of the stripped text.
 */
export function builtText(source) {
  const stripped = strip(source);
  return `${stripped}${trailer(source, stripped)}`;
}

function trailer(source, stripped) {
  return `${MARK}node:${process.version} mode:${MODE} source-sha256:${sha256(source)} built-sha256:${sha256(stripped)}\n`;
}

/**
 * The stripped text of a built file if this Node made it, in this mode, from exactly this
 * source, and its text is still what was written; undefined otherwise.
 */
export function matchingBuilt(built, source) {
  const at = built.lastIndexOf(MARK);
  if (at < 0) return undefined;
  const stripped = built.slice(0, at);
  // Rebuilt from the parts rather than parsed: any other trailer (an older format, another Node) does not match.
  return built.slice(at) === trailer(source, stripped) ? stripped : undefined;
}

/** Whether text ends with a labgate trailer (of any version): a file the build wrote. */
export function isBuiltText(text) {
  const at = text.lastIndexOf(MARK);
  return at >= 0 && !text.slice(at + MARK.length).trimEnd().includes("\n");
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
  // Explicit modes, so that a umask of 002 cannot make what is written group-writable (the
  // folder would then be ignored at the next start): a umask only removes bits from these.
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644, flag: "wx" });
  renameSync(tmp, path);
}

/**
 * Why someone other than this user (or root) could have written path; undefined when no one
 * could: it is what kind says (a real file or folder, not a symlink), owned by this user or
 * root, and not group- or other-writable. Without uids (Windows) only the kind is checked.
 * Throws what lstat throws (ENOENT).
 */
export function untrustedBecause(path, kind) {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return `${path} is a symlink`;
  if (kind === "folder" ? !st.isDirectory() : !st.isFile()) return `${path} is not a ${kind}`;
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  if (uid === undefined) return undefined;
  if (st.uid !== uid && st.uid !== 0) return `${path} is owned by uid ${st.uid}, not ${uid}`;
  if (st.mode & 0o022) return `${path} is ${st.mode & 0o020 ? "group" : "other"}-writable`;
  return undefined;
}

function readOrUndefined(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

// The build folder this thread's hook serves from once usePrestripped() ran ("" when it
// serves none: the folder was not trusted), undefined before. Module state because the
// hook it describes is itself per thread and cannot be unregistered.
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

/** What the trust checks say of a path that does not exist yet: nothing to distrust, nothing to read. */
const MISSING = Symbol("missing");

function reasonOrMissing(path, kind) {
  try {
    return untrustedBecause(path, kind);
  } catch (err) {
    return err?.code === "ENOENT" ? MISSING : `${path}: ${err?.code ?? err}`;
  }
}

/**
 * Serves labgate's .ts modules from their stripped copies in jsDir (default dist/js), or,
 * with jsDir null or the folder not trusted (see the top of this file), strips them at load
 * without reading or writing any folder. warn: false for a worker (its thread's parent has
 * said it). Returns live counters of how the modules loaded so far were served.
 */
export function usePrestripped(jsDir = DEFAULT_JS_DIR, { warn = true } = {}) {
  const stats = { prestripped: 0, strippedAtLoad: 0 };
  let warned = !warn;
  const warnOnce = (line) => {
    if (warned) return;
    warned = true;
    process.stderr.write(`labgate: ${line}\n`);
  };
  const root = jsDir ? resolve(jsDir) : undefined;
  // Each folder's verdict, checked once (a folder that does not exist yet is checked again once it does).
  const folderVerdicts = new Map();
  const folderReason = (folder) => {
    if (folderVerdicts.has(folder)) return folderVerdicts.get(folder);
    let reason = folder === root ? undefined : folderReason(dirname(folder));
    if (reason === undefined) reason = reasonOrMissing(folder, "folder");
    if (reason !== MISSING) folderVerdicts.set(folder, reason);
    return reason;
  };
  let usable = root !== undefined;
  if (usable) {
    const reason = folderReason(root);
    if (reason !== undefined && reason !== MISSING) {
      usable = false;
      warnOnce(`not using the stripped build in ${root}: ${reason}, so someone else could change what labgate runs; its TypeScript is stripped at load instead (rebuild it as this user: delete it, then npm run build:js)`);
    }
  }
  hookedJsDir = usable ? root : "";
  const rootUrl = pathToFileURL(ROOT).href.replace(/\/?$/, "/");
  nodeModule.registerHooks({
    load(url, context, next) {
      const format = context.format === "module-typescript" ? "module" : context.format === "commonjs-typescript" ? "commonjs" : undefined;
      // labgate's own files only: not its dependencies' (labgate itself may sit in a node_modules folder).
      if (!format || !url.startsWith(rootUrl) || url.slice(rootUrl.length).split("/").includes("node_modules")) return next(url, context);
      const sourcePath = fileURLToPath(url);
      const source = readFileSync(sourcePath, "utf8");
      let target;
      let writable = false;
      if (usable) {
        target = builtPath(root, sourcePath);
        const folder = folderReason(dirname(target));
        if (folder === undefined || folder === MISSING) {
          writable = true;
          const file = folder === MISSING ? MISSING : reasonOrMissing(target, "file");
          if (file === undefined) {
            const built = readOrUndefined(target);
            const ready = built === undefined ? undefined : matchingBuilt(built, source);
            if (ready !== undefined) {
              stats.prestripped++;
              return { format, source: ready, shortCircuit: true };
            }
          } else if (file !== MISSING) {
            // In a folder only this user can write: replacing the file (a rename) makes it trusted again.
            warnOnce(`not running the stripped copy ${target}: ${file}; its source is stripped at load and the copy rewritten`);
          }
        } else {
          warnOnce(`not using the stripped copies in ${dirname(target)}: ${folder}, so someone else could change what labgate runs; their sources are stripped at load instead`);
        }
      }
      // Missing, stale, damaged or not trusted: strip it now (what Node would do) and, in a
      // trusted folder, keep the result for the next start.
      stats.strippedAtLoad++;
      const text = builtText(source);
      if (writable) {
        try {
          writeBuilt(target, text);
        } catch {
          // A read-only install: this start strips at load, as without a build.
        }
      }
      return { format, source: text, shortCircuit: true };
    },
  });
  return stats;
}
