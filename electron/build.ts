// Builds the Electron shell to JavaScript in dist/electron (Electron runs no TypeScript):
// main.js (ES module, Electron's `main` in package.json) and preload.cjs (one CommonJS
// file: a sandboxed preload can require nothing but `electron`).
//   node electron/build.ts [outDir]   (default dist/electron; tests build to a folder of their own
//   at the same depth, so that main.js finds the repository two folders up)
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const root = fileURLToPath(new URL("..", import.meta.url));
const external = ["electron", ...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

const outDir = process.argv[2] ?? "dist/electron";
const common = { root, configFile: false as const, logLevel: "warn" as const };
await build({
  ...common,
  build: {
    ssr: "electron/main.ts",
    outDir,
    emptyOutDir: true,
    target: "node22",
    sourcemap: true,
    rollupOptions: { external, output: { format: "es", entryFileNames: "main.js" } },
  },
});
await build({
  ...common,
  build: {
    ssr: "electron/preload.ts",
    outDir,
    emptyOutDir: false,
    target: "node22",
    rollupOptions: { external: ["electron"], output: { format: "cjs", entryFileNames: "preload.cjs" } },
  },
  // A sandboxed preload has no Node built-ins to fall back on: everything but electron is bundled.
  ssr: { noExternal: true },
});
console.log(`built ${outDir}/main.js and ${outDir}/preload.cjs`);
