// `npm run build:js` (also run by `prepare` and `npm start`): writes the stripped copy of every .ts source under gateway/ and
// native/ to dist/js/ (or the folder given as the first argument), the copies
// bin/labgate.js runs instead of the sources (see bin/prestripped.js for why). Only
// missing or stale copies are rewritten; copies whose source is gone are removed: only
// files below the folder's gateway/ and native/ that end with labgate's trailer, so
// anything else in a folder given by hand is left alone.
// Plain JavaScript, like the hook it feeds.
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { builtPath, builtText, CAN_STRIP, DEFAULT_JS_DIR, isBuiltText, matchingBuilt, ROOT, SOURCE_FOLDERS, untrustedBecause, writeBuilt } from "../bin/prestripped.js";

/** Every .ts source the build covers (declaration files aside), sorted. */
export function sourceFiles() {
  const out = [];
  const walk = (folder) => {
    for (const e of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, e.name);
      if (e.isDirectory()) {
        if (e.name !== "node_modules") walk(path);
      } else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(path);
    }
  };
  for (const f of SOURCE_FOLDERS) walk(join(ROOT, f));
  return out.sort();
}

/** Every file below folder (none if it does not exist); symlinks are neither followed nor listed. */
function filesBelow(folder) {
  let entries;
  try {
    entries = readdirSync(folder, { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

function readOrUndefined(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * Brings jsDir up to date with the sources. Throws, naming the file, on a source that
 * cannot be stripped (syntax that is not erasable), as Node would when loading it.
 */
export function buildAll(jsDir = DEFAULT_JS_DIR) {
  const result = { written: 0, current: 0, removed: 0 };
  const wanted = new Set();
  for (const sourcePath of sourceFiles()) {
    const source = readFileSync(sourcePath, "utf8");
    const target = builtPath(jsDir, sourcePath);
    wanted.add(target);
    const built = readOrUndefined(target);
    if (built !== undefined && matchingBuilt(built, source) !== undefined) {
      result.current++;
      continue;
    }
    let text;
    try {
      text = builtText(source);
    } catch (err) {
      throw new Error(`${relative(ROOT, sourcePath)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    writeBuilt(target, text);
    result.written++;
  }
  // Copies of deleted or renamed sources: only where the build writes (jsDir/gateway,
  // jsDir/native) and only files it wrote (its trailer at the end), since jsDir may be any
  // folder given on the command line. A temporary file of a concurrent writer is left alone.
  for (const path of SOURCE_FOLDERS.flatMap((f) => filesBelow(join(jsDir, f)))) {
    if (!path.endsWith(".js") || wanted.has(path)) continue;
    const text = readOrUndefined(path);
    if (text === undefined || !isBuiltText(text)) continue;
    rmSync(path, { force: true });
    result.removed++;
  }
  return result;
}

// node scripts/build-js.js [folder] [--quiet]
// --quiet (npm start): nothing printed unless it fails, and a failure does not stop the
// start that follows (the gateway then strips the sources at load, as without a build).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const quiet = args.includes("--quiet");
  const folder = args.find((a) => !a.startsWith("--"));
  const jsDir = folder ? resolve(folder) : DEFAULT_JS_DIR;
  if (!CAN_STRIP) {
    // labgate itself says which Node it needs when it starts; an install must not fail here.
    if (!quiet) console.log(`build:js: skipped: Node ${process.version} cannot strip TypeScript (labgate needs >= 22.18)`);
    process.exit(0);
  }
  try {
    const r = buildAll(jsDir);
    if (!quiet) console.log(`build:js: ${relative(process.cwd(), jsDir) || "."}: ${r.written} written, ${r.current} up to date, ${r.removed} removed`);
    // bin/labgate.js would ignore this folder: say so now rather than leave a build that is never used.
    const distrust = untrustedBecause(jsDir, "folder");
    if (distrust) console.error(`build:js: labgate will not use this build: ${distrust} (see bin/prestripped.js)`);
  } catch (err) {
    console.error(`build:js: ${err instanceof Error ? err.message : String(err)}`);
    if (!quiet) process.exitCode = 1;
  }
}
