// Preloaded with `node --import` into a labgate process by the idle-memory bench
// (never into a measured one): records every module the process loads and, on
// SIGUSR2, writes the npm packages among them (one name a line) to the file named
// by LABGATE_BENCH_LOADED. Module loading goes through these synchronous hooks for
// both import and require.
import { registerHooks } from "node:module";
import { writeFileSync } from "node:fs";

const out = process.env.LABGATE_BENCH_LOADED;
const packages = new Set<string>();
const PACKAGE = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//;

registerHooks({
  load(url, context, next) {
    const m = PACKAGE.exec(url);
    if (m) packages.add(m[1]!);
    return next(url, context);
  },
});

if (out) process.on("SIGUSR2", () => writeFileSync(out, [...packages].sort().join("\n") + "\n"));
