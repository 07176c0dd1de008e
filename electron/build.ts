// Builds the Electron shell to JavaScript in dist/electron (Electron runs no TypeScript):
// main.js (ES module, Electron's `main` in package.json) and preload.cjs (one CommonJS
// file: a sandboxed preload can require nothing but `electron`).
//   node electron/build.ts
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const root = fileURLToPath(new URL("..", import.meta.url));
const external = ["electron", ...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

const common = { root, configFile: false as const, logLevel: "warn" as const };
await build({
  ...common,
  build: {
    ssr: "electron/main.ts",
    outDir: "dist/electron",
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
    outDir: "dist/electron",
    emptyOutDir: false,
    target: "node22",
    rollupOptions: { external: ["electron"], output: { format: "cjs", entryFileNames: "preload.cjs" } },
  },
  // A sandboxed preload has no Node built-ins to fall back on: everything but electron is bundled.
  ssr: { noExternal: true },
});
console.log("built dist/electron/main.js and dist/electron/preload.cjs");
