// Preloaded with `node --import` by the idle-memory bench: serves labgate's
// TypeScript files from copies with their types already stripped (made by the
// bench in LABGATE_BENCH_JS_DIR, same relative paths under LABGATE_BENCH_ROOT), so
// Node never starts its TypeScript stripper (amaro, a WebAssembly module). It shows
// what the same code costs when run as plain JavaScript. Plain .mjs on purpose: a
// .ts hook would itself start the stripper.
import { registerHooks } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const dir = process.env.LABGATE_BENCH_JS_DIR;
const root = process.env.LABGATE_BENCH_ROOT && pathToFileURL(process.env.LABGATE_BENCH_ROOT).href.replace(/\/?$/, "/");

if (dir && root) {
  registerHooks({
    load(url, context, next) {
      if (url.startsWith(root) && url.endsWith(".ts")) {
        const file = `${dir}/${decodeURIComponent(url.slice(root.length))}`;
        if (existsSync(file)) return { format: "module", source: readFileSync(file, "utf8"), shortCircuit: true };
      }
      return next(url, context);
    },
  });
}
