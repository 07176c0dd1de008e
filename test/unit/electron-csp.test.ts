// One Content-Security-Policy for the dashboard: gateway/api/ui-csp.ts. The gateway sends
// it with /ui and the desktop app adds it to the gateway's responses; neither spells its own.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { UI_CSP as sharedCsp } from "../../gateway/api/ui-csp.ts";
import { UI_CSP } from "../../gateway/api/ui.ts";
import { DESKTOP_CSP, withCsp } from "../../electron/security.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

describe("the dashboard's CSP", () => {
  it("is defined once and used by the gateway and the app", () => {
    expect(UI_CSP).toBe(sharedCsp);
    expect(DESKTOP_CSP).toBe(sharedCsp);
    expect(withCsp({})["Content-Security-Policy"]).toEqual([sharedCsp]);
    expect(sharedCsp).toContain("default-src 'none'");
    for (const file of ["gateway/api/ui.ts", "electron/security.ts"]) {
      expect(readFileSync(ROOT + file, "utf8"), file).not.toContain("default-src");
    }
  });
});
