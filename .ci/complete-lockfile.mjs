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
  "linux-riscv64": { os: ["linux"], cpu: ["riscv64"] },
  "mac-arm64-metal": { os: ["darwin"], cpu: ["arm64", "x64"] },
  "mac-x64": { os: ["darwin"], cpu: ["x64"] },
  "win-arm64": { os: ["win32"], cpu: ["arm64", "x64"] },
  "win-x64": { os: ["win32"], cpu: ["x64"] },
  "win-x64-cuda": { os: ["win32"], cpu: ["x64"] },
  "win-x64-cuda-ext": { os: ["win32"], cpu: ["x64"] },
  "win-x64-vulkan": { os: ["win32"], cpu: ["x64"] },
};
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `${path ? path + "/" : ""}node_modules/${dep}`.replace(/^\//, "");
    if (lock.packages[key] || lock.packages[`node_modules/${dep}`]) continue;
    const platform = PLATFORM[dep.replace("@node-llama-cpp/", "")];
    if (!dep.startsWith("@node-llama-cpp/") || !platform) continue;
    lock.packages[`node_modules/${dep}`] = { version, ...platform, license: "MIT", optional: true, engines: { node: ">=20.0.0" } };
    added++;
  }
}
if (added > 0) {
  lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
  writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n");
}
console.log(`complete-lockfile: ${added} platform-only optional entries added`);
