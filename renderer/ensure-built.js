// `npm start` runs this first: builds the dashboard when renderer/dist is missing or
// older than its sources, so `npm install && npm start` always serves a current /ui.
// Takes ~0.1 s when nothing changed (a walk over renderer/src's mtimes). Plain
// JavaScript, so an older Node reaches labgate's own "needs Node 22.18" line.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const built = join(here, "dist", "index.html");

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newestMtime(join(path, name))), st.mtimeMs);
}

const sources = [join(here, "src"), join(here, "index.html"), join(here, "vite.config.ts")];
const [major] = process.versions.node.split(".").map(Number);
const stale = !existsSync(built) || sources.some((s) => existsSync(s) && newestMtime(s) > statSync(built).mtimeMs);
if (stale && major >= 22) {
  const vite = join(here, "..", "node_modules", "vite", "bin", "vite.js");
  if (!existsSync(vite)) {
    process.stderr.write("labgate: the dashboard is not built and Vite is not installed (npm install without --omit=dev builds it); /ui will say so.\n");
  } else {
    process.stderr.write("labgate: building the dashboard (renderer/ -> renderer/dist)...\n");
    const r = spawnSync(process.execPath, [vite, "build", "--config", join(here, "vite.config.ts"), "--logLevel", "warn"], { stdio: "inherit" });
    if (r.status !== 0) process.exitCode = r.status ?? 1;
  }
}
