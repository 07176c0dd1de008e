// The built dashboard (npm test builds it before vitest runs): its JavaScript stays
// under the 400 kB gzipped, and nothing in it needs an inline script or
// style, which the gateway's Content-Security-Policy would block.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";

const DIST = join(import.meta.dirname, "..", "..", "renderer", "dist");

describe("the built dashboard", () => {
  it("ships under 400 kB of gzipped JavaScript", () => {
    const js = readdirSync(join(DIST, "assets")).filter((f) => f.endsWith(".js"));
    expect(js.length, "renderer/dist is not built: run npm run build:ui").toBeGreaterThan(0);
    const gzipped = js.reduce((n, f) => n + gzipSync(readFileSync(join(DIST, "assets", f))).length, 0);
    console.log(`dashboard JavaScript: ${(gzipped / 1024).toFixed(1)} kB gzipped in ${js.length} file(s)`);
    expect(gzipped).toBeLessThan(400 * 1024);
  });

  it("loads its code and styles from files only (no inline script, style or event handler)", () => {
    const html = readFileSync(join(DIST, "index.html"), "utf8");
    expect(html).toMatch(/<script type="module" crossorigin src="\/ui\/assets\/[^"]+\.js"><\/script>/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style[\s>]/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(html).not.toMatch(/\sstyle=/i);
  });
});
