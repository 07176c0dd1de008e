// The npm registry reachable here does not carry every optional platform package
// of node-llama-cpp (macOS, Windows, riscv64), so `npm install` leaves them out of
// package-lock.json and `npm ci` then refuses the lock as out of sync. Those
// packages are never installed on linux-x64 anyway: record them as optional,
// platform-restricted entries (exactly what npm writes when it can see them), so
// npm ci accepts the lock and skips them.
import { readFileSync, writeFileSync } from "node:fs";

const lockPath = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const PLATFORM = {
  "linux-riscv64": { cpu: ["riscv64"], os: ["linux"] },
  "mac-arm64-metal": { cpu: ["arm64", "x64"], os: ["darwin"] },
  "mac-x64": { cpu: ["x64"], os: ["darwin"] },
  "win-arm64": { cpu: ["arm64", "x64"], os: ["win32"] },
  "win-x64": { cpu: ["x64"], os: ["win32"] },
  "win-x64-cuda": { cpu: ["x64"], os: ["win32"] },
  "win-x64-cuda-ext": { cpu: ["x64"], os: ["win32"] },
  "win-x64-vulkan": { cpu: ["x64"], os: ["win32"] },
};
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `${path ? path + "/" : ""}node_modules/${dep}`.replace(/^\//, "");
    if (lock.packages[key] || lock.packages[`node_modules/${dep}`]) continue;
    const platform = PLATFORM[dep.replace("@node-llama-cpp/", "")];
    if (!dep.startsWith("@node-llama-cpp/") || !platform) continue;
    // Keys in npm's own order, so a later `npm install` rewrites nothing.
    lock.packages[`node_modules/${dep}`] = { version, cpu: platform.cpu, license: "MIT", optional: true, os: platform.os, engines: { node: ">=20.0.0" } };
    added++;
  }
}
if (added > 0) {
  lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
  writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n");
}
console.log(`complete-lockfile: ${added} platform-only optional entries added`);
