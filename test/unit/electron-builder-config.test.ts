// electron-builder.yml as electron-builder itself would read it: against its JSON schema
// (app-builder-lib/scheme.json, with ajv) and through its own validateConfiguration; every
// path it names exists; the icons are there at the sizes each platform asks for.
import { Ajv } from "ajv";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const ROOT = new URL("../..", import.meta.url).pathname;
const require = createRequire(join(ROOT, "package.json"));
const config = parse(readFileSync(join(ROOT, "electron-builder.yml"), "utf8")) as Record<string, any>;

/** A PNG's width and height, from its IHDR chunk. */
function pngSize(file: string): [number, number] {
  const b = readFileSync(file);
  expect(b.subarray(1, 4).toString()).toBe("PNG");
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

describe("electron-builder.yml", () => {
  it("matches electron-builder's JSON schema", () => {
    const schema = JSON.parse(readFileSync(require.resolve("app-builder-lib/scheme.json"), "utf8"));
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    const ok = validate(config);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    // The schema does catch mistakes (so the check above means something).
    expect(validate({ ...config, nsis: { ...config.nsis, oneClick: "yes" } })).toBe(false);
    expect(validate({ ...config, linux: { ...config.linux, targets: ["deb"] } })).toBe(false);
  }, 120_000); // the schema is large: compiling it takes seconds on a busy machine

  it("passes electron-builder's own validation", async () => {
    const { validateConfiguration } = require("app-builder-lib/out/util/config/config") as { validateConfiguration(c: unknown, l: unknown): Promise<void> };
    const { DebugLogger } = require("builder-util") as { DebugLogger: new (enabled: boolean) => unknown };
    await expect(validateConfiguration(config, new DebugLogger(false))).resolves.toBeUndefined();
  }, 120_000);

  it("builds an AppImage and a deb, a dmg and an NSIS installer", () => {
    expect(config.appId).toBe("dev.labgate.desktop");
    expect(config.productName).toBe("labgate");
    expect(config.linux.target).toEqual(["AppImage", "deb"]);
    expect(config.mac.target).toBe("dmg");
    expect(config.win.target).toBe("nsis");
  });

  it("flips Electron's fuses: not usable as Node, no NODE_OPTIONS or --inspect, the app only from its asar, checked", () => {
    expect(config.electronFuses).toEqual({
      runAsNode: false,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      onlyLoadAppFromAsar: true,
      enableEmbeddedAsarIntegrityValidation: true,
    });
    // The keys are electron-builder's (a misspelt one would be rejected by the schema test above).
    const schema = JSON.parse(readFileSync(require.resolve("app-builder-lib/scheme.json"), "utf8"));
    const known = Object.keys(schema.definitions.FuseOptionsV1.properties);
    expect(known).toEqual(expect.arrayContaining(Object.keys(config.electronFuses)));
    // RunAsNode can stay off: the packaged gateway is a utilityProcess, which does not need it.
    const electronDir = join(ROOT, "electron");
    const gatewayProcess = readdirSync(electronDir)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => readFileSync(join(electronDir, f), "utf8"))
      .join("\n");
    expect(gatewayProcess).toContain("utilityProcess.fork");
    expect(gatewayProcess).not.toContain("ELECTRON_RUN_AS_NODE");
  });

  it("unpacks the native modules from the asar and rebuilds them for Electron", () => {
    expect(config.asarUnpack).toEqual(expect.arrayContaining(["**/node_modules/better-sqlite3/**", "**/node_modules/node-llama-cpp/**"]));
    expect(config.npmRebuild).toBe(true);
  });

  it("ships the demo model, the Prometheus files and the icons as extra resources, from folders that exist", () => {
    const extra = config.extraResources as { from: string; to: string }[];
    expect(extra.map((e) => e.to)).toEqual(["models", "prometheus", "icons"]);
    for (const e of extra) expect(existsSync(join(ROOT, e.from)), e.from).toBe(true);
    expect(existsSync(join(ROOT, "resources/models/stories260K.gguf"))).toBe(true);
    expect(existsSync(join(ROOT, "resources/prometheus/prometheus.yml"))).toBe(true);
  });

  it("names an app icon of at least 512 px (electron-builder makes .icns and .ico from it) and Linux icons at every size", () => {
    expect(pngSize(join(ROOT, config.mac.icon))).toEqual([1024, 1024]);
    expect(config.win.icon).toBe(config.mac.icon);
    for (const size of [16, 24, 32, 48, 64, 128, 256, 512, 1024]) {
      expect(pngSize(join(ROOT, config.linux.icon, `${size}x${size}.png`))).toEqual([size, size]);
    }
  });

  it("has a tray icon for each lab state at 1x, 1.5x and 2x, coloured and as macOS templates", () => {
    for (const state of ["healthy", "degraded", "down"]) {
      for (const variant of ["", "Template"]) {
        for (const [suffix, size] of [["", 16], ["@1.5x", 24], ["@2x", 32]] as const) {
          expect(pngSize(join(ROOT, "resources/icons/tray", `${state}${variant}${suffix}.png`))).toEqual([size, size]);
        }
      }
    }
  });

  it("packs the built shell that package.json's main points at", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { main: string; scripts: Record<string, string> };
    expect(pkg.main).toBe("dist/electron/main.js");
    expect(config.files).toContain("dist/electron/**");
    expect(pkg.scripts.dist).toContain("electron-builder --config electron-builder.yml");
  });
});
